"""The lab's CNN as tf.Modules: features (conv, conv, pool) + classifier (dense 128, logits).

Variables are explicit and initialised as Keras does (Glorot-uniform kernels, zero biases), from
stateless seeds, so a (seed, shape) pair always gives the same network.
"""

import math

import numpy as np
import tensorflow as tf

IMAGE_SHAPE = (28, 28, 1)
# x / 255 for each of the 256 pixel values, rounded as a float32 division rounds it. Runs hold
# their images as uint8 (a quarter of float32's memory, and no conversion pass per run) and the
# nets look each pixel up here: a lookup leaves TensorFlow's graph optimiser no arithmetic to
# rewrite, so compiled functions see exactly the values an eager division gives.
UNIT_PIXELS = np.arange(256, dtype=np.float32) / np.float32(255)


def unit_range(images):
    """uint8 pixel images -> float32 in [0, 1] (UNIT_PIXELS); floating-point ones unchanged."""
    if images.dtype != tf.uint8:
        return images
    return tf.gather(UNIT_PIXELS, tf.cast(images, tf.int32))


def glorot_uniform(shape, fan_in, fan_out, seed):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.stateless_uniform(shape, seed=seed, minval=-limit, maxval=limit)


class Conv2D(tf.Module):
    """3x3-style convolution, stride 1, 'valid' padding, ReLU."""

    def __init__(self, in_channels, filters, kernel_size, seed, name=None):
        super().__init__(name=name)
        shape = (kernel_size, kernel_size, in_channels, filters)
        area = kernel_size * kernel_size
        self.w = tf.Variable(glorot_uniform(shape, area * in_channels, area * filters, seed),
                             name="w")
        self.b = tf.Variable(tf.zeros([filters]), name="b")

    def __call__(self, x):
        w = tf.cast(self.w, x.dtype)
        b = tf.cast(self.b, x.dtype)
        return tf.nn.relu(tf.nn.conv2d(x, w, strides=1, padding="VALID") + b)


class Dense(tf.Module):
    def __init__(self, in_features, out_features, seed, name=None):
        super().__init__(name=name)
        self.w = tf.Variable(
            glorot_uniform((in_features, out_features), in_features, out_features, seed),
            name="w")
        self.b = tf.Variable(tf.zeros([out_features]), name="b")

    def __call__(self, x):
        return tf.matmul(x, tf.cast(self.w, x.dtype)) + tf.cast(self.b, x.dtype)


class Features(tf.Module):
    """Layers 1-3: conv 32 3x3 ReLU, conv 32 3x3 ReLU, max-pool 2x2; flattened output.

    Takes uint8 pixel images (see data.images_tensor), or images already in [0, 1].
    """

    input_shape, input_dtype = IMAGE_SHAPE, tf.uint8

    def __init__(self, seed, filters=32, name=None):
        super().__init__(name=name)
        self.conv1 = Conv2D(IMAGE_SHAPE[-1], filters, 3, seed=[seed, 1], name="conv1")
        self.conv2 = Conv2D(filters, filters, 3, seed=[seed, 2], name="conv2")
        side = (IMAGE_SHAPE[0] - 4) // 2
        self.output_size = side * side * filters

    def __call__(self, images):
        x = self.conv2(self.conv1(unit_range(images)))
        x = tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")
        return tf.reshape(x, [-1, self.output_size])


class Classifier(tf.Module):
    """Layers 4-5: dense 128 ReLU, dense logits; dropout on the inputs of both when training."""

    input_dtype = tf.float32  # features

    def __init__(self, in_features, num_classes, seed, dropout=0.0, hidden=128, name=None):
        super().__init__(name=name)
        self.dropout = float(dropout)
        self.hidden = Dense(in_features, hidden, seed=[seed, 4], name="dense1")
        self.logits = Dense(hidden, num_classes, seed=[seed, 5], name="dense2")

    @property
    def input_shape(self):
        return (int(self.hidden.w.shape[0]),)

    @property
    def layers(self):
        """The layers with weights, in order: the spec's layers 4 and 5."""
        return (self.hidden, self.logits)

    def _drop(self, x, training, seed, layer):
        if not training or self.dropout == 0.0:
            return x
        return tf.nn.experimental.stateless_dropout(
            x, rate=self.dropout, seed=tf.random.experimental.stateless_fold_in(seed, layer))

    def __call__(self, features, training=False, seed=None):
        """`seed` (shape [2] int) is required when training with dropout; it picks the masks."""
        x = self._drop(features, training, seed, 4)
        x = tf.nn.relu(self.hidden(x))
        x = self._drop(x, training, seed, 5)
        return self.logits(x)


class CNN(tf.Module):
    input_shape, input_dtype = Features.input_shape, Features.input_dtype

    def __init__(self, num_classes, seed, dropout=0.0, name=None):
        super().__init__(name=name)
        self.features = Features(seed, name="features")
        self.classifier = Classifier(self.features.output_size, num_classes, seed,
                                     dropout=dropout, name="classifier")

    @property
    def layers(self):
        """The layers with weights, in order: the spec's layers 1, 2, 4 and 5."""
        return (self.features.conv1, self.features.conv2, *self.classifier.layers)

    @property
    def dropout(self):
        return self.classifier.dropout

    def __call__(self, images, training=False, seed=None):
        return self.classifier(self.features(images), training=training, seed=seed)
