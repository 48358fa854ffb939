"""How fast is tltransfer? Times it against a plain Keras baseline on the same data and protocol.

    python tools/benchmark.py --json=benchmark.json     # the full benchmark: ~13 min, 2 idle cores
    python tools/benchmark.py --quick                   # a smoke version, about a minute

The protocol is the study's: batch 100, Adam 1e-3, test accuracy on all 6-9 test images every
1,000 training samples. Each side is measured in its own process, so that its peak memory is
its own and neither inherits the other's warm state:
  keras       a student's run: keras.Sequential, compile, fit with a callback that calls
              model.evaluate every 10 batches (frozen: conv layers copied, trainable=False)
  tltransfer  experiment.fit for the per-mode figures, experiment.run for the study slice;
              then (after its peak memory is read) the float32 floor: the bare compiled train
              window and evaluation of its Trainer
Every timed run is measured --repeats times and the median is reported. A run's time is split
into a steady-state rate (from the end of its first evaluation window to its end) and a
start-up (the whole run minus its samples at the steady rate: tracing, feature caching, the
first window's extra cost, closing). The whole default study is extrapolated from both.
The full benchmark also measures, each in a process of its own, the floor without op
determinism, bfloat16 against float32 (whole runs, 3 seeds) and evaluation chunk sizes (speed
and peak memory); and the machine's float32 matmul rate, to tell how close the floor is to the
hardware.
"""

import dataclasses
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

from tltransfer.config import Config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write every figure, by name, to this JSON file.")
flags.DEFINE_integer("repeats", 3, "Measurements of each figure; the median is reported (the "
                     "floors report the best).")
flags.DEFINE_integer("samples", 5000, "Training samples of each timed run: a multiple of 1000 "
                     "(the evaluation interval), at least 2000 so a steady state follows the "
                     "first window.")
flags.DEFINE_list("p", ["0.1", "1.0"], "Proportions of the 6-9 training images to time.")
flags.DEFINE_integer("study_samples", 3000, "Training samples of each run of the study slice "
                     "the whole-study time is extrapolated from (same rules as --samples).")
flags.DEFINE_bool("quick", False, "Smoke version: 300 samples per run, evaluation every 100, "
                  "1 repeat, p=0.005, a 200-sample study slice. Its figures are not "
                  "representative.")
flags.DEFINE_integer("precision_samples", 20_000, "Training samples of each run of the "
                     "bfloat16-vs-float32 comparison (scratch and finetune at p=0.1, 3 seeds).")
flags.DEFINE_integer("whole_samples", 20_000, "Training samples of each whole-process run "
                     "(scratch, frozen and finetune at p=0.1, each side in a fresh process).")
flags.DEFINE_integer("memory_runs", 50, "Runs of the long-process measurement (peak memory "
                     "after 5 runs and after this many, and each run's time outside compiled "
                     "calls); at least 6.")
flags.DEFINE_bool("extras", True, "Also measure the floor without op determinism, the "
                  "bfloat16 and batch-300 floors, bfloat16 against float32 in whole runs and every "
                  "evaluation chunk size. --noextras leaves them out: on a CPU without AVX512-BF16 "
                  "the bfloat16 parts alone take half an hour.")
flags.DEFINE_enum("side", None, ["keras", "tltransfer", "nondeterministic", "precision",
                                  "eval_chunk", "keras_whole", "memory"],
                  "Internal: measure one side in this process and write it to --side_out.")
flags.DEFINE_enum("whole_mode", None, ["scratch", "frozen", "finetune"],
                  "Internal: with --side=keras_whole, the mode of the one run to make.")
flags.DEFINE_integer("eval_chunk", None, "Internal: with --side=eval_chunk, the test images "
                     "per forward pass to measure.")
flags.DEFINE_string("side_out", None, "Internal: the JSON file --side writes.")

SIDES = ("keras", "tltransfer")
MODES = ("scratch", "frozen", "finetune")
BATCH = 100
LR = 1e-3
EVAL_EVERY = 1000
FLOOR_STEPS = 10  # batches per bare train window: one evaluation interval of the study
STUDY_P = 0.1
# The default study (tltransfer.main with no flags): 3 seeds x 2 dropouts, each with one source
# net and 4 proportions x 3 modes of target runs, every run 60,000 samples.
STUDY_SAMPLES = 60_000
STUDY_SOURCES = 3 * 2
STUDY_TARGETS_PER_MODE = STUDY_SOURCES * 4
STUDY_RUNS = STUDY_SOURCES + STUDY_TARGETS_PER_MODE * len(MODES)
TIMING_KEYS = ("s_per_1000", "total_s", "startup_s")
MATMUL_SIZE = 2048
EVAL_CHUNKS = (256, 512, 2048)  # test images per forward pass: speed against memory


