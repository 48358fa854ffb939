"""MNIST as shipped with the package -> class-split tasks -> a tf.data pipeline of batch indices.

The images stay uint8, in NumPy and then in the tensors a run holds (the nets scale pixels as
they read them); training only draws *indices* into those tensors, so a batch order is a pure
function of (seed, epoch) and a step counter is the whole data position."""

import dataclasses
import functools
import gzip
import hashlib
import os
import struct

import numpy as np
import tensorflow as tf

from tltransfer.config import MODE_TABLE, format_classes, parse_classes

MNIST_PATH = os.path.join(os.path.dirname(__file__), "mnist.npz")
# SHA-256 of the shipped file; built from the official MNIST (see DESIGN.md), whose raw uint8
# image bytes hash to the two values below (checked by the tests).
MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
X_TRAIN_SHA256 = "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"
X_TEST_SHA256 = "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"

SOURCE_CLASSES = (0, 1, 2, 3, 4, 5)
TARGET_CLASSES = (6, 7, 8, 9)
SUBSET_GRANULARITY = 100  # the course rounds subsets down to whole batches of 100


class DataError(Exception):
    """The data file is missing, corrupted or not what the code expects."""


@dataclasses.dataclass(frozen=True)
class Mnist:
    """A 10-class set of 28x28 images: the shipped MNIST or one read with load_data."""
    x_train: np.ndarray  # uint8 [n, 28, 28], in the file's order
    y_train: np.ndarray  # uint8 [n], digits 0-9
    x_test: np.ndarray   # uint8 [m, 28, 28]
    y_test: np.ndarray   # uint8 [m]
    sha256: str = MNIST_SHA256  # of the file(s) it came from


@dataclasses.dataclass(frozen=True)
class Task:
    """One classification problem: images of some digits, labels renumbered 0..k-1."""
    name: str
    classes: tuple
    x_train: np.ndarray  # uint8 [n, 28, 28]
    y_train: np.ndarray  # int32 [n], in 0..k-1
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self):
        return len(self.classes)

    @functools.cached_property
    def tensors(self):
        """(train images, train labels, test images, test labels) as tensors, made once per
        Task: the images uint8 [n, 28, 28, 1] (see images_tensor), the labels int32."""
        return (images_tensor(self.x_train), tf.constant(self.y_train),
                images_tensor(self.x_test), tf.constant(self.y_test))


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=2)
def load_mnist(path=MNIST_PATH, sha256=MNIST_SHA256):
    """Loads the shipped MNIST after checking its SHA-256; raises DataError if it is not intact."""
    if not os.path.isfile(path):
        raise DataError(f"MNIST file {path} is missing; reinstall tltransfer (pip install -e .)")
    actual = file_sha256(path)
    if actual != sha256:
        raise DataError(
            f"MNIST file {path} is corrupted (SHA-256 {actual[:12]}..., expected "
            f"{sha256[:12]}...); restore it with `git checkout -- tltransfer/mnist.npz` or "
            "reinstall tltransfer")
    with np.load(path) as f:
        return Mnist(f["x_train"], f["y_train"], f["x_test"], f["y_test"])


IDX_FILES = (("x_train", "train-images-idx3-ubyte", 3), ("y_train", "train-labels-idx1-ubyte", 1),
             ("x_test", "t10k-images-idx3-ubyte", 3), ("y_test", "t10k-labels-idx1-ubyte", 1))


def load_data(path=""):
    """The shipped MNIST (path ''), a directory of the four MNIST IDX files (plain or .gz:
    MNIST itself, Fashion-MNIST, KMNIST...), or the course's mnist.mat."""
    if not path:
        return load_mnist()
    if os.path.isdir(path):
        return load_idx_dir(path)
    if path.endswith(".mat") and os.path.isfile(path):
        return load_course_mat(path)
    raise DataError(f"--data={path} is neither a directory of IDX files nor an existing .mat "
                    "file; leave --data empty for the shipped MNIST")


def read_idx(path, ndim):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise DataError(f"{path} is not an IDX file of {ndim}-D unsigned bytes "
                        f"(header {raw[:4].hex() or 'empty'})")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    values = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise DataError(f"{path} holds {values.size} values where its header announces "
                        f"{int(np.prod(dims))}: the file is truncated or corrupted")
    return values.reshape(dims)


