"""The run-directory protocol: where a run's files live, atomic writes, claims, and reading
what a run left behind (its result, its failure, its scalar summaries).

A run directory holds `config.json`, the TensorBoard events (step = training samples
processed), the final weights (`weights/final.*`, a tf.train.Checkpoint of the model) and
`result.json`, written last and atomically: it alone says that a run is complete. The log root
also holds `studies.jsonl`, the history of the commands run on it.

Files are read and written through TensorBoard's view of TensorFlow (tensorboard.compat.tf):
TensorFlow itself in a training process, and TensorBoard's own stub where a process must run
without TensorFlow (the exporter), so reading run directories needs no TensorFlow.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import re

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat import tf
from tensorboard.util import tensor_util

from tltransfer.config import IRRELEVANT, Config, metric_of

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
WEIGHTS = os.path.join("weights", "final")
CHECKPOINTS = "checkpoints"
FAILED_FILE = "failed.json"
CLAIMS = ".claims"
EVENTS = "events.out.tfevents."
HISTORY = "studies.jsonl"  # one line per command run on a log root: the report's provenance


class RunError(Exception):
    """A run cannot start or finish; the message says why and what to do."""


class Busy(Exception):
    """Another process is training this run right now."""


# All run-directory I/O goes through tf.io.gfile, so a log root may be anything TensorFlow can
# write to (a local path, gs://, s3:// with the TF plugins, hdfs://, ram:// in the tests).
gfile = tf.io.gfile


def is_local(path):
    return "://" not in path


def describe(error):
    """An I/O error in a few words: the system's (No space left on device), without
    TensorFlow's graph-function names and op tags."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = getattr(error, "message", None) or str(error)
    text = re.sub(r"\{\{function_node [^}]*\}\}|\[Op:[^\]]*\]", "", text)
    return " ".join(text.split()) or type(error).__name__


def read_json(path):
    """The parsed file, or None if it is missing or not valid JSON (an unfinished write)."""
    try:
        with gfile.GFile(path, "r") as f:
            return json.load(f)
    except (OSError, ValueError, tf.errors.OpError):
        return None


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def write_text_atomic(path, text):
    """Writes a temporary file and renames it over `path`: readers see all of it or nothing."""
    tmp = f"{path}.tmp"
    if is_local(path):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # so that a power cut cannot leave the rename without data
        os.replace(tmp, path)
    else:
        with gfile.GFile(tmp, "w") as f:
            f.write(text)
        gfile.rename(tmp, path, overwrite=True)


def remove_tree(path):
    if gfile.exists(path):
        gfile.rmtree(path)


def differences(stored, config):
    """Relevant config fields whose stored value differs; a field added since counts at its
    default."""
    stored = {**dataclasses.asdict(Config()), **stored}
    ignored = IRRELEVANT.get(config.mode, ())
    return sorted(k for k, v in dataclasses.asdict(config).items()
                  if k not in ignored and stored.get(k) != v)


def completed_result(config, logdir):
    """The run's result if it is complete and was made with this config; None if not done.

    Raises RunError if a complete run under the same name was made with other settings.
    """
    run_dir = os.path.join(logdir, config.name)
    result = read_json(os.path.join(run_dir, RESULT_FILE))
    if not isinstance(result, dict) or "config" not in result:
        return None
    different = differences(result["config"], config)
    if different:
        raise RunError(
            f"{run_dir} holds a finished run with other settings ({', '.join(different)}); "
            "use another --logdir or delete that run directory")
    return result


def prepare_run_dir(run_dir, config, data_sha256):
    """True if `run_dir` holds a checkpoint of an unfinished run of `config` to resume.

    Otherwise leaves it empty but for a fresh config.json: leftovers of an unfinished run of
    ours are removed, anything else is refused.
    """
    import numpy as np
    import tensorflow as tf  # a training process: TensorFlow is loaded already
    stored = read_json(os.path.join(run_dir, CONFIG_FILE))
    if isinstance(stored, dict) and isinstance(stored.get("config"), dict):
        if (not differences(stored["config"], config)
                and tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS))):
            return True
        remove_tree(run_dir)
    elif gfile.isdir(run_dir) and gfile.listdir(run_dir):
        if not gfile.exists(os.path.join(run_dir, CONFIG_FILE)):
            raise RunError(f"{run_dir} exists and is not a tltransfer run directory; "
                           "move it away or choose another --logdir")
        remove_tree(run_dir)  # our config.json, cut short by a kill
    try:
        gfile.makedirs(run_dir)
        write_json_atomic(os.path.join(run_dir, CONFIG_FILE), {
            "config": dataclasses.asdict(config), "run": config.name,
            "versions": {"tensorflow": tf.__version__, "numpy": np.__version__},
            "data_sha256": data_sha256})
    except (OSError, tf.errors.OpError) as e:
        raise RunError(f"cannot write run directory {run_dir}: {getattr(e, 'strerror', e)}; "
                       "choose a writable --logdir") from e
    return False