@dataclasses.dataclass(frozen=True)
class Settings:
    samples: int
    eval_every: int
    repeats: int
    ps: tuple
    study_p: float
    study_samples: int
    floor_windows: int  # bare train windows per floor measurement
    floor_evals: int    # bare evaluations per floor measurement
    warm_up: bool       # one untimed run first, so process start-up lands in no figure
    quick: bool
    whole_samples: int = 20_000  # per whole-process run
    whole_p: float = 0.1
    memory_runs: int = 50
    memory_samples: int = 2000  # per run of the long-process measurement
    memory_p: float = 0.01
    extras: bool = True  # see --extras

    def side_flags(self):
        """The flags that make a side process resolve these same settings."""
        if self.quick:
            return ["--quick"]
        return [f"--samples={self.samples}", f"--repeats={self.repeats}",
                f"--p={','.join(map(repr, self.ps))}",
                f"--study_samples={self.study_samples}",
                f"--whole_samples={self.whole_samples}", f"--memory_runs={self.memory_runs}",
                "--extras" if self.extras else "--noextras"]


QUICK = Settings(samples=300, eval_every=100, repeats=1, ps=(0.005,), study_p=0.005,
                 study_samples=200, floor_windows=2, floor_evals=2, warm_up=False, quick=True,
                 whole_samples=300, whole_p=0.005, memory_runs=8, memory_samples=200,
                 memory_p=0.005)
BUDGET_FLAGS = ("samples", "repeats", "p", "study_samples", "whole_samples",
                "memory_runs")  # what --quick sets itself


def load_mnist():
    """The shipped MNIST; a damaged file is a ValueError like any other bad input."""
    from tltransfer import data
    try:
        return data.load_mnist()
    except data.DataError as e:
        raise ValueError(str(e)) from e


def settings_from_flags():
    """Validated Settings; raises ValueError with the flag at fault."""
    if FLAGS.quick:
        given = [f"--{name}" for name in BUDGET_FLAGS if FLAGS[name].present]
        if given:
            raise ValueError(f"--quick sets its own budgets; drop {', '.join(given)}")
        return QUICK
    if FLAGS.repeats < 1:
        raise ValueError(f"--repeats={FLAGS.repeats} must be at least 1")
    if FLAGS.memory_runs < 6:
        raise ValueError(f"--memory_runs={FLAGS.memory_runs} must be at least 6 (it compares "
                         "with the peak after 5 runs)")
    for name in ("samples", "study_samples", "whole_samples"):
        value = FLAGS[name].value
        if value < 2 * EVAL_EVERY or value % EVAL_EVERY:
            raise ValueError(f"--{name}={value} must be a multiple of {EVAL_EVERY} (the "
                             f"evaluation interval) and at least {2 * EVAL_EVERY}")
    try:
        ps = tuple(float(p) for p in FLAGS.p)
    except ValueError:
        raise ValueError(f"--p={','.join(FLAGS.p)}: every value must be a number") from None
    if not ps:
        raise ValueError("--p is empty; give at least one proportion")
    from tltransfer import data
    mnist = load_mnist()
    for p in ps:
        data.target_task(mnist, p)  # its ValueError names p and what is wrong with it
    return Settings(samples=FLAGS.samples, eval_every=EVAL_EVERY, repeats=FLAGS.repeats,
                    ps=tuple(dict.fromkeys(ps)), study_p=STUDY_P,
                    study_samples=FLAGS.study_samples, floor_windows=20, floor_evals=10,
                    warm_up=True, quick=False, whole_samples=FLAGS.whole_samples,
                    memory_runs=FLAGS.memory_runs, extras=FLAGS.extras)


def progress(line):
    # stderr, so that stdout holds the table alone
    print(line, file=sys.stderr, flush=True)


class Stopwatch:
    """Wall time of one run and the moments its evaluation windows ended."""

    def __init__(self):
        self.start = time.perf_counter()
        self.marks = []  # (seconds since start, samples trained by then)

    def mark(self, samples):
        self.marks.append((time.perf_counter() - self.start, samples))

    def progress(self, event):
        """tltransfer's progress callback: a Progress event after every evaluation."""
        self.mark(event.samples)

    def timing(self, samples):
        """The run's figures, its garbage collected first and charged to it.

        Keras's tf.data iterators sit in reference cycles, so only a collection frees them, and
        freeing an old one waits for its autotuner, whose sleeps double with age: a collection
        that fell inside a later run once cost that run 20 s. Collecting after every run bills
        each run for its own garbage (a few tenths of a second) and keeps repeats comparable.
        """
        gc.collect()
        total = time.perf_counter() - self.start
        if len(self.marks) < 2 or self.marks[-1][1] != samples:
            raise RuntimeError(f"expected progress after the first and the last window, got "
                               f"{self.marks}")
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        steady = 1000 * (t1 - t0) / (s1 - s0)
        return {"s_per_1000": steady, "total_s": total,
                "startup_s": total - samples / 1000 * steady}


