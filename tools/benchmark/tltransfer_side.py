"""tltransfer's side: its runs as its command line makes them (op determinism on), its floors
(the bare compiled calls of its Trainer), what the machine computes, evaluation chunk sizes, and
bfloat16 against float32."""

import os
import tempfile
import time

from tltransfer.config import Config
from tools.benchmark.measure import Stopwatch, best_rate, peak_rss_mib, progress
from tools.benchmark.settings import (BATCH, FLOOR_STEPS, LR, MATMUL_SIZE, MODES,
                                      PRECISION_MODES, PRECISION_SEEDS, STUDY_P)


def quiet(line):
    pass


class TltransferSide:
    """tltransfer's own runs, as its command line makes them (op determinism on)."""

    def __init__(self, settings, mnist, tasks, workdir):
        import tensorflow as tf
        from tltransfer import data, model
        from tltransfer.session import Session
        self.settings, self.mnist, self.tasks, self.workdir = settings, mnist, tasks, workdir
        self.session = Session()  # one per side, as one command has one
        tf.config.experimental.enable_op_determinism()
        # Untrained: restoring its weights costs what restoring trained ones does.
        self.source_weights = tf.train.Checkpoint(
            model=model.CNN(len(data.SOURCE_CLASSES), seed=0)).write(
                os.path.join(workdir, "source", "weights"))

    def config(self, mode, p, samples):
        return Config(mode=mode, p=p, train_samples=samples, source_samples=samples,
                      eval_every=self.settings.eval_every)

    def run(self, p, mode, samples):
        """experiment.fit with the net's construction and weight copy, as a run makes them."""
        from tltransfer import experiment, model, train
        config = self.config(mode, p, samples)
        run_dir = tempfile.mkdtemp(dir=self.workdir)
        watch = Stopwatch()
        net = model.CNN(self.tasks[p].num_classes, config.seed, config.dropout)
        if mode in ("frozen", "finetune"):
            train.copy_layers(net, self.source_weights)
        experiment.fit(config, self.tasks[p], net, run_dir, self.session, log=quiet,
                       progress=watch.progress)
        return watch.timing(samples)

    def study_slice(self, samples):
        """Whole experiment.run calls: run directory, source net, fit, weights, result.json."""
        from tltransfer import experiment
        logdir = tempfile.mkdtemp(dir=self.workdir)
        configs = {mode: self.config(mode, self.settings.study_p, samples) for mode in MODES}
        configs = {"source": configs["frozen"].source(), **configs}
        timings = {}
        for mode, config in configs.items():
            watch = Stopwatch()
            self.session.between_runs()
            experiment.run(config, logdir, log=quiet, mnist=self.mnist, progress=watch.progress,
                           session=self.session)
            timings[mode] = watch.timing(samples)
        return timings


def bare_rates(net, variables, inputs, labels, test_inputs, test_labels, settings,
               batch=BATCH, precision="float32"):
    """Floor rates of one Trainer: samples/s of train windows, images/s of evaluations."""
    import tensorflow as tf
    from tltransfer import train
    trainer = train.Trainer(net, variables, compute_dtype=precision)
    trainer.start(seed=0, learning_rate=LR)
    window = tf.random.stateless_uniform([FLOOR_STEPS, batch], seed=[0, 0], minval=0,
                                         maxval=int(inputs.shape[0]), dtype=tf.int32)
    trainer.train_window(inputs, labels, window)  # traces; tracing is start-up, not rate
    trainer.evaluate(test_inputs, test_labels)
    n_test = int(test_inputs.shape[0])
    train_rate = best_rate(lambda: trainer.train_window(inputs, labels, window),
                           FLOOR_STEPS * batch, settings.floor_windows, settings.repeats)
    eval_rate = best_rate(lambda: trainer.evaluate(test_inputs, test_labels), n_test,
                          settings.floor_evals, settings.repeats)
    return {"train_samples_per_s": train_rate, "eval_images_per_s": eval_rate,
            "test_images": n_test,
            "s_per_1000": 1000 / train_rate + 1000 / settings.eval_every * n_test / eval_rate}


