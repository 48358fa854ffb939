"""python -m tltransfer.report --csv=results.csv --out=report"""

import math
import os
import shlex
import sys

from absl import flags

from tltransfer import cli
from tltransfer.report import analysis, document
from tltransfer.report.results import ReportError

FLAGS = flags.FLAGS
flags.DEFINE_string("csv", "results.csv", "Tidy results CSV from python -m tltransfer.export.")
flags.DEFINE_string("out", "report", "Directory to write the report into (replaced if it "
                    "holds an earlier report).")
flags.DEFINE_float("difference", 100 * analysis.TARGET, "The difference of interest in "
                   "percentage points: the comparisons table estimates the seeds per side that "
                   "would detect it.")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; use --csv=... --out=...")
    if not (math.isfinite(FLAGS.difference) and 0 < FLAGS.difference <= 100):
        sys.exit(f"error: --difference={FLAGS.difference:g} is no difference of accuracy; give "
                 "percentage points in (0, 100], e.g. --difference=0.5")
    if not FLAGS.out:
        sys.exit("error: --out is empty; give the directory to write the report into, e.g. "
                 "--out=report")
    try:
        files = document.build(FLAGS.csv, FLAGS.out, FLAGS.difference / 100,
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
