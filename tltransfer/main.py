"""Train a transfer-learning study: python -m tltransfer.main --p=0.1 --mode=finetune

Every setting of a run is a flag, and a list of values sweeps it: every combination is one run
(--lr=0.001,0.003 --batch_size=50,100 is four runs per mode, p, dropout and seed); class lists,
which hold commas, are separated by '/' (--target_classes=6-9/5-9). With no flags at all this is
the lab's whole study (3 modes x 4 proportions x 2 dropout rates x 3 seeds). All runs go into
one log root, a directory per run named by the lab's axes and every setting not at its default
(frozen_p0.005_drop0_seed0_lr0.003_n30000); a run already complete there is reused, so running
the same command again trains only what is missing.

Frozen and finetune runs copy layers from a 0-5 source net, trained first when it is missing
and shared by every run that needs it. A source net depends on --seed, --dropout, --precision,
--eval_every, --data, --source_classes, --source_samples and its own --source_lr,
--source_lr_schedule and --source_batch_size: sweeping the target runs' --lr, --lr_schedule,
--batch_size or --train_samples reuses the same source nets. (--mode=source trains source nets
alone, with --lr, --lr_schedule and --batch_size as their own.)
Flagfiles for the assignments are in flags/: --flagfile=flags/assignment1.cfg"""

import dataclasses
import functools
import itertools
import math
import os
import signal
import sys
import time

from absl import flags, logging

from tltransfer import cli, machine, quiet_import
from tltransfer.config import (CHECKPOINT_SECONDS, CLASS_SETTINGS, LAB_AXES, MODES, Config,
                               format_classes, number, parse_classes)

FLAGS = flags.FLAGS
FIELDS = {f.name: f for f in dataclasses.fields(Config)}
# The lab's axes, with the study's values as defaults.
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
# Every other setting of a run is a flag of the same name, and a list of values sweeps it.
for _field in FIELDS.values():
    if _field.name not in LAB_AXES + ("data",):
        _separator = "'/'" if _field.name in CLASS_SETTINGS else "commas"
        _users = ("" if _field.metadata["modes"] == MODES else
                  f" ({', '.join(_field.metadata['modes'])} runs depend on it)")
        flags.DEFINE_string(_field.name, number(_field.default) if _field.type is not str
                            else _field.default, f"{_field.metadata['help']}{_users}. Values "
                            f"separated by {_separator} are a grid axis.")
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
flags.DEFINE_integer("threads", machine.THREADS,
                     "TensorFlow threads of every run, whatever the machine's cores: the bits "
                     "depend on the thread count, so the same count gives the same bits on "
                     "any machine.", lower_bound=1)
flags.DEFINE_string("jobs", "auto",
                    "Worker processes training the grid side by side on the log root, each on "
                    "--threads threads; auto = the usable cores / --threads, at least 1.")
flags.DEFINE_bool("deterministic", True,
                  "Enable TensorFlow's op determinism so a seed always gives the same bits. "
                  "Measured on a 2-core CPU (python -m tools.benchmark): no cost for the whole "
                  "CNN; the classifier-only step of frozen runs goes at half speed (still ~10x "
                  "faster than a plain Keras loop).")