def load_idx_dir(path):
    arrays, digest = {}, hashlib.sha256()
    for key, stem, ndim in IDX_FILES:
        found = [os.path.join(path, stem + ext) for ext in ("", ".gz")
                 if os.path.isfile(os.path.join(path, stem + ext))]
        if not found:
            raise DataError(f"{path} has no {stem} (or {stem}.gz); an IDX directory holds the "
                            "four files of MNIST's original distribution")
        digest.update(file_sha256(found[0]).encode())
        arrays[key] = read_idx(found[0], ndim)
    return checked(arrays, path, digest.hexdigest())


def checked(arrays, path, sha256):
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.shape[1:] != (28, 28) or len(x) != len(y):
            raise DataError(f"{path}: {len(x)} {part} images of shape {x.shape[1:]} and "
                            f"{len(y)} labels; expected one label per 28x28 image")
        if len(y) and y.max() > 9:
            raise DataError(f"{path}: {part} labels go up to {y.max()}; expected digits 0-9")
    return Mnist(**{k: np.asarray(v, np.uint8) for k, v in arrays.items()}, sha256=sha256)


def load_course_mat(path):
    """The course's mnist.mat: X/t_trn05, X/t_tst05, X/t_trn69_<P>, X/t_tst69.

    The largest X_trn69_<P> holds the course's whole 6-9 training set (the others are its
    prefixes). Images may be flat or 28x28, in [0, 1] or 0-255; targets indices or one-hot;
    6-9 targets may be relabelled 0-3.
    """
    import scipy.io
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several unrelated types for a damaged file
        raise DataError(f"{path} is not a readable MATLAB file ({type(e).__name__}: {e})") from e
    trn69 = [k for k in mat if k.startswith("X_trn69_")]
    missing = [k for k in ("X_trn05", "t_trn05", "X_tst05", "t_tst05", "X_tst69", "t_tst69")
               if k not in mat] + ([] if trn69 else ["X_trn69_<P>"])
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: not the course's mnist.mat")
    full69 = max(trn69, key=lambda k: len(mat[k]) if np.ndim(mat[k]) == 3 else np.size(mat[k]))
    target_key = "t" + full69[1:]
    if target_key not in mat:
        raise DataError(f"{path} has {full69} but no {target_key}")

    def images(key):
        x = np.asarray(mat[key])
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: {key} has shape {x.shape}; expected n x 784 or n x 28 x 28")
        if x.dtype != np.uint8:
            x = np.rint(x * 255 if x.max() <= 1 else x).clip(0, 255).astype(np.uint8)
        return x

    def targets(key, first):
        t = np.asarray(mat[key])
        t = t.argmax(axis=1) if t.ndim == 2 and min(t.shape) > 1 else t.reshape(-1)
        t = t.astype(np.int64)
        return t + first if t.max() < first else t  # relabelled 0..k-1

    x_train = np.concatenate([images("X_trn05"), images(full69)])
    y_train = np.concatenate([targets("t_trn05", 0), targets(target_key, 6)])
    x_test = np.concatenate([images("X_tst05"), images("X_tst69")])
    y_test = np.concatenate([targets("t_tst05", 0), targets("t_tst69", 6)])
    return checked(dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test), path,
                   file_sha256(path))


