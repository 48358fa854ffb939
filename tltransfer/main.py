"""Train transfer-learning runs: python -m tltransfer.main --p=0.1 --mode=finetune

Flags that take comma-separated lists make a grid: every combination is one run. The 0-5
source net that frozen and finetune runs copy their convolutional layers from is trained first
when it is not already complete under --logdir (one per seed and dropout, shared).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("mode", ["finetune"],
                  "Modes to run: scratch (random init), frozen (conv layers copied from the 0-5 "
                  "net and not trained), finetune (copied and trained), source (the 0-5 net).")
flags.DEFINE_list("p", ["1.0"], "Proportions of the 6-9 training images, each in (0, 1]; the "
                  "first 100*floor(floor(p*23983)/100) images are used (0.005 -> 100, 1.0 -> 23900).")
flags.DEFINE_list("dropout", ["0"], "Dropout rates on the inputs of layers 4 and 5 while "
                  "training; 0 = off, 0.5 = the lab's.")
flags.DEFINE_list("seed", ["0"], "Seeds; each gives its own initialisation, batch order and "
                  "dropout masks, and its own source net.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("batch_size", 100, "Training batch size.")
flags.DEFINE_integer("train_samples", 60_000,
                     "Training samples (not steps) for each 6-9 run, whatever p is, so that "
                     "all curves share one axis.")
flags.DEFINE_integer("source_samples", 72_000, "Training samples for each 0-5 source net.")
flags.DEFINE_integer("eval_every", 1000,
                     "Evaluate on the whole test set every this many training samples.")
flags.DEFINE_string("logdir", "logs", "Log root: one run directory per configuration; point "
                    "TensorBoard at it.")
flags.DEFINE_bool("deterministic", True,
                  "Enable TensorFlow's op determinism so a seed always gives the same bits. "
                  "Costs nothing measurable on CPU.")


def parse_list(name, values, kind):
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise ValueError(f"--{name}={','.join(values)}: every value must be "
                         f"{'an integer' if kind is int else 'a number'}") from None


def configs_from_flags():
    """Every combination of the list flags, as validated Configs."""
    from tltransfer.experiment import Config
    grid = [Config(mode=mode, p=p, dropout=dropout, seed=seed, lr=FLAGS.lr,
                   batch_size=FLAGS.batch_size, train_samples=FLAGS.train_samples,
                   source_samples=FLAGS.source_samples, eval_every=FLAGS.eval_every)
            for mode in FLAGS.mode
            for p in parse_list("p", FLAGS.p, float)
            for dropout in parse_list("dropout", FLAGS.dropout, float)
            for seed in parse_list("seed", FLAGS.seed, int)]
    unique = list(dict.fromkeys(c if c.mode != "source" else c.source() for c in grid))
    return unique


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; all settings are flags")
    import tensorflow as tf
    from tltransfer import data, experiment
    try:
        configs = configs_from_flags()
        mnist = data.load_mnist()
        for config in configs:  # refuse a bad grid before training any of it
            experiment.load_task(config, mnist)
        if FLAGS.deterministic:
            tf.config.experimental.enable_op_determinism()
        for config in configs:
            result = experiment.run(config, FLAGS.logdir, log=lambda line: print(line, flush=True),
                                    mnist=mnist)
            print(f"{config.name}: final test accuracy {100 * result['test_accuracy']:.2f}% "
                  f"-> {os.path.join(FLAGS.logdir, config.name)}", flush=True)
    except (ValueError, experiment.RunError, data.DataError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
