"""MNIST as shipped with the package -> class-split tasks -> tf.data index pipelines.

The images stay uint8 in NumPy until a run turns its task into float32 tensors once; the
training pipeline only yields *indices* into those tensors, so a batch order is a pure function
of (seed, epoch) and a step counter is the whole data position.
"""

import dataclasses
import functools
import hashlib
import os

import numpy as np
import tensorflow as tf

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
    x_train: np.ndarray  # uint8 [60000, 28, 28], official order
    y_train: np.ndarray  # uint8 [60000]
    x_test: np.ndarray   # uint8 [10000, 28, 28]
    y_test: np.ndarray   # uint8 [10000]


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
            f"MNIST file {path} is corrupted (SHA-256 {actual[:12]}..., expected {sha256[:12]}...); "
            "restore it with `git checkout -- tltransfer/mnist.npz` or reinstall tltransfer")
    with np.load(path) as f:
        return Mnist(f["x_train"], f["y_train"], f["x_test"], f["y_test"])


def split(mnist, classes, name):
    """The images of `classes`, in official order, relabelled by position in `classes`."""
    classes = tuple(int(c) for c in classes)
    relabel = np.full(10, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    train = np.isin(mnist.y_train, classes)
    test = np.isin(mnist.y_test, classes)
    return Task(name, classes,
                mnist.x_train[train], relabel[mnist.y_train[train]],
                mnist.x_test[test], relabel[mnist.y_test[test]])


def subset_size(p, available):
    """The course's subset size: 100 * floor(floor(p * available) / 100)."""
    return SUBSET_GRANULARITY * (int(np.floor(p * available)) // SUBSET_GRANULARITY)


def parse_classes(spec):
    """'0-5', '5-9', 'odd', 'even', '1,3,7' or mixtures like '0-2,7' -> sorted tuple of digits."""
    digits = []
    for part in str(spec).replace(" ", "").split(","):
        if part in ("odd", "even"):
            digits += range(1 if part == "odd" else 0, 10, 2)
        elif "-" in part:
            low, _, high = part.partition("-")
            if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
                raise ValueError(f"classes {spec!r}: {part!r} is not a range like 0-5")
            digits += range(int(low), int(high) + 1)
        elif part.isdigit():
            digits.append(int(part))
        else:
            raise ValueError(f"classes {spec!r}: {part!r} is not a digit, a range like 0-5, "
                             "'odd' or 'even'")
    if any(d > 9 for d in digits) or len(set(digits)) < 2:
        raise ValueError(f"classes {spec!r} must name at least two of the digits 0-9")
    return tuple(sorted(set(digits)))


def format_classes(classes):
    """The canonical spec of a set of digits: runs of 3 or more as ranges ('0-5', '1,3,5')."""
    parts, run = [], [classes[0]]
    for digit in classes[1:] + (None,):
        if digit is not None and digit == run[-1] + 1:
            run.append(digit)
            continue
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(d) for d in run]
        run = [digit]
    return ",".join(parts)


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
        raise ValueError(f"p={p} is outside (0, 1]: it is the proportion of the training images used")
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


def images_tensor(images):
    """uint8 [n, 28, 28] -> float32 [n, 28, 28, 1] in [0, 1]."""
    return tf.constant(images[..., None], tf.float32) / 255.0


def index_windows(n, batch_size, steps_per_window, seed, start_step=0):
    """tf.data pipeline of int32 index windows [steps_per_window, batch_size], endless.

    Epoch e visits all n images in the order stateless_shuffle(range(n), seed=(seed, e));
    batches run across epoch boundaries, so step s always covers the samples
    [s * batch_size, (s + 1) * batch_size) of that endless stream, whatever start_step is.
    """
    start_sample = start_step * batch_size
    first_epoch, offset = divmod(start_sample, n)

    def epoch_order(epoch):
        return tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int32), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))

    ds = (tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max)
          .map(epoch_order)
          .unbatch()
          .skip(offset)
          .batch(batch_size)
          .batch(steps_per_window)
          .prefetch(2))
    options = tf.data.Options()
    # The autotuner can stall for seconds when an iterator is deleted (DESIGN.md); this
    # pipeline only moves indices, so there is nothing for it to tune.
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)