def median_timings(timings):
    """The median of each figure over repeats, with the repeats themselves."""
    summary = {key: statistics.median(t[key] for t in timings) for key in TIMING_KEYS}
    summary.update({f"repeats_{key}": [t[key] for t in timings] for key in TIMING_KEYS})
    return summary


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


class TltransferSide:
    """tltransfer's own runs, as its command line makes them (op determinism on)."""

    def __init__(self, settings, mnist, tasks, workdir):
        import tensorflow as tf
        from tltransfer import data, model
        self.settings, self.mnist, self.tasks, self.workdir = settings, mnist, tasks, workdir
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
        from tltransfer import experiment, model
        config = self.config(mode, p, samples)
        run_dir = tempfile.mkdtemp(dir=self.workdir)
        watch = Stopwatch()
        net = model.CNN(self.tasks[p].num_classes, config.seed, config.dropout)
        if mode in ("frozen", "finetune"):
            experiment.copy_layers(net, self.source_weights)
        experiment.fit(config, self.tasks[p], net, run_dir, log=lambda line: None,
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
            experiment.run(config, logdir, log=lambda line: None, mnist=self.mnist,
                           progress=watch.progress)
            timings[mode] = watch.timing(samples)
        return timings


def best_rate(call, items_per_call, calls, repeats):
    """Items per second of `calls` back-to-back calls, the best of `repeats`."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            result = call()
        float(result[0])  # the run loop reads every result too
        best = max(best, calls * items_per_call / (time.perf_counter() - start))
    return best


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


def measure_floor(settings, mnist):
    """float32 floors: the whole CNN (scratch, finetune) and the classifier on cached features
    (frozen)."""
    import tensorflow as tf
    from tltransfer import data, model, train
    task = data.target_task(mnist, 1.0)
    train_x, test_x = data.images_tensor(task.x_train), data.images_tensor(task.x_test)
    train_y, test_y = tf.constant(task.y_train), tf.constant(task.y_test)
    net = model.CNN(task.num_classes, seed=0)
    progress("floor: whole CNN")
    full = bare_rates(net, net.trainable_variables, train_x, train_y, test_x, test_y, settings)
    progress("floor: classifier on cached features")
    frozen = bare_rates(net.classifier, net.classifier.trainable_variables,
                        train.extract_features(net.features, train_x), train_y,
                        train.extract_features(net.features, test_x), test_y, settings)
    if settings.quick or not settings.extras:  # the two floors the runs compare with
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


def measure_compute():
    """What the machine can do: float32 matmul GFLOP/s (2048 x 2048, best of 5), and the
    floating-point operations of one image's forward pass through the lab's CNN, as
    TensorFlow's profiler counts them."""
    import tensorflow as tf
    from tltransfer import model
    a = tf.random.stateless_normal([MATMUL_SIZE, MATMUL_SIZE], seed=[0, 1])
    matmul = tf.function(lambda: tf.matmul(a, a))
    matmul()
    gflops = best_rate(lambda: matmul()[0], 2 * MATMUL_SIZE ** 3 / 1e9, 10, 5)
    net = model.CNN(4, seed=0)
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *model.IMAGE_SHAPE]))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = tf.compat.v1.profiler.profile(forward.graph, options=options).total_float_ops
    return {"matmul_gflops": gflops, "forward_flops_per_image": flops}


def measure_eval_chunk(chunk, mnist):
    """Evaluation images/s and this process's peak memory when the test set goes through in
    chunks of `chunk` images (train.EVAL_CHUNK)."""
    import tensorflow as tf
    from tltransfer import data, model, train
    tf.config.experimental.enable_op_determinism()
    train.EVAL_CHUNK = chunk
    task = data.target_task(mnist, STUDY_P)
    test_x, test_y = data.images_tensor(task.x_test), tf.constant(task.y_test)
    net = model.CNN(task.num_classes, seed=0)
    trainer = train.Trainer(net, net.trainable_variables)
    trainer.evaluate(test_x, test_y)
    rate = best_rate(lambda: trainer.evaluate(test_x, test_y), int(test_x.shape[0]), 8, 3)
    return {"eval_images_per_s": rate, "rss_mib": peak_rss_mib()}


def measure_runs(side, name, settings):
    """Per-mode runs and the study slice of one side, medians over repeats."""
    if settings.warm_up:
        side.run(settings.ps[0], "scratch", 2 * settings.eval_every)
    runs = {(p, mode): [] for p in settings.ps for mode in MODES}
    slices = []
    for repeat in range(settings.repeats):
        for (p, mode), timings in runs.items():
            timings.append(side.run(p, mode, settings.samples))
            progress(f"{name}: {mode} p={p:g} repeat {repeat + 1}/{settings.repeats}: "
                     f"{timings[-1]['total_s']:.2f} s")
        slices.append(side.study_slice(settings.study_samples))
        progress(f"{name}: study slice repeat {repeat + 1}/{settings.repeats}: "
                 f"{sum(t['total_s'] for t in slices[-1].values()):.2f} s")
    return {"runs": [{"mode": mode, "p": p, **median_timings(timings)}
                     for (p, mode), timings in runs.items()],
            "study_slice": {mode: median_timings([s[mode] for s in slices])
                            for mode in slices[0]}}


