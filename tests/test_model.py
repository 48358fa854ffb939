import math

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import model

# The spec's network, counted by hand: conv 3x3x1x32 + 32, conv 3x3x32x32 + 32,
# dense (12*12*32)x128 + 128, dense 128xk + k.
SPEC_PARAMS = {4: 320 + 9248 + 589952 + 516, 6: 320 + 9248 + 589952 + 774}


def images(n=8, seed=0):
    return tf.random.stateless_uniform([n, 28, 28, 1], seed=[seed, 0])


@pytest.mark.parametrize("classes", [4, 6])
def test_shapes_and_parameter_count(classes):
    net = model.CNN(classes, seed=0)
    assert net(images()).shape == (8, classes)
    assert net.features(images()).shape == (8, 12 * 12 * 32)
    assert sum(int(np.prod(v.shape)) for v in net.trainable_variables) == SPEC_PARAMS[classes]
    assert len(net.features.trainable_variables) == 4
    assert len(net.classifier.trainable_variables) == 4


def test_init_is_glorot_uniform_with_zero_biases_and_seeded():
    net, same, other = model.CNN(4, seed=1), model.CNN(4, seed=1), model.CNN(4, seed=2)
    w = net.classifier.hidden.w.numpy()
    limit = math.sqrt(6 / (4608 + 128))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert abs(w.mean()) < 0.01 * limit
    assert not net.features.conv1.b.numpy().any()
    for a, b, c in zip(net.trainable_variables, same.trainable_variables,
                       other.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        if "/w" in a.name or a.name.startswith("w"):
            assert not np.array_equal(a.numpy(), c.numpy())


def test_dropout_acts_only_in_training():
    with_dropout, without = model.CNN(4, seed=0, dropout=0.5), model.CNN(4, seed=0)
    x = images()
    np.testing.assert_array_equal(with_dropout(x).numpy(), without(x).numpy())
    seed = tf.constant([0, 1], tf.int64)
    train_a = with_dropout(x, training=True, seed=seed).numpy()
    train_b = with_dropout(x, training=True, seed=seed).numpy()
    train_c = with_dropout(x, training=True, seed=tf.constant([0, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(train_a, train_b)  # masks are a function of the seed
    assert not np.allclose(train_a, with_dropout(x).numpy())
    assert not np.allclose(train_a, train_c)
    np.testing.assert_array_equal(without(x, training=True, seed=seed).numpy(), without(x).numpy())


def test_unit_range_is_the_correctly_rounded_division_of_every_pixel_value():
    # Every run's bits rest on these 256 values, looked up inside compiled functions.
    pixels = tf.constant(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
    expected = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1) / np.float32(255)
    for scaled in (model.unit_range(pixels), tf.function(model.unit_range)(pixels)):
        assert scaled.dtype == tf.float32
        np.testing.assert_array_equal(scaled.numpy().view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(model.unit_range(tf.constant(expected)), expected)


def test_the_net_reads_uint8_pixels_as_their_unit_range_values():
    pixels = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1), np.uint8))
    net = model.CNN(4, seed=0)
    np.testing.assert_array_equal(net(pixels), net(tf.cast(pixels, tf.float32) / 255.0))