def measure_floor(settings, mnist, extras):
    """float32 floors: the whole CNN (scratch, finetune) and the classifier on cached features
    (frozen, with the rate of the feature extraction a frozen run makes once); with `extras`,
    also the whole CNN in bfloat16 and with batches of 300."""
    from tltransfer import data, model
    from tltransfer.session import Session
    task = data.target_task(mnist, 1.0)
    train_x, train_y, test_x, test_y = task.tensors
    net = model.CNN(task.num_classes, seed=0)
    extract = Session().extract_features
    progress("floor: whole CNN")
    full = bare_rates(net, net.trainable_variables, train_x, train_y, test_x, test_y, settings)
    progress("floor: classifier on cached features")
    frozen = bare_rates(net.classifier, net.classifier.trainable_variables,
                        extract(net.features, train_x), train_y,
                        extract(net.features, test_x), test_y, settings)
    frozen["extract_images_per_s"] = best_rate(
        lambda: extract(net.features, test_x)[0], int(test_x.shape[0]),
        settings.floor_evals, settings.repeats)
    if not extras:  # the two floors the runs compare with
        return {"full": full, "frozen": frozen}
    progress("floor: whole CNN in bfloat16")
    bfloat16 = bare_rates(net, net.trainable_variables, train_x, train_y, test_x, test_y,
                          settings, precision="bfloat16")
    # Three seeds trained as one batched computation do the work of one batch of 300: it pays
    # only if a batch of 300 goes through faster per sample than a batch of 100.
    progress("floor: whole CNN, batch 300")
    batch_300 = bare_rates(net, net.trainable_variables, train_x, train_y, test_x, test_y,
                           settings, batch=3 * BATCH)
    return {"full": full, "frozen": frozen, "bfloat16": bfloat16, "batch_300": batch_300}


def matmul_gflops():
    """The machine's float32 matmul rate: 2048 x 2048, best of 5."""
    import tensorflow as tf
    a = tf.random.stateless_normal([MATMUL_SIZE, MATMUL_SIZE], seed=[0, 1])
    matmul = tf.function(lambda: tf.matmul(a, a))
    matmul()
    return best_rate(lambda: matmul()[0], 2 * MATMUL_SIZE ** 3 / 1e9, 10, 5)


def forward_flops_per_image():
    """The floating-point operations of one image's forward pass through the lab's CNN, as
    TensorFlow's profiler counts them."""
    import tensorflow as tf
    from tltransfer import model
    net = model.CNN(4, seed=0)
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *model.IMAGE_SHAPE]))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(forward.graph, options=options).total_float_ops


def measure_compute():
    """What the machine can do, and what the CNN asks of it."""
    return {"matmul_gflops": matmul_gflops(), "forward_flops_per_image": forward_flops_per_image()}


def measure_eval_chunk(chunk, mnist, evals, repeats):
    """Evaluation images/s (`evals` evaluations, the best of `repeats`) and this process's peak
    memory when the test set goes through in chunks of `chunk` images, and the chunk size
    tltransfer uses (train.EVAL_CHUNK)."""
    import tensorflow as tf
    from tltransfer import data, model, train
    tf.config.experimental.enable_op_determinism()
    task = data.target_task(mnist, STUDY_P)
    test_x, test_y = data.images_tensor(task.x_test), tf.constant(task.y_test)
    net = model.CNN(task.num_classes, seed=0)
    trainer = train.Trainer(net, net.trainable_variables, eval_chunk=chunk)
    trainer.evaluate(test_x, test_y)
    rate = best_rate(lambda: trainer.evaluate(test_x, test_y), int(test_x.shape[0]), evals, repeats)
    return {"eval_images_per_s": rate, "rss_mib": peak_rss_mib(),
            "eval_chunk": train.EVAL_CHUNK}


def measure_precision(mnist, samples):
    """Whole runs (experiment.run) of `samples` samples in float32 and in bfloat16, same seeds:
    their time and final accuracy, to tell whether bfloat16's speed costs accuracy beyond the
    seed spread."""
    import tensorflow as tf
    from tltransfer import experiment
    tf.config.experimental.enable_op_determinism()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="tltransfer-precision-") as logdir:
        for precision in ("float32", "bfloat16"):
            for mode in PRECISION_MODES:
                for seed in PRECISION_SEEDS:
                    config = Config(mode=mode, p=STUDY_P, seed=seed, precision=precision,
                                    train_samples=samples, source_samples=samples)
                    if mode == "finetune":  # its source net is not part of the timing
                        experiment.run(config.source(), logdir, log=quiet, mnist=mnist)
                    progress(f"precision: {config.name}")
                    start = time.perf_counter()
                    result = experiment.run(config, logdir, log=quiet, mnist=mnist)
                    figures.setdefault(f"{mode}/{precision}", []).append(
                        {"seed": seed, "accuracy": result["test_accuracy"],
                         "seconds": time.perf_counter() - start})
    return figures