# A fresh interpreter that times `import tensorflow`, writes it to argv[1], then runs the module
# named in argv[2] as `python -m` would, with the rest of argv as its arguments.
WHOLE_CHILD = """import json, runpy, sys, time
start = time.perf_counter()
import tensorflow
with open(sys.argv[1], "w") as f:
    json.dump({"import_s": time.perf_counter() - start}, f)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def whole_process(module, *args):
    """Seconds of a fresh `python -m module args` minus its `import tensorflow`, and that
    import's seconds: everything a user waits for but TensorFlow's own loading."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "import.json")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WHOLE_CHILD, out, module, *args], cwd=REPO,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)} failed (exit status "
                               f"{done.returncode}): {done.stderr[-2000:]}")
        with open(out) as f:
            imported = json.load(f)["import_s"]
    return {"total_s": seconds - imported, "import_s": imported}


def measure_whole(settings):
    """Each mode's run as a whole process, each side fresh: tltransfer's command line (its
    source net already trained, as in a study) against the Keras script of the same run."""
    eval_every = settings.eval_every
    common = ["--dropout=0", "--seed=0", f"--eval_every={eval_every}",
              f"--source_samples={2 * eval_every}"]
    figures = {mode: {"keras": [], "tltransfer": []} for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tltransfer-whole-") as tmp:
        sources = os.path.join(tmp, "sources")
        whole_process("tltransfer.main", "--mode=source", *common, f"--logdir={sources}")
        source = Config(mode="source", source_samples=2 * eval_every, eval_every=eval_every).name
        for repeat in range(settings.repeats):
            for mode in MODES:
                logdir = os.path.join(tmp, f"{mode}{repeat}")
                os.makedirs(logdir)
                os.symlink(os.path.join(sources, source), os.path.join(logdir, source))
                figures[mode]["tltransfer"].append(whole_process(
                    "tltransfer.main", f"--mode={mode}", f"--p={settings.whole_p}", *common,
                    f"--train_samples={settings.whole_samples}", f"--logdir={logdir}"))
                figures[mode]["keras"].append(whole_process(
                    "tools.benchmark", "--side=keras_whole", f"--whole_mode={mode}",
                    f"--side_out={os.path.join(tmp, 'keras.json')}", *settings.side_flags()))
                progress(f"whole process: {mode} repeat {repeat + 1}/{settings.repeats}: keras "
                         f"{figures[mode]['keras'][-1]['total_s']:.2f} s, tltransfer "
                         f"{figures[mode]['tltransfer'][-1]['total_s']:.2f} s")
    runs = []
    for mode in MODES:
        run = {"mode": mode}
        for side in SIDES:
            repeats = figures[mode][side]
            run[side] = {key: statistics.median(r[key] for r in repeats)
                         for key in ("total_s", "import_s")}
            run[side]["repeats_total_s"] = [r["total_s"] for r in repeats]
        run["ratio"] = run["keras"]["total_s"] / run["tltransfer"]["total_s"]
        runs.append(run)
    return {"p": settings.whole_p, "samples": settings.whole_samples, "runs": runs}


def measure_keras_whole(settings, mnist):
    """The Keras side of a whole-process run: one run, then the process ends."""
    from tltransfer import data
    task = data.target_task(mnist, settings.whole_p)
    side = KerasSide(settings, mnist, {settings.whole_p: task})
    side.run(settings.whole_p, FLAGS.whole_mode, settings.whole_samples)
    return {}


def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def measure_memory(settings, mnist):
    """One long process of runs of the same shapes (a source net, then its scratch, frozen and
    finetune runs, seed after seed), as a study makes them: peak memory after 5 runs and after
    all, and each run's seconds outside compiled calls (its wall time minus its training
    windows and evaluations, from its Progress events, and its feature extraction)."""
    import tensorflow as tf
    from tltransfer import experiment, train
    tf.config.experimental.enable_op_determinism()
    extract, extracting = train.extract_features, [0.0]

    def timed_extract(*args):
        start = time.perf_counter()
        features = extract(*args)
        extracting[0] += time.perf_counter() - start
        return features
    train.extract_features = timed_extract
    configs, seed = [], 0
    while len(configs) < settings.memory_runs:
        target = Config(mode="scratch", p=settings.memory_p, seed=seed,
                        train_samples=settings.memory_samples,
                        source_samples=settings.memory_samples, eval_every=settings.eval_every)
        configs += [target.source()] + [dataclasses.replace(target, mode=mode) for mode in MODES]
        seed += 1
    runs = []
    with tempfile.TemporaryDirectory(prefix="tltransfer-memory-") as logdir:
        for config in configs[:settings.memory_runs]:
            events, extracting[0] = [], 0.0
            start = time.perf_counter()
            experiment.run(config, logdir, log=lambda line: None, mnist=mnist,
                           progress=events.append)
            wall = time.perf_counter() - start
            compiled = events[-1].train_seconds + extracting[0]
            runs.append({"mode": config.mode, "wall_s": wall, "compiled_s": compiled,
                         "outside_s": wall - compiled, "rss_mib": current_rss_mib(),
                         "peak_rss_mib": peak_rss_mib()})
    return {"p": settings.memory_p, "samples": settings.memory_samples, "runs": runs}


def memory_summary(memory):
    """Peak RSS after 5 runs and after all; seconds outside compiled calls per run, for the
    first run of each shape and for the later ones."""
    runs = memory["runs"]
    seen, first, later = set(), [], []
    for run in runs:
        (later if run["mode"] in seen else first).append(run["outside_s"])
        seen.add(run["mode"])
    return {"runs": len(runs), "peak_after_5_mib": runs[4]["peak_rss_mib"],
            "peak_after_all_mib": runs[-1]["peak_rss_mib"],
            "growth_mib": runs[-1]["peak_rss_mib"] - runs[4]["peak_rss_mib"],
            "outside_first_s": first, "outside_later_median_s": statistics.median(later),
            "outside_later_max_s": max(later)}


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_side(name, settings):
    mnist = load_mnist()
    if name == "keras_whole":  # first, so that the process does nothing else
        return measure_keras_whole(settings, mnist)
    import keras
    import tensorflow as tf
    from tltransfer import data, train
    tasks = {p: data.target_task(mnist, p) for p in (*settings.ps, settings.study_p)}
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__}
    if name == "keras":
        figures = measure_runs(KerasSide(settings, mnist, tasks), name, settings)
        return {**figures, "rss_mib": peak_rss_mib(), "versions": versions}
    if name == "nondeterministic":  # the floor again, in a process without op determinism
        return {"floor": measure_floor(settings, mnist)}
    if name == "precision":
        return measure_precision(mnist)
    if name == "eval_chunk":
        return measure_eval_chunk(FLAGS.eval_chunk, mnist)
    if name == "memory":
        return measure_memory(settings, mnist)
    with tempfile.TemporaryDirectory(prefix="tltransfer-benchmark-") as workdir:
        figures = measure_runs(TltransferSide(settings, mnist, tasks, workdir), name, settings)
    rss = peak_rss_mib()  # before the floor, whose cached features of p=1.0 are no run's
    return {**figures, "rss_mib": rss, "versions": versions,
            "floor": measure_floor(settings, mnist), "compute": measure_compute(),
            "eval_chunk": train.EVAL_CHUNK}


