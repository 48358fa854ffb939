"""The Keras baseline: runs as a student writes them (keras.Sequential, compile, fit fed from
tf.data with autotuning off, a callback that evaluates every few batches; frozen = conv layers
copied with trainable=False)."""

from tools.benchmark.measure import Stopwatch
from tools.benchmark.settings import BATCH, LR, MODES


def keras_net(num_classes):
    import keras
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def keras_images(images):
    return images[..., None].astype("float32") / 255


def keras_dataset(x, y, batch, shuffle=False):
    """A student's tf.data pipeline for Keras, with autotuning off (DESIGN.md: the autotuner
    can stall for seconds when an iterator is deleted, which would flatter tltransfer)."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=0).repeat()
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.batch(batch).with_options(options)


def evaluate_every(test, every_batches, budget_batches, watch):
    """The student's callback: evaluate on the whole test set every few batches."""
    import keras

    class EvaluateEvery(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches % every_batches == 0:
                self.model.evaluate(test, verbose=0)
                watch.mark(self.batches * BATCH)
            if self.batches == budget_batches:
                self.model.stop_training = True

    return EvaluateEvery()


class KerasSide:
    """Runs as a student writes them with plain Keras."""

    def __init__(self, settings, mnist, tasks):
        from tltransfer import data
        self.settings, self.mnist, self.tasks = settings, mnist, tasks
        # Untrained: copying its weights costs what copying trained ones does.
        self.source = keras_net(len(data.SOURCE_CLASSES))

    def train(self, task, mode, samples, source, watch):
        """Builds, copies conv weights, compiles and fits one net; returns it."""
        import keras
        train = keras_dataset(keras_images(task.x_train), task.y_train, BATCH, shuffle=True)
        # Keras's default batch for evaluate, as a student's call has it
        test = keras_dataset(keras_images(task.x_test), task.y_test, 32)
        net = keras_net(task.num_classes)
        if mode in ("frozen", "finetune"):
            for layer, source_layer in zip(net.layers[:2], source.layers[:2]):
                layer.set_weights(source_layer.get_weights())
                layer.trainable = mode == "finetune"
        net.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
        callback = evaluate_every(test, self.settings.eval_every // BATCH, samples // BATCH,
                                  watch)
        net.fit(train, epochs=1, steps_per_epoch=samples // BATCH, verbose=0,
                callbacks=[callback])
        return net

    def run(self, p, mode, samples):
        watch = Stopwatch()
        self.train(self.tasks[p], mode, samples, self.source, watch)
        return watch.timing(samples)

    def study_slice(self, samples):
        from tltransfer import data
        watch = Stopwatch()
        source = self.train(data.source_task(self.mnist), "source", samples, None, watch)
        timings = {"source": watch.timing(samples)}
        for mode in MODES:
            watch = Stopwatch()
            self.train(self.tasks[self.settings.study_p], mode, samples, source, watch)
            timings[mode] = watch.timing(samples)
        return timings


def measure_keras_whole(settings, mnist, mode):
    """The Keras side of a whole-process run: one run of `mode`, then the process ends."""
    from tltransfer import data
    task = data.target_task(mnist, settings.whole_p)
    side = KerasSide(settings, mnist, {settings.whole_p: task})
    side.run(settings.whole_p, mode, settings.whole_samples)
    return {}
