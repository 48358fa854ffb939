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


def source_task(mnist):
    return split(mnist, SOURCE_CLASSES, "digits 0-5")


def target_task(mnist, p):
    """Digits 6-9 relabelled 0-3, training on the first subset_size(p) images (nested prefixes)."""
    if not 0 < p <= 1:
        raise ValueError(f"p={p} is outside (0, 1]: it is the proportion of the training images used")
    full = split(mnist, TARGET_CLASSES, "digits 6-9")
    n = subset_size(p, len(full.y_train))
    if n == 0:
        raise ValueError(
            f"p={p} leaves no training images: use 0 < p <= 1 with at least "
            f"{SUBSET_GRANULARITY / len(full.y_train):.4g} ({SUBSET_GRANULARITY} images)")
    return dataclasses.replace(full, name=f"digits 6-9, p={p:g}",
                               x_train=full.x_train[:n], y_train=full.y_train[:n])


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