PRECISION_SEEDS = (0, 1, 2)
PRECISION_MODES = ("scratch", "finetune")


def measure_precision(mnist):
    """Whole runs (experiment.run) in float32 and in bfloat16, same seeds: their time and
    final accuracy, to tell whether bfloat16's speed costs accuracy beyond the seed spread."""
    import tensorflow as tf
    from tltransfer import experiment
    tf.config.experimental.enable_op_determinism()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="tltransfer-precision-") as logdir:
        for precision in ("float32", "bfloat16"):
            for mode in PRECISION_MODES:
                for seed in PRECISION_SEEDS:
                    config = Config(mode=mode, p=STUDY_P, seed=seed, precision=precision,
                                    train_samples=FLAGS.precision_samples,
                                    source_samples=FLAGS.precision_samples)
                    if mode == "finetune":  # its source net is not part of the timing
                        experiment.run(config.source(), logdir, log=lambda line: None,
                                       mnist=mnist)
                    progress(f"precision: {config.name}")
                    start = time.perf_counter()
                    result = experiment.run(config, logdir, log=lambda line: None, mnist=mnist)
                    figures.setdefault(f"{mode}/{precision}", []).append(
                        {"seed": seed, "accuracy": result["test_accuracy"],
                         "seconds": time.perf_counter() - start})
    return figures


def compute_lines(compute, full):
    """How close the whole-CNN floor is to what this machine's float32 matmul reaches."""
    flops, peak = compute["forward_flops_per_image"], compute["matmul_gflops"]
    eval_gflops = full["eval_images_per_s"] * flops / 1e9
    # A training step costs about three forward passes (forward, and the backward pass's two
    # products per layer).
    train_gflops = full["train_samples_per_s"] * 3 * flops / 1e9
    return [f"compute: float32 matmul {peak:,.0f} GFLOP/s; the CNN's forward pass "
            f"{flops / 1e6:.1f} MFLOP/image (TensorFlow's profiler)",
            f"  whole-CNN floor: evaluation {eval_gflops:,.0f} GFLOP/s "
            f"({100 * eval_gflops / peak:.0f}% of matmul), training ~{train_gflops:,.0f} GFLOP/s "
            f"(~{100 * train_gflops / peak:.0f}%)"]


