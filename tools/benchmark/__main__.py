"""How fast is tltransfer? Times it against a plain Keras baseline on the same data and protocol.

    python -m tools.benchmark --json=benchmark.json    # the full benchmark: ~1 h on 2 cores
    python -m tools.benchmark --quick                  # a smoke version, a few minutes
    python -m tools.benchmark --sections=whole,memory  # only these sections

Run from the repository's root. The protocol is the study's: batch 100, Adam 1e-3, test accuracy
on all 6-9 test images every 1,000 training samples. The sections (--sections, all by default):
  inrun   each side in its own process, so that its peak memory is its own and neither inherits
          the other's warm state:
            keras       a student's run: keras.Sequential, compile, fit with a callback that
                        calls model.evaluate every 10 batches (frozen: conv layers copied,
                        trainable=False)
            tltransfer  experiment.fit for the per-mode figures, experiment.run for the study
                        slice; then (after its peak memory is read) the float32 floor: the bare
                        compiled train window and evaluation of its Trainer, and the machine's
                        float32 matmul rate, to tell how close the floor is to the hardware
          Every timed run is measured --repeats times and the median is reported. A run's time
          is split into a steady-state rate (from the end of its first evaluation window to its
          end) and a start-up (the whole run minus its samples at the steady rate: tracing,
          feature caching, the first window's extra cost, closing). The whole default study is
          extrapolated from both. Extras: the floor without op determinism, bfloat16 against
          float32 (whole runs, 3 seeds), the bfloat16 and batch-300 floors.
  whole   each mode's run as a whole process, each side fresh, minus `import tensorflow`; and
          beside it the seconds of the run's compiled work at the float32 floor's rates (from
          inrun, or measured for it), so keras s / those seconds is the best ratio reachable
  memory  one long process of tltransfer runs: peak memory after 5 runs and after all, the
          resident size after each heap trim and each run's own peak (runs 5-8 against the last
          four; the peaks' median and range from run 5 on), and each run's seconds outside
          compiled calls
  chunks  evaluation speed and peak memory by evaluation chunk size (extras: every size)
  jobs    a grid (p = 0.005, 0.1, 1; every mode; dropout 0; seed 0) as whole commands with
          --jobs=1 and --jobs=2, checked bit-identical; one scratch run on 1 and on 2 threads
          (--threads), whose ratio estimates what a many-core machine gains from --jobs
"""

import dataclasses
import json
import os
import sys

from absl import flags, logging

from tltransfer import cli
from tools.benchmark import figures, jobs, process
from tools.benchmark.measure import load_mnist, progress
from tools.benchmark.settings import (EVAL_CHUNKS, EVAL_EVERY, QUICK, SECTIONS, SIDES, STUDY_P,
                                      Settings)
from tools.benchmark.sides import SIDE_NAMES, measure_side, run_side
from tools.benchmark.table import table

# Before TensorFlow is imported (nothing above imports it: each side imports it when it runs).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write every figure, by name, to this JSON file.")
flags.DEFINE_list("sections", list(SECTIONS), "The sections to measure, shown in this order "
                  "whatever the order given: inrun (both sides' per-run figures, floors, "
                  "compute, study estimate), whole (whole processes and the best ratio the "
                  "floor allows), memory (a long process), chunks (evaluation chunk sizes), "
                  "jobs (worker processes and threads).")
flags.DEFINE_integer("repeats", 3, "Measurements of each figure; the median is reported (the "
                     "floors report the best).")
flags.DEFINE_integer("samples", 5000, "Training samples of each timed run: a multiple of 1000 "
                     "(the evaluation interval), at least 2000 so a steady state follows the "
                     "first window.")
flags.DEFINE_list("p", ["0.1", "1.0"], "Proportions of the 6-9 training images to time.")
flags.DEFINE_integer("study_samples", 3000, "Training samples of each run of the study slice "
                     "the whole-study time is extrapolated from (same rules as --samples).")
flags.DEFINE_bool("quick", False, "Smoke version: 300 samples per run, evaluation every 100, "
                  "1 repeat, p=0.005, a 200-sample study slice, 8 runs in the long process. "
                  "Its figures are not representative.")
flags.DEFINE_integer("precision_samples", 20_000, "Training samples of each run of the "
                     "bfloat16-vs-float32 comparison (scratch and finetune at p=0.1, 3 seeds).")
flags.DEFINE_integer("whole_samples", 20_000, "Training samples of each whole-process run "
                     "(scratch, frozen and finetune at p=0.1, each side in a fresh process).")
flags.DEFINE_integer("memory_runs", 50, "Runs of the long-process measurement (peak memory "
                     "after 5 runs and after this many, and each run's time outside compiled "
                     "calls); at least 8.")
flags.DEFINE_bool("extras", True, "Also measure, within the sections chosen, the floor without "
                  "op determinism, the bfloat16 and batch-300 floors, bfloat16 against float32 "
                  "in whole runs (inrun) and every evaluation chunk size (chunks). --noextras "
                  "leaves them out: on a CPU without AVX512-BF16 the bfloat16 parts alone take "
                  "half an hour.")