def split(mnist, classes, name):
    """The images of `classes`, in official order, relabelled by position in `classes`."""
    classes = tuple(int(c) for c in classes)
    relabel = np.full(10, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    train = np.isin(mnist.y_train, classes)
    test = np.isin(mnist.y_test, classes)
    for part, labels in (("training", mnist.y_train[train]), ("test", mnist.y_test[test])):
        absent = tuple(int(c) for c in np.setdiff1d(classes, labels))
        if absent:  # a class never trained on or never tested: a run that means nothing
            raise DataError(
                f"the data has no {part} images of digit{'s' * (len(absent) > 1)} "
                f"{format_classes(absent)} (task: {name}); choose classes it holds "
                "(--source_classes, --target_classes) or other --data")
    return Task(name, classes,
                mnist.x_train[train], relabel[mnist.y_train[train]],
                mnist.x_test[test], relabel[mnist.y_test[test]])


def subset_size(p, available):
    """The course's subset size: 100 * floor(floor(p * available) / 100)."""
    return SUBSET_GRANULARITY * (int(np.floor(p * available)) // SUBSET_GRANULARITY)


def source_task(mnist, classes=SOURCE_CLASSES):
    return split(mnist, classes, f"digits {format_classes(tuple(classes))}")


def stratified_sample(labels, n, seed):
    """Sorted indices of n images drawn at random per seed, each class in proportion to its
    count (largest remainders settle the rounding)."""
    rng = np.random.default_rng([seed, 0x5B5E7])
    classes, counts = np.unique(labels, return_counts=True)
    share = n * counts / counts.sum()
    take = np.floor(share).astype(int)
    take[np.argsort(take - share, kind="stable")[:n - take.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), k, replace=False)
              for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def target_task(mnist, p, classes=TARGET_CLASSES, subset="prefix", seed=0):
    """The target digits relabelled 0..k-1, training on subset_size(p) of their images: the
    first ones in official order (`prefix`, the course's nested subsets) or a stratified
    random draw that depends on `seed` (`random`)."""
    if not 0 < p <= 1:
        raise ValueError(f"p={p} is outside (0, 1]: it is the proportion of the training "
                         "images used")
    full = split(mnist, classes, f"digits {format_classes(tuple(classes))}")
    n = subset_size(p, len(full.y_train))
    if n == 0:
        raise ValueError(
            f"p={p} leaves no training images: use 0 < p <= 1 with at least "
            f"{SUBSET_GRANULARITY / len(full.y_train):.4g} ({SUBSET_GRANULARITY} images)")
    if subset == "prefix":
        chosen = slice(0, n)
    elif subset == "random":
        chosen = stratified_sample(full.y_train, n, seed)
    else:
        raise ValueError(f"subset {subset!r} is unknown; choose prefix or random")
    return dataclasses.replace(full, name=f"{full.name}, p={p:g}",
                               x_train=full.x_train[chosen], y_train=full.y_train[chosen])


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """All that a run's Task is made from, besides the data set: equal specs make equal Tasks,
    so a spec keys a kept Task (Session.task)."""
    classes: tuple
    p: float = None   # the proportion of a target task's images; None for a source task
    subset: str = "prefix"
    seed: int = 0     # draws a random subset; a prefix does not depend on it

    @classmethod
    def of(cls, config):
        """The spec of `config`'s task: its source task, or its target task."""
        if MODE_TABLE[config.mode].task == "source":
            return cls(parse_classes(config.source_classes))
        return cls(parse_classes(config.target_classes), config.p, config.subset,
                   config.seed if config.subset == "random" else 0)

    def build(self, mnist):
        if self.p is None:
            return source_task(mnist, self.classes)
        return target_task(mnist, self.p, self.classes, self.subset, self.seed)


def check_tasks(configs, mnist):
    """Refuses (ValueError) a grid with a run whose task `mnist` cannot give, before any of it
    trains: a p that leaves no training images."""
    for spec in {TaskSpec.of(config) for config in configs}:
        spec.build(mnist)


def images_tensor(images):
    """uint8 [n, 28, 28] -> uint8 tensor [n, 28, 28, 1]: how a run holds its images. The nets
    scale them to [0, 1] as they read them (model.unit_range)."""
    return tf.constant(images[..., None])


@tf.function(autograph=False, input_signature=[tf.TensorSpec([], tf.int64)] * 5)
def index_windows(n, batch_size, steps_per_window, seed, start_step=0):
    """Endless int32 index windows [steps_per_window, batch_size]: a tf.data pipeline.

    Epoch e visits all n images in the order stateless_shuffle(range(n), seed=(seed, e));
    batches run across epoch boundaries, so step s always covers the samples
    [s * batch_size, (s + 1) * batch_size) of that endless stream, whatever start_step is.
    A run's order is thus a pure function of its seed, and the step counter is the whole data
    position a resume needs (a shuffle buffer would have to be checkpointed instead).

    Compiled, and so traced once per process: a pipeline built eagerly would trace its map
    function for every run. The dataset comes out of it as a value whose iterators trace
    nothing.
    """
    first_epoch, offset = (start_step * batch_size) // n, (start_step * batch_size) % n

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int32), seed=tf.stack([seed, epoch]))
        return order[tf.where(epoch == first_epoch, offset, 0):]

    windows = (tf.data.Dataset.range(first_epoch, tf.int64.max)
               .map(epoch_order)
               .rebatch(batch_size, drop_remainder=True)  # batches run across epochs
               .batch(steps_per_window, drop_remainder=True)
               .prefetch(1))
    options = tf.data.Options()
    # Autotuning's model is rebuilt for every iterator, and deleting an autotuned iterator
    # stalled a run for ~10-50 ms; a window's indices are ready long before it is needed.
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return windows.with_options(options)