def precision_lines(figures):
    lines = ["", f"bfloat16 vs float32: whole runs of {FLAGS.precision_samples:,} samples at "
                 f"p={STUDY_P:g}, seeds {', '.join(map(str, PRECISION_SEEDS))}",
             f"{'mode':<10}{'precision':<11}{'final accuracy, % (per seed)':<34}"
             f"{'mean':>7}{'std':>6}{'s/run':>8}"]
    for mode in PRECISION_MODES:
        means = {}
        for precision in ("float32", "bfloat16"):
            runs = figures[f"{mode}/{precision}"]
            accuracy = [100 * r["accuracy"] for r in runs]
            means[precision] = (statistics.mean(accuracy), statistics.stdev(accuracy))
            lines.append(f"{mode:<10}{precision:<11}"
                         f"{' '.join(f'{a:.2f}' for a in accuracy):<34}"
                         f"{means[precision][0]:>7.2f}{means[precision][1]:>6.2f}"
                         f"{statistics.median(r['seconds'] for r in runs):>8.1f}")
        gap = means["bfloat16"][0] - means["float32"][0]
        spread = max(means["float32"][1], means["bfloat16"][1])
        lines.append(f"  {mode}: bfloat16 - float32 = {gap:+.2f} pp, "
                     f"{'within' if abs(gap) <= spread else 'outside'} the seed spread "
                     f"({spread:.2f} pp)")
    return lines


def run_side(name, settings, *extra_flags):
    """Measures one side in a fresh process of this tool; returns its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{name}.json")
        command = [sys.executable, os.path.abspath(__file__), f"--side={name}",
                   f"--side_out={out}", *settings.side_flags(), *extra_flags]
        code = subprocess.run(command).returncode
        if code != 0:
            raise RuntimeError(f"the {name} side failed (exit status {code}); its output is above")
        with open(out) as f:
            return json.load(f)


def machine(versions):
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], **versions}


def over_floor_pct(s_per_1000, floor_s_per_1000):
    return 100 * (s_per_1000 / floor_s_per_1000 - 1)


def study_estimate(slice_timings):
    """The default study's wall time: per run, start-up + its samples at the steady rate."""
    per_run = {mode: t["startup_s"] + STUDY_SAMPLES / 1000 * t["s_per_1000"]
               for mode, t in slice_timings.items()}
    total = (STUDY_SOURCES * per_run["source"]
             + STUDY_TARGETS_PER_MODE * sum(per_run[mode] for mode in MODES))
    return {"per_run_s": per_run, "total_s": total}


def study_formula(settings):
    return (f"total = {STUDY_SOURCES} x source run + {STUDY_TARGETS_PER_MODE} x (scratch + "
            f"frozen + finetune run) = {STUDY_RUNS} runs; each run = start-up + "
            f"{STUDY_SAMPLES // 1000} x steady s/1000 ({STUDY_SAMPLES:,} samples), both measured "
            f"on a slice of one run per mode at p={settings.study_p:g}, dropout 0, "
            f"{settings.study_samples} samples each")


def combine(settings, sides):
    """Every figure of the benchmark, by name, from the two sides' measurements."""
    floor = sides["tltransfer"]["floor"]
    runs = []
    for p in settings.ps:
        for mode in MODES:
            keras, tlt = (next(r for r in sides[side]["runs"] if r["mode"] == mode and r["p"] == p)
                          for side in ("keras", "tltransfer"))
            floor_s = floor["frozen" if mode == "frozen" else "full"]["s_per_1000"]
            runs.append({
                "mode": mode, "p": p, "keras": keras, "tltransfer": tlt,
                "ratio": keras["s_per_1000"] / tlt["s_per_1000"],
                "ratio_total": keras["total_s"] / tlt["total_s"],
                "floor_s_per_1000": floor_s,
                "keras_over_floor_pct": over_floor_pct(keras["s_per_1000"], floor_s),
                "tltransfer_over_floor_pct": over_floor_pct(tlt["s_per_1000"], floor_s)})
    study = {side: {"slice": sides[side]["study_slice"],
                    **study_estimate(sides[side]["study_slice"])}
             for side in ("keras", "tltransfer")}
    study["ratio"] = study["keras"]["total_s"] / study["tltransfer"]["total_s"]
    study["runs"] = STUDY_RUNS
    study["formula"] = study_formula(settings)
    return {"settings": dataclasses.asdict(settings),
            "machine": machine(sides["tltransfer"]["versions"]), "runs": runs,
            "floor": floor, "compute": sides["tltransfer"]["compute"],
            "eval_chunk": sides["tltransfer"]["eval_chunk"], "study": study,
            "rss_mib": {side: sides[side]["rss_mib"] for side in SIDES}}