def failure(config, logdir):
    """Why this config's run failed, if it did (a failed run stays failed until deleted)."""
    failed = read_json(os.path.join(logdir, config.name, FAILED_FILE))
    if isinstance(failed, dict) and not differences(failed.get("config", {}), config):
        return failed.get("reason", "unknown reason")
    return None


@contextlib.contextmanager
def claim(logdir, name, wait, log):
    """Holds the run's claim: one process at a time trains a run under a log root.

    An flock on a file in <logdir>/.claims: the kernel releases it when its holder exits, however
    it exits, so a claim never outlives a killed process. Object stores have no locks: on a
    remote log root, split the work with shards instead of running duplicate processes.
    """
    if not is_local(logdir):
        yield
        return
    claims = os.path.join(logdir, CLAIMS)
    try:
        os.makedirs(claims, exist_ok=True)
        handle = open(os.path.join(claims, name), "a")
    except OSError as e:
        raise RunError(f"cannot write to --logdir={logdir} ({e.strerror}); "
                       "choose a writable directory") from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise Busy(name) from None
            log(f"{name}: waiting for the other process that is training it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def other_runs(logdir):
    """{entry directly under `logdir`: how many TensorBoard runs (directories holding event
    files) it holds that are not runs of this log root}. `tensorboard --logdir` shows them
    beside the log root's own runs, so a log root inside another mixes two studies in one view;
    '.' stands for event files in the log root itself."""
    found = {}
    for name in sorted(n.rstrip("/") for n in gfile.listdir(logdir)):
        path = os.path.join(logdir, name)
        if not gfile.isdir(path) or gfile.exists(os.path.join(path, CONFIG_FILE)):
            continue  # a run of this log root (or a file)
        count = sum(any(f.startswith(EVENTS) for f in files) for _, _, files in gfile.walk(path))
        if count:
            found[name] = count
    if gfile.glob(os.path.join(logdir, EVENTS + "*")):
        found["."] = 1
    return found


def other_runs_notes(logdir):
    """A note per entry of other_runs: what it is, and how to see this study alone."""
    notes = []
    for name, count in other_runs(logdir).items():
        where = os.path.join(logdir, name) if name != "." else f"{logdir} itself"
        notes.append(f"{where} holds {count} TensorBoard run{'s' * (count != 1)} of "
                     f"another study (a log root inside this one?); `tensorboard "
                     f"--logdir={logdir}` mixes {'them' if count != 1 else 'it'} with this "
                     f"study's runs: move {'it' if name != '.' else 'its event files'} out of "
                     f"{logdir} to see the study alone")
    return notes


def make_log_root(logdir):
    """Creates the log root; RunError if it cannot be written."""
    try:
        gfile.makedirs(logdir)
    except (OSError, tf.errors.OpError) as e:
        raise RunError(f"cannot write to --logdir={logdir} ({getattr(e, 'strerror', None) or e}); "
                       "choose a writable directory") from e


def append_history(logdir, entry):
    """Appends `entry` (a dict: what a command did) to the log root's history, if the log root
    exists; a log root that cannot be written is left as it is (its error was told already)."""
    try:
        if gfile.isdir(logdir):
            with gfile.GFile(os.path.join(logdir, HISTORY), "a") as f:
                f.write(json.dumps(entry) + "\n")
    except (OSError, tf.errors.OpError):
        pass


def read_history(logdir, note=lambda line: None):
    """The log root's history: one dict per command run on it, oldest first. A line cut short
    (a command killed while it appended, a full disk) or edited into something else is left
    out, and `note` receives a line saying so."""
    path = os.path.join(logdir, HISTORY)
    if not gfile.exists(path):
        return []
    with gfile.GFile(path, "r") as f:
        lines = f.read().splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line) if line.strip() else None
        except ValueError:
            entry = None
        if isinstance(entry, dict) and isinstance(entry.get("argv"), list):
            entries.append(entry)
        elif line.strip():
            note(f"{path} line {number} is not a command's record (cut short?); the "
                 "provenance leaves it out")
    return entries


def read_scalars(run_dir):
    """{metric: {step: value}} of the scalar summaries in a run's event files, keyed by the
    METRICS name whatever the run's mode (a source net's tags are its own, see scalar_tag).

    Read with TensorBoard's event-file loader. TF2 summaries are tensors. A record cut short by
    a kill ends its file; a step written twice keeps its last value.
    """
    scalars = {}
    for path in sorted(gfile.glob(os.path.join(run_dir, EVENTS + "*"))):
        for event in event_file_loader.EventFileLoader(path).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault(metric_of(value.tag), {})[event.step] = float(
                        tensor_util.make_ndarray(value.tensor))
    return scalars
