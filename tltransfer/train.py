"""Which variables train in each mode, and the compiled training window and evaluation."""

import tensorflow as tf

from tltransfer.config import MODES
from tltransfer.model import IMAGE_SHAPE

EVAL_CHUNK = 512  # test images per forward pass: as fast as 2048 here, ~470 MiB less memory


def trainable_variables(model, mode, transfer_layers=2):
    """The variables the optimizer sees, chosen from the module structure, never by name.

    frozen: only the layers after the first `transfer_layers` (copied) ones; with the lab's 2,
    exactly the classifier's variables.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "frozen":
        return tuple(v for layer in model.layers[transfer_layers:]
                     for v in layer.trainable_variables)
    return model.trainable_variables


def cross_entropy(logits, labels):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(logits, tf.float32)))


def count_correct(logits, labels):
    predicted = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.reduce_sum(tf.cast(predicted == labels, tf.int32))


class Trainer:
    """Adam on an explicit variable list of `net`, one compiled call per evaluation window.

    `net(inputs, training, seed)` returns logits (in `compute_dtype`). It is the whole CNN on
    images, or only its classifier on precomputed features when the features are frozen.
    Dropout masks are a stateless function of (seed, step), so the step counter is all the
    state a resume needs.
    """

    def __init__(self, net, variables, learning_rate, seed, compute_dtype=tf.float32,
                 slow_variables=(), slow_learning_rate=None):
        """`slow_variables` (some of `variables`) get an Adam of their own at
        `slow_learning_rate`: scaling their gradients instead would do nothing, as Adam
        normalises the scale away."""
        self.net = net
        # bfloat16 compute keeps float32 variables and optimizer: only activations are cast.
        self.compute_dtype = tf.as_dtype(compute_dtype)
        self.variables = tuple(variables)
        self.seed = int(seed)
        slow = {id(v) for v in slow_variables}
        groups = [(learning_rate, [i for i, v in enumerate(self.variables) if id(v) not in slow])]
        if slow:
            groups.append((slow_learning_rate,
                           [i for i, v in enumerate(self.variables) if id(v) in slow]))
        self._groups = []
        for rate, indices in groups:
            optimizer = tf.keras.optimizers.Adam(rate)
            # Slots must exist before a checkpoint restore and outside the compiled function.
            optimizer.build([self.variables[i] for i in indices])
            self._groups.append((optimizer, indices))
        self.optimizers = tuple(optimizer for optimizer, _ in self._groups)
        self.optimizer = self.optimizers[0]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.train_window = tf.function(self._train_window)
        self.evaluate = tf.function(self._evaluate)

    def _train_window(self, inputs, labels, windows):
        """Runs one step per row of `windows` (int32 [steps, batch] indices into inputs).

        Returns the window's mean training loss and accuracy.
        """
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0)
        for batch in windows:
            x = tf.gather(inputs, batch)
            y = tf.gather(labels, batch)
            seed = tf.stack([tf.constant(self.seed, tf.int64), self.step])
            with tf.GradientTape() as tape:
                logits = self.net(tf.cast(x, self.compute_dtype), training=True, seed=seed)
                loss = cross_entropy(logits, y)
            grads = tape.gradient(loss, self.variables)
            for optimizer, indices in self._groups:
                optimizer.apply_gradients([(grads[i], self.variables[i]) for i in indices])
            self.step.assign_add(1)
            loss_sum += loss
            correct += count_correct(logits, y)
        steps = tf.shape(windows)[0]
        return (loss_sum / tf.cast(steps, tf.float32),
                tf.cast(correct, tf.float32) / tf.cast(tf.size(windows), tf.float32))

    def _evaluate(self, inputs, labels):
        """Accuracy and mean loss of the net on all of `inputs`, in chunks."""
        n = tf.shape(inputs)[0]
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0)
        for start in tf.range(0, n, EVAL_CHUNK):
            x = tf.cast(inputs[start:start + EVAL_CHUNK], self.compute_dtype)
            logits = self.net(x, training=False)
            y = labels[start:start + EVAL_CHUNK]
            loss_sum += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=tf.cast(logits, tf.float32)))
            correct += count_correct(logits, y)
        n = tf.cast(n, tf.float32)
        return tf.cast(correct, tf.float32) / n, loss_sum / n


def feature_extractor(features):
    """`features` as a function of any number of images, compiled once (one trace per run).

    The images go through in chunks, so memory stays bounded; returns float32 [n, d].
    """
    compiled = tf.function(features, input_signature=[tf.TensorSpec([None, *IMAGE_SHAPE])])

    def extract(images):
        return tf.concat([compiled(images[i:i + EVAL_CHUNK])
                          for i in range(0, int(images.shape[0]), EVAL_CHUNK)], axis=0)
    return extract
