"""Do the default budgets meet the spec? Trains (or reuses) the 0-5 net and the 6-9 scratch net
at p = 1.0 for a few seeds with the default Config and prints their final test accuracies.

    python tools/check_defaults.py --logdir=logs --seeds=3
    python tools/check_defaults.py --logdir=/tmp/b40k --samples=40000 --lr=0.002   # another budget

The runs land under --logdir with the same names the study uses, so the study reuses them.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tltransfer.config import Config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", "logs", "Log root to train into (or reuse runs from).")
flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1.")
flags.DEFINE_float("target", 0.99, "Accuracy the spec expects at p = 1.0.")
flags.DEFINE_integer("samples", None, "Training samples of every net (default: Config's).")
flags.DEFINE_float("lr", None, "Adam's initial learning rate (default: Config's).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision of the nets.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    given = {}
    if FLAGS.samples is not None:
        given.update(train_samples=FLAGS.samples, source_samples=FLAGS.samples)
    if FLAGS.lr is not None:
        given.update(lr=FLAGS.lr)
    if FLAGS.precision != "float32":
        given.update(precision=FLAGS.precision)
    try:
        settings = Config(**given)
    except ValueError as e:
        sys.exit(f"error: {e}")
    from tltransfer import machine, quiet_import
    quiet_import.tensorflow(machine.THREADS)
    from tltransfer import experiment, rundir
    from tltransfer.session import Session
    session = Session(threads=machine.THREADS, deterministic=True)  # as tltransfer.main runs
    print(f"settings: lr={settings.lr} ({settings.lr_schedule}) batch={settings.batch_size} "
          f"source_samples={settings.source_samples} train_samples={settings.train_samples}")
    rows = []
    for label, mode in (("0-5 source net", "source"), ("6-9 scratch net, p=1.0", "scratch")):
        accuracies = []
        for seed in range(FLAGS.seeds):
            config = Config(mode=mode, p=1.0, seed=seed, **given)
            try:
                accuracies.append(experiment.run(config, FLAGS.logdir,
                                                 session=session)["test_accuracy"])
            except rundir.RunError as e:
                sys.exit(f"error: {e}")
        rows.append((label, accuracies))
    print(f"\n{'network':<24}{'per seed':<28}{'mean':>8}  >= {100 * FLAGS.target:g}%")
    for label, accuracies in rows:
        mean = float(np.mean(accuracies))
        per_seed = " ".join(f"{100 * a:.2f}" for a in accuracies)
        verdict = "yes" if mean >= FLAGS.target else "NO"
        print(f"{label:<24}{per_seed:<28}{100 * mean:>7.2f}%  {verdict}")


if __name__ == "__main__":
    app.run(main)