def hours(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def table(report):
    s, m = report["settings"], report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, Python {m['python']}",
        f"protocol: batch {BATCH}, Adam {LR:g}, test accuracy on all test images every "
        f"{s['eval_every']} samples; {s['samples']} samples per run, median of "
        f"{s['repeats']} repeat(s)" + (" [--quick: not representative]" if s["quick"] else ""),
        "",
        "per run: s/1000 = steady state, after the first evaluation window; whole = the entire "
        "run, start-up included",
        f"{'mode':<9}{'p':>6} | {'s/1000 samples':^26} | {'whole run s':^26} | "
        f"{'start-up s':^17} | {'floor':>6} {'over floor':^17}",
        f"{'':<9}{'':>6} | {'keras':>8} {'tltransfer':>10} {'ratio':>6} | {'keras':>8} "
        f"{'tltransfer':>10} {'ratio':>6} | {'keras':>6} {'tltransfer':>10} | {'s/1000':>6} "
        f"{'keras':>6} {'tltransfer':>10}",
    ]
    for r in report["runs"]:
        k, t = r["keras"], r["tltransfer"]
        lines.append(
            f"{r['mode']:<9}{r['p']:>6g} | {k['s_per_1000']:>8.3f} {t['s_per_1000']:>10.3f} "
            f"{r['ratio']:>6.2f} | {k['total_s']:>8.2f} {t['total_s']:>10.2f} "
            f"{r['ratio_total']:>6.2f} | {k['startup_s']:>6.2f} {t['startup_s']:>10.2f} | "
            f"{r['floor_s_per_1000']:>6.3f} {r['keras_over_floor_pct']:>+5.0f}% "
            f"{r['tltransfer_over_floor_pct']:>+9.0f}%")
    lines += ["", f"float32 floor (tltransfer's bare compiled calls, no pipeline, summaries or "
                  f"checkpoints; best of {s['repeats']}):",
              f"{'':<40}{'train samples/s':>16}{'eval images/s':>15}{'s/1000':>8}"]
    for key, label in (("full", "whole CNN (scratch, finetune)"),
                       ("frozen", "classifier on cached features (frozen)"),
                       ("bfloat16", "whole CNN, --precision=bfloat16"),
                       ("batch_300", "whole CNN, batch 300 (= 3 seeds batched)")):
        if key not in report["floor"]:
            continue
        f = report["floor"][key]
        lines.append(f"{label:<40}{f['train_samples_per_s']:>16,.0f}"
                     f"{f['eval_images_per_s']:>15,.0f}{f['s_per_1000']:>8.3f}")
    lines.append(f"  s/1000 = 1000 / train rate + {1000 // s['eval_every']} x "
                 f"{report['floor']['full']['test_images']} / eval rate")
    on, off = report["floor"]["full"], report.get("floor_nondeterministic", {}).get("full")
    if off:
        train_change = 100 * (off["train_samples_per_s"] / on["train_samples_per_s"] - 1)
        eval_change = 100 * (off["eval_images_per_s"] / on["eval_images_per_s"] - 1)
        lines.append(f"op determinism (--deterministic, on by default) on the whole-CNN floor: "
                     f"without it, train rate {train_change:+.1f}%, evaluation rate "
                     f"{eval_change:+.1f}%")
    lines += compute_lines(report["compute"], report["floor"]["full"])
    if report["eval_chunks"]:
        lines += ["", f"evaluation chunk size (tltransfer uses {report['eval_chunk']}), each in a "
                      f"process that only evaluates:",
                  f"{'images per forward pass':<26}{'eval images/s':>14}{'peak RSS MiB':>14}"]
        lines += [f"{chunk:<26}{c['eval_images_per_s']:>14,.0f}{c['rss_mib']:>14,.0f}"
                  for chunk, c in sorted(report["eval_chunks"].items(),
                                         key=lambda item: int(item[0]))]
    if "precision" in report:
        lines += precision_lines(report["precision"])
    study = report["study"]
    lines += ["", f"whole default study ({study['runs']} runs), estimated:",
              textwrap.fill(study["formula"], 96, initial_indent="  ", subsequent_indent="  "),
              f"{'run':<11}{'keras start-up':>15}{'s/1000':>8}{'per run':>9} | "
              f"{'tltransfer start-up':>20}{'s/1000':>8}{'per run':>9}"]
    for mode in ("source", *MODES):
        k, t = (study[side]["slice"][mode] for side in ("keras", "tltransfer"))
        lines.append(
            f"{mode:<11}{k['startup_s']:>15.2f}{k['s_per_1000']:>8.3f}"
            f"{study['keras']['per_run_s'][mode]:>9.1f} | {t['startup_s']:>20.2f}"
            f"{t['s_per_1000']:>8.3f}{study['tltransfer']['per_run_s'][mode]:>9.1f}")
    lines.append(f"total: keras {hours(study['keras']['total_s'])}, tltransfer "
                 f"{hours(study['tltransfer']['total_s'])}, ratio {study['ratio']:.2f}")
    whole = report["whole"]
    lines += ["", f"whole process: one run per process, each side fresh, minus `import "
                  f"tensorflow` (p={whole['p']:g}, {whole['samples']:,} samples; tltransfer's "
                  "command line with its source net trained before; median of "
                  f"{s['repeats']})",
              f"{'mode':<10}{'keras s':>9}{'tltransfer s':>14}{'ratio':>7}  | import tensorflow "
              "s: keras, tltransfer"]
    for r in whole["runs"]:
        k, t = r["keras"], r["tltransfer"]
        lines.append(f"{r['mode']:<10}{k['total_s']:>9.2f}{t['total_s']:>14.2f}"
                     f"{r['ratio']:>7.2f}  | {k['import_s']:.2f}, {t['import_s']:.2f}")
    memory = report["memory"]
    m = memory["summary"]
    lines += ["", f"long process: {m['runs']} tltransfer runs in one process (source, scratch, "
                  f"frozen, finetune, seed after seed; p={memory['p']:g}, {memory['samples']:,} "
                  "samples each)",
              f"  peak RSS after 5 runs {m['peak_after_5_mib']:,.0f} MiB, after {m['runs']} "
              f"{m['peak_after_all_mib']:,.0f} MiB ({m['growth_mib']:+,.0f} MiB)",
              "  seconds per run outside compiled calls (wall - training windows, evaluations "
              "and feature extraction):",
              "    first run of each mode: " + ", ".join(f"{x:.2f}" for x in
                                                       m["outside_first_s"]),
              f"    later runs: median {m['outside_later_median_s']:.3f}, max "
              f"{m['outside_later_max_s']:.3f}"]
    rss = report["rss_mib"]
    lines += ["", "peak RSS, each side in its own process (tltransfer's before its floor): "
              + ", ".join(f"{side} {rss[side]:,.0f} MiB" for side in SIDES),
              "",
              "notes:",
              "- " + ("each side first makes one untimed warm-up run" if s["warm_up"]
                      else "no warm-up run: the first run pays process start-up"),
              "- Keras fit and evaluate read tf.data pipelines with autotuning off (shuffled, "
              "batch 100; the callback's",
              "  evaluate in Keras's default batch of 32, as a student's call has it)",
              "- every run's time ends with a garbage collection, so each run pays for freeing its "
              "own objects",
              "  (Keras's tf.data iterators) rather than a later run",
              "- tltransfer runs with op determinism on (its default); the Keras baseline without",
              "- ratios are keras / tltransfer: above 1, tltransfer is faster"]
    return "\n".join(lines)


