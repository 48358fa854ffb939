"""python -m tltransfer.export --logdir=logs --out=results.csv"""

import sys
import types

from absl import flags

from tltransfer import cli, export
from tltransfer.cli import plural

# TensorBoard's switch for a process without TensorFlow (what its no_tensorflow build sets):
# tensorboard.compat.tf becomes TensorBoard's own stub, which reads event files and local
# files, so the export pays nothing for TensorFlow's start-up. Set before rundir loads.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", "logs", "Log root written by tltransfer.main.")
flags.DEFINE_string("out", "results.csv", "Tidy CSV to write; the per-run CSV and the meta "
                    "JSON go beside it (<stem>_runs.csv, <stem>_meta.json).")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; use --logdir=... --out=...")
    from tltransfer import rundir
    try:
        runs, count, incomplete, failed = export.export(
            FLAGS.logdir, FLAGS.out, note=lambda line: print(f"note: {line}"))
    except (export.ExportError, OSError, rundir.tf.errors.OpError) as e:
        sys.exit(f"error: {e}")
    if incomplete:
        print(f"left out {plural(len(incomplete), 'incomplete run')}: {', '.join(incomplete)}")
    if failed:
        print(f"left out {plural(len(failed), 'failed run')} (see their failed.json): "
              f"{', '.join(failed)}")
    print(f"wrote {plural(count, 'row')} from {plural(runs, 'run')} to {FLAGS.out}")


if __name__ == "__main__":
    cli.run(main)
