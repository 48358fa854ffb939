"""Train a transfer-learning study: python -m tltransfer.main --p=0.1 --mode=finetune

Flags that take comma-separated lists make a grid: every combination is one run. With no flags
at all this is the lab's whole study (3 modes x 4 proportions x 2 dropout rates x 3 seeds).
The 0-5 source net that frozen and finetune runs copy their convolutional layers from is
trained first when it is not already complete under --logdir (one per seed and dropout,
shared). Complete runs are skipped, so running the same command again finishes what is missing.
Flagfiles for the assignments are in flags/: --flagfile=flags/assignment1.cfg
"""

import json
import os
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags, logging  # noqa: E402

from tltransfer.config import CHECKPOINT_SECONDS, Config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("mode", ["scratch", "frozen", "finetune"],
                  "Modes to run: scratch (random init), frozen (conv layers copied from the 0-5 "
                  "net and not trained), finetune (copied and trained), source (the 0-5 net "
                  "alone).")
flags.DEFINE_list("p", ["0.005", "0.01", "0.1", "1.0"],
                  "Proportions of the 6-9 training images, each in (0, 1]; the first "
                  "100*floor(floor(p*23983)/100) images are used (0.005 -> 100, 1.0 -> 23900).")
flags.DEFINE_list("dropout", ["0", "0.5"], "Dropout rates on the inputs of layers 4 and 5 while "
                  "training; 0 = off, 0.5 = the lab's.")
flags.DEFINE_integer("seeds", 3, "Run seeds 0..N-1; give either this or --seed.")
flags.DEFINE_list("seed", None, "Explicit seeds, e.g. --seed=0,5. Each seed gives its own "
                  "initialisation, batch order, dropout masks and source net.")
flags.DEFINE_float("lr", 1e-3, "Adam's (initial) learning rate.")
flags.DEFINE_string("lr_schedule", "cosine",
                    "cosine: decay the learning rate to 0 over each run's budget (steadier final "
                    "accuracy); constant: keep --lr throughout.")
flags.DEFINE_integer("batch_size", 100, "Training batch size.")
flags.DEFINE_integer("train_samples", 60_000,
                     "Training samples (not steps) for each 6-9 run, whatever p is, so that "
                     "all curves share one axis.")
flags.DEFINE_integer("source_samples", 60_000, "Training samples for each 0-5 source net.")
flags.DEFINE_integer("eval_every", 1000,
                     "Evaluate on the whole test set every this many training samples.")
flags.DEFINE_string("precision", "float32",
                    "float32, or bfloat16: bfloat16 activations with float32 variables and "
                    "optimizer, faster on CPUs with AVX512-BF16/AMX and on GPUs. Runs in "
                    "bfloat16 get their own directories (suffix _bfloat16).")
flags.DEFINE_string("source_classes", "0-5", "Digits of the source task, e.g. 0-4, odd, "
                    "1,3,7; relabelled 0..k-1 in order.")
flags.DEFINE_string("target_classes", "6-9", "Digits of the target task, e.g. 5-9 or even; p "
                    "subsets and output width follow.")
flags.DEFINE_string("subset", "prefix", "prefix: the first images in official order (the "
                    "course's nested subsets); random: a stratified random draw per seed, so "
                    "the spread over seeds includes the data draw.")
flags.DEFINE_list("transfer_layers", ["2"], "How many of the source net's first layers frozen "
                  "and finetune runs copy: 1 = conv1, 2 = both conv layers (the lab's), 3 = "
                  "conv layers and dense 128. frozen trains only the layers after them.")
flags.DEFINE_list("transferred_lr_scale", ["1.0"], "finetune: the copied layers learn at this "
                  "times --lr (their own Adam).")
flags.DEFINE_string("data", "", "Other data: a directory of the four MNIST-format IDX files "
                    "(plain or .gz; e.g. Fashion-MNIST, KMNIST) or the course's mnist.mat. "
                    "Empty: the MNIST shipped with the package.")
flags.DEFINE_string("logdir", "logs", "Log root: one run directory per configuration; point "
                    "TensorBoard at it.")
flags.DEFINE_integer("num_shards", None, "Split the grid into this many shards, e.g. one per "
                     "job of a cluster array (default: $SLURM_ARRAY_TASK_COUNT, else 1).")
flags.DEFINE_integer("shard_index", None, "Which shard this process trains, 0-based (default: "
                     "$SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN, else 0).")
flags.DEFINE_float("checkpoint_seconds", CHECKPOINT_SECONDS,
                   "Training seconds between checkpoints, each taken right after an evaluation "
                   "(0: after every evaluation). A killed run resumes from its last checkpoint, "
                   "so it loses at most this much.")
flags.DEFINE_bool("deterministic", True,
                  "Enable TensorFlow's op determinism so a seed always gives the same bits. "
                  "Measured on a 2-core CPU (tools/benchmark.py): no cost for the whole CNN; "
                  "the classifier-only step of frozen runs goes at half speed (still ~10x "
                  "faster than a plain Keras loop).")


def parse_list(name, values, kind):
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise ValueError(f"--{name}={','.join(values)}: every value must be "
                         f"{'an integer' if kind is int else 'a number'}") from None


def seeds_from_flags():
    if FLAGS.seed is not None:
        if FLAGS["seeds"].present:
            raise ValueError("--seed and --seeds both given; use one (--seeds=3 means "
                             "--seed=0,1,2)")
        return parse_list("seed", FLAGS.seed, int)
    if FLAGS.seeds <= 0:
        raise ValueError(f"--seeds={FLAGS.seeds} must be at least 1")
    return list(range(FLAGS.seeds))