def parse_list(name, values, kind, given=None):
    """`values` (strings) as `kind`; `given` is the flag's text, for the error message.

    A value given twice is refused rather than dropped: in a sweep it is far more often a typo
    (0.001,0.001 for 0.001,0.01) than meant, and dropping it would hide the missing cell."""
    given = ",".join(values) if given is None else given
    separator = "/" if name in CLASS_SETTINGS else ","
    parsed, seen = [], {}
    for value in values:
        value = value.strip()
        if not value:
            raise ValueError(f"--{name}={given}: an empty value; separate values with "
                             f"'{separator}'")
        try:
            parsed.append(kind(value))
        except ValueError:
            raise ValueError(f"--{name}={given}: {value!r} is not "
                             f"{'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(parsed[-1]):
            raise ValueError(f"--{name}={given}: {value!r} is not a finite number")
        try:  # a class list written two ways ('6-9' and '6,7,8,9') is one value
            key = format_classes(parse_classes(value)) if name in CLASS_SETTINGS else parsed[-1]
        except ValueError:
            key = value  # Config tells what is wrong with it
        if key in seen:
            raise ValueError(f"--{name}={given}: {seen[key]!r} and {value!r} are the same value; "
                             "give each value once")
        seen[key] = value
    return parsed


def seeds_from_flags():
    if FLAGS.seed is not None:
        if FLAGS["seeds"].present:
            raise ValueError("--seed and --seeds both given; use one (--seeds=3 means "
                             "--seed=0,1,2)")
        return parse_list("seed", FLAGS.seed, int)
    if FLAGS.seeds <= 0:
        raise ValueError(f"--seeds={FLAGS.seeds} must be at least 1")
    return list(range(FLAGS.seeds))


def axes_from_flags():
    """{Config field: the values its flag gives}; every one is an axis of the grid."""
    axes = {"mode": parse_list("mode", FLAGS.mode, str), "p": parse_list("p", FLAGS.p, float),
            "dropout": parse_list("dropout", FLAGS.dropout, float), "seed": seeds_from_flags()}
    for field in FIELDS.values():
        if field.name not in axes and field.name != "data":
            text = FLAGS[field.name].value
            separator = "/" if field.name in CLASS_SETTINGS else ","
            axes[field.name] = parse_list(field.name, text.split(separator), field.type, text)
    # A run is named by the precision it computes in, so auto never makes a run of its own.
    cpu = machine.cpu_flags()
    axes["precision"] = [machine.resolve_precision(v, cpu) for v in axes["precision"]]
    axes["data"] = [os.path.abspath(FLAGS.data) if FLAGS.data else ""]
    return axes


def grid(axes):
    """Every combination of the axes' values, as validated canonical Configs, no repeats."""
    configs = (Config(**dict(zip(axes, values))) for values in itertools.product(*axes.values()))
    return list(dict.fromkeys(c.canonical() for c in configs))


def ignored_settings(axes, given):
    """Settings among `given` (the flags set) with values other than their defaults that no
    mode of the grid depends on."""
    return [name for name, values in axes.items()
            if name in given and not set(axes["mode"]) & set(FIELDS[name].metadata["modes"])
            and any(v != FIELDS[name].default for v in values)]


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
    if not 0 <= index < count:
        raise ValueError(f"--shard_index={index} is outside 0..{count - 1}: shards are "
                         f"numbered from 0 (--num_shards={count})")
    return index, count


def record_command(logdir, started, status, runs, reason=None):
    """Appends what this command did to the log root's history (rundir.HISTORY), for the
    report's provenance: `status` is trained, nothing to do, refused, failed or interrupted;
    `runs` the runs it trained or finished. A refused command leaves no log root behind that it
    did not find."""
    import numpy as np
    import tensorflow as tf
    from tltransfer import rundir
    entry = {"argv": sys.argv, "cwd": os.getcwd(), "started": started, "status": status,
             "runs": runs, "threads": machine.threads_in_use(tf),
             "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                          "numpy": np.__version__}}
    if reason:
        entry["reason"] = reason
    rundir.append_history(logdir, entry)


def stop_after_checkpoint(stop):
    """A signal handler: the first Ctrl-C or SIGTERM sets `stop` (the current run finishes its
    window, checkpoints and stops); the second stops at once."""
    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{signal.Signals(signum).name}: stopping after the next checkpoint "
              "(press Ctrl-C again to stop at once)", flush=True)
    return handler


def configs_from_flags():
    """(the grid's Configs, the settings given that no run uses, this process's shard), or
    ValueError: flags alone are checked before TensorFlow loads, so a typo is told at once."""
    axes = axes_from_flags()
    if not 0 <= FLAGS.checkpoint_seconds < math.inf:  # NaN would never checkpoint
        raise ValueError(f"--checkpoint_seconds={FLAGS.checkpoint_seconds:g} must be 0 (after "
                         "every evaluation) or a finite number of seconds")
    if not FLAGS.logdir.strip():
        raise ValueError("--logdir is empty; name the log root to write the runs to, e.g. "
                         "--logdir=logs")
    given = {name for name in FIELDS if FLAGS[name].present}
    return grid(axes), ignored_settings(axes, given), shard_from_flags()


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; every setting is a flag "
                 "(--name=value), see --help")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO chatter hides the progress
    try:
        configs, ignored, shard_of = configs_from_flags()
        jobs = machine.resolve_jobs(FLAGS.jobs, machine.usable_cores(), FLAGS.threads)
    except ValueError as e:
        sys.exit(f"error: {e}")
    for name in ignored:
        print(f"note: --{name} is ignored: no run of this grid depends on it (see --help)")
    native = machine.native_bfloat16(machine.cpu_flags())
    if native and not FLAGS["precision"].present and any(
            c.precision == "float32" for c in configs):
        print(f"note: this CPU computes bfloat16 natively ({native}): --precision=bfloat16 (or "
              "auto) trains ~2x faster here, with other bits but the same conclusions "
              "(README: Precision)")
    quiet_import.tensorflow(FLAGS.threads)
    from tltransfer import data, loop, pool, rundir, study
    from tltransfer.session import Session
    session = Session(threads=FLAGS.threads, deterministic=FLAGS.deterministic)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop_after_checkpoint(session.stop))
    started, start, trained = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter(), []
    record = functools.partial(record_command, FLAGS.logdir, started)
    log = functools.partial(print, flush=True)
    try:
        if jobs > 1:
            results, failures = pool.run_all(
                configs, FLAGS.logdir, jobs, {"threads": FLAGS.threads,
                                              "deterministic": FLAGS.deterministic},
                log=log, shard_of=shard_of, trained=trained, stop=session.stop,
                checkpoint_seconds=FLAGS.checkpoint_seconds)
        else:
            results, failures = study.run_all(
                configs, FLAGS.logdir, log=log, shard_of=shard_of,
                checkpoint_seconds=FLAGS.checkpoint_seconds, trained=trained, session=session)
    except (loop.Interrupted, KeyboardInterrupt) as e:
        where = f" ({e})" if str(e) else ""
        record("interrupted", [c.name for c in trained], f"interrupted{where}")
        sys.exit(f"interrupted{where}; run the same command again to resume")
    except (ValueError, rundir.RunError, data.DataError) as e:
        record("failed" if trained else "refused", [c.name for c in trained], str(e))
        sys.exit(f"error: {e}")
    reason = "; ".join(f"{c.name}: {why}" for c, why in failures.items()) or None
    record("failed" if failures else "trained" if trained else "nothing to do",
           [c.name for c in trained], reason)
    print(f"\n{study.summary({c: results[c] for c in configs if c in results})}")
    for note in rundir.other_runs_notes(FLAGS.logdir):
        print(f"note: {note}")
    print(f"\n{cli.plural(len(results), 'run')} complete under {FLAGS.logdir} after "
          f"{study.duration(time.perf_counter() - start)}; see them with "
          f"`tensorboard --logdir={FLAGS.logdir}`")
    if failures:
        for config, why in failures.items():
            print(f"FAILED {config.name}: {why}", file=sys.stderr)
        sys.exit(f"error: {len(failures)} of {cli.plural(len(failures) + len(results), 'run')} "
                 "failed; delete a failed run's directory to try it again")


if __name__ == "__main__":
    cli.run(main, quick_exit=True)