def benchmark(settings):
    sides = {}
    for name in SIDES:
        progress(f"measuring the {name} side")
        sides[name] = run_side(name, settings)
    report = combine(settings, sides)
    progress("measuring whole processes")
    report["whole"] = measure_whole(settings)
    progress(f"measuring a long process of {settings.memory_runs} runs")
    report["memory"] = run_side("memory", settings)
    report["memory"]["summary"] = memory_summary(report["memory"])
    if not settings.quick and settings.extras:
        progress("measuring the floor without op determinism")
        report["floor_nondeterministic"] = run_side("nondeterministic", settings)["floor"]
        progress("comparing bfloat16 with float32")
        report["precision"] = run_side("precision", settings)
    report["eval_chunks"] = {}
    for chunk in EVAL_CHUNKS if settings.extras and not settings.quick else EVAL_CHUNKS[:1]:
        progress(f"evaluating in chunks of {chunk}")
        report["eval_chunks"][str(chunk)] = run_side("eval_chunk", settings,
                                                     f"--eval_chunk={chunk}")
    return report


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; all settings are flags")
    try:
        settings = settings_from_flags()
        if FLAGS.side:
            if not FLAGS.side_out:
                raise ValueError("--side needs --side_out")
            if not FLAGS["verbosity"].present:
                logging.set_verbosity(logging.WARNING)  # as tltransfer.main: no INFO chatter
            import tensorflow as tf
            # Each run traces its own functions on purpose, as in tltransfer.main.
            tf.get_logger().addFilter(
                lambda record: "triggered tf.function retracing" not in record.getMessage())
            figures = measure_side(FLAGS.side, settings)
            with open(FLAGS.side_out, "w") as f:
                json.dump(figures, f)
            return
        if FLAGS.json and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.json))):
            raise ValueError(f"--json={FLAGS.json}: its directory does not exist")
        report = benchmark(settings)
    except (ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    print(table(report))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    app.run(main)