def configs_from_flags():
    """Every combination of the list flags, as validated Configs."""
    settings = dict(lr=FLAGS.lr, lr_schedule=FLAGS.lr_schedule, batch_size=FLAGS.batch_size,
                    train_samples=FLAGS.train_samples, source_samples=FLAGS.source_samples,
                    eval_every=FLAGS.eval_every, precision=FLAGS.precision,
                    source_classes=FLAGS.source_classes, target_classes=FLAGS.target_classes,
                    subset=FLAGS.subset, data=os.path.abspath(FLAGS.data) if FLAGS.data else "")
    grid = [Config(mode=mode, p=p, dropout=dropout, seed=seed, transfer_layers=layers,
                   transferred_lr_scale=scale, **settings)
            for mode in FLAGS.mode
            for p in parse_list("p", FLAGS.p, float)
            for dropout in parse_list("dropout", FLAGS.dropout, float)
            for seed in seeds_from_flags()
            for layers in parse_list("transfer_layers", FLAGS.transfer_layers, int)
            for scale in parse_list("transferred_lr_scale", FLAGS.transferred_lr_scale, float)]
    return list(dict.fromkeys(c.canonical() for c in grid))


def shard_from_flags():
    """(index, count) from the flags, else from a Slurm job array's environment, else (0, 1)."""
    env = os.environ

    def from_env(name, default):
        try:
            return int(env.get(name, default))
        except ValueError:
            raise ValueError(f"${name}={env[name]!r} is not an integer") from None
    count = FLAGS.num_shards if FLAGS.num_shards is not None else from_env(
        "SLURM_ARRAY_TASK_COUNT", 1)
    index = FLAGS.shard_index if FLAGS.shard_index is not None else (
        from_env("SLURM_ARRAY_TASK_ID", 0) - from_env("SLURM_ARRAY_TASK_MIN", 0))
    if count < 1:
        raise ValueError(f"--num_shards={count} must be at least 1")
    return index, count


def record_invocation(logdir):
    """Appends this command line to the log root's history, for the report's provenance."""
    import numpy as np
    import tensorflow as tf
    from tltransfer import study
    tf.io.gfile.makedirs(logdir)
    entry = {"argv": sys.argv, "cwd": os.getcwd(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
             "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                          "numpy": np.__version__}}
    with tf.io.gfile.GFile(os.path.join(logdir, study.INVOCATIONS), "a") as f:
        f.write(json.dumps(entry) + "\n")


def stop_after_checkpoint(signum, frame):
    """First Ctrl-C or SIGTERM: finish the current window, checkpoint, stop. Second: stop now."""
    from tltransfer import experiment
    if experiment.STOP.is_set():
        raise KeyboardInterrupt
    experiment.STOP.set()
    print(f"\n{signal.Signals(signum).name}: stopping after the next checkpoint "
          "(press Ctrl-C again to stop at once)", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; all settings are flags")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO chatter hides the progress
    try:  # flags alone are checked before TensorFlow loads, so a typo is told at once
        configs = configs_from_flags()
        shard_of = shard_from_flags()
        if FLAGS.checkpoint_seconds < 0:
            raise ValueError(f"--checkpoint_seconds={FLAGS.checkpoint_seconds:g} must be 0 "
                             "(after every evaluation) or more")
    except ValueError as e:
        sys.exit(f"error: {e}")
    import tensorflow as tf
    from tltransfer import data, experiment, rundir, study
    # Each run compiles its own functions, on purpose (own variables, shapes and optimizer);
    # TensorFlow's warning about functions traced repeatedly would only alarm the reader.
    tf.get_logger().addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage())
    start = time.perf_counter()
    signal.signal(signal.SIGINT, stop_after_checkpoint)
    signal.signal(signal.SIGTERM, stop_after_checkpoint)
    try:
        mnist = data.load_data(configs[0].data)
        for config in configs:  # refuse a bad grid before training any of it
            experiment.load_task(config, mnist)
        if FLAGS.deterministic:
            tf.config.experimental.enable_op_determinism()
        try:
            record_invocation(FLAGS.logdir)
        except (OSError, tf.errors.OpError) as e:
            raise rundir.RunError(
                f"cannot write to --logdir={FLAGS.logdir} ({getattr(e, 'strerror', None) or e}); "
                "choose a writable directory") from e
        results, failures = study.run_all(configs, FLAGS.logdir, mnist=mnist, shard_of=shard_of,
                                          log=lambda line: print(line, flush=True),
                                          checkpoint_seconds=FLAGS.checkpoint_seconds)
    except (experiment.Interrupted, KeyboardInterrupt) as e:
        where = f" ({e})" if str(e) else ""
        sys.exit(f"interrupted{where}; run the same command again to resume")
    except (ValueError, rundir.RunError, data.DataError) as e:
        sys.exit(f"error: {e}")
    print(f"\n{study.summary({c: results[c] for c in configs if c in results})}")
    print(f"\n{len(results)} runs complete under {FLAGS.logdir} after "
          f"{study.duration(time.perf_counter() - start)}; see them with "
          f"`tensorboard --logdir={FLAGS.logdir}`")
    if failures:
        for config, reason in failures.items():
            print(f"FAILED {config.name}: {reason}", file=sys.stderr)
        sys.exit(f"error: {len(failures)} of {len(failures) + len(results)} runs failed; "
                 "delete a failed run's directory to try it again")


if __name__ == "__main__":
    app.run(main)