flags.DEFINE_enum("side", None, SIDE_NAMES,
                  "Internal: measure one side in this process and write it to --side_out.")
flags.DEFINE_enum("whole_mode", None, ["scratch", "frozen", "finetune"],
                  "Internal: with --side=keras_whole, the mode of the one run to make.")
flags.DEFINE_integer("eval_chunk", None, "Internal: with --side=eval_chunk, the test images "
                     "per forward pass to measure.")
flags.DEFINE_string("side_out", None, "Internal: the JSON file --side writes.")

BUDGET_FLAGS = ("samples", "repeats", "p", "study_samples", "whole_samples",
                "memory_runs")  # what --quick sets itself


def sections_from_flags():
    """The sections chosen, in SECTIONS' order; raises ValueError naming any unknown one."""
    given = [name.strip() for name in FLAGS.sections]
    unknown = [name for name in given if name not in SECTIONS]
    choose = f"choose from {', '.join(SECTIONS)}"
    if unknown:
        raise ValueError(f"--sections={','.join(FLAGS.sections)}: unknown section "
                         f"{', '.join(unknown)}; {choose}")
    if not given:
        raise ValueError(f"--sections is empty; {choose}")
    return tuple(name for name in SECTIONS if name in given)


def settings_from_flags():
    """Validated Settings; raises ValueError with the flag at fault."""
    sections = sections_from_flags()
    if FLAGS.quick:
        given = [f"--{name}" for name in BUDGET_FLAGS if FLAGS[name].present]
        if given:
            raise ValueError(f"--quick sets its own budgets; drop {', '.join(given)}")
        return dataclasses.replace(QUICK, sections=sections)
    if FLAGS.repeats < 1:
        raise ValueError(f"--repeats={FLAGS.repeats} must be at least 1")
    if FLAGS.memory_runs < 8:
        raise ValueError(f"--memory_runs={FLAGS.memory_runs} must be at least 8 (it compares "
                         "the last runs with runs 5-8)")
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
                    memory_runs=FLAGS.memory_runs, extras=FLAGS.extras,
                    precision_samples=FLAGS.precision_samples, sections=sections)


def measure_inrun(settings, report):
    sides = {}
    for name in SIDES:
        progress(f"measuring the {name} side")
        sides[name] = run_side(name, settings)
    report.update(figures.combine(settings, sides))
    if settings.measure_extras:
        progress("measuring the floor without op determinism")
        report["floor_nondeterministic"] = run_side("nondeterministic", settings)["floor"]
        progress("comparing bfloat16 with float32")
        report["precision"] = run_side("precision", settings)


def measure_whole(settings, report):
    if "floor" in report:
        floor, floor_from = report["floor"], "inrun"
    else:
        progress("measuring the float32 floor the whole processes are bound by")
        floor, floor_from = run_side("floor", settings)["floor"], "own process"
    progress("measuring whole processes")
    report["whole"] = figures.bound_whole(process.measure_whole(settings), floor,
                                          settings.eval_every, floor_from)


def measure_memory(settings, report):
    progress(f"measuring a long process of {settings.memory_runs} runs")
    memory = run_side("memory", settings)
    report["memory"] = {**memory, "summary": figures.memory_summary(memory)}


def measure_chunks(settings, report):
    report["eval_chunks"] = {}
    for chunk in EVAL_CHUNKS if settings.measure_extras else EVAL_CHUNKS[:1]:
        progress(f"evaluating in chunks of {chunk}")
        chunk_figures = run_side("eval_chunk", settings, f"--eval_chunk={chunk}")
        report["eval_chunk"] = chunk_figures.pop("eval_chunk")  # the size tltransfer uses
        report["eval_chunks"][str(chunk)] = chunk_figures


def measure_jobs(settings, report):
    report["jobs"] = figures.jobs_summary(jobs.measure_jobs(settings))


MEASURE = {"inrun": measure_inrun, "whole": measure_whole, "memory": measure_memory,
           "chunks": measure_chunks, "jobs": measure_jobs}


def benchmark(settings):
    """Every figure of the sections chosen, by name."""
    report = {"settings": dataclasses.asdict(settings), "machine": figures.machine()}
    for section in settings.sections:
        MEASURE[section](settings, report)
    return report


def side(settings):
    """--side: one side measured in this process, its figures written to --side_out."""
    if not FLAGS.side_out:
        raise ValueError("--side needs --side_out")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # as tltransfer.main: no INFO chatter
    import tensorflow as tf
    # Each run traces its own functions on purpose, as in tltransfer.main.
    tf.get_logger().addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage())
    with open(FLAGS.side_out, "w") as f:
        json.dump(measure_side(FLAGS.side, settings, FLAGS.whole_mode, FLAGS.eval_chunk), f)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; all settings are flags")
    try:
        settings = settings_from_flags()
        if FLAGS.side:
            return side(settings)
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
    # With the interpreter's teardown: the Keras side's whole process ends as a student's script.
    cli.run(main)
