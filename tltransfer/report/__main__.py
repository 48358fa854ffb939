"""python -m tltransfer.report --csv=results.csv --out=report"""

import os
import shlex
import sys

from absl import flags

from tltransfer import cli
from tltransfer.report import document
from tltransfer.report.results import ReportError

FLAGS = flags.FLAGS
flags.DEFINE_string("csv", "results.csv", "Tidy results CSV from python -m tltransfer.export.")
flags.DEFINE_string("out", "report", "Directory to write the report into (replaced if it "
                    "holds an earlier report).")
flags.DEFINE_list("thresholds", "0.9,0.95,0.98,0.99", "Test accuracies (fractions) for the "
                  "samples-to-threshold table.")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; use --csv=... --out=...")
    try:
        thresholds = sorted({float(t) for t in FLAGS.thresholds})
    except ValueError:
        thresholds = []
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        sys.exit(f"error: --thresholds={','.join(FLAGS.thresholds)}: give test accuracies as "
                 "fractions in (0, 1] separated by commas, e.g. 0.9,0.95")
    try:
        files = document.build(FLAGS.csv, FLAGS.out, thresholds,
                               "python -m tltransfer.report " + shlex.join(sys.argv[1:]))
    except ReportError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: cannot write the report to {FLAGS.out}: {error}; check the path and "
                 "its permissions")
    print(f"wrote {os.path.join(FLAGS.out, 'report.md')} and "
          f"{cli.plural(len(files) - 1, 'other file')}")


if __name__ == "__main__":
    cli.run(main)
