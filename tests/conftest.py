"""Shared test helpers: the command-line runner and its one-error-line check, the tiny run
settings, injected crashes, the event reader, and a tiny study trained once per session."""

import glob
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tltransfer import data, experiment, machine  # noqa: E402
from tltransfer.config import Config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, **kwargs):
    """`python -m MODULE ARGS` from the repository root, its output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          **{"cwd": REPO, "timeout": 300, **kwargs})


def run_main(*args, **kwargs):
    return run_module("tltransfer.main", *args, **kwargs)


def error_line(out):
    """The line a refused or failed command ends with, after checking that it did end so: a
    non-zero exit, no traceback, and a last line that says what went wrong."""
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(("error: ", "interrupted")), out.stderr
    return last


def flags_of(settings):
    """Config settings as tltransfer.main's flags: {'p': 0.005} -> ['--p=0.005']."""
    return [f"--{name}={value}" for name, value in settings.items()]


def run_name(mode, **settings):
    """The directory of the run of `mode` with these settings (budgets show in names)."""
    return Config(mode=mode, **settings).canonical().name


def quiet(line):
    pass


class Crash(Exception):
    """A crash injected by a test."""


def crash_at(samples):
    """A progress callback that crashes the run at its evaluation after `samples`."""
    def progress(event):
        if event.samples == samples:
            raise Crash()
    return progress


def read_events(run_dir, tag="test/accuracy"):
    """{step: value} of one tag in a run's event files, and every step written, in order
    (a duplicate step shows twice there)."""
    points, steps = {}, []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    points[event.step] = float(tf.make_ndarray(value.tensor))
                    steps.append(event.step)
    return points, steps


def write_idx(path, array, compress=False):
    """One array as an IDX file of unsigned bytes, the format of MNIST's distribution."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if compress else open
    with opener(str(path) + (".gz" if compress else ""), "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def small_mnist(test_images=1000):
    """A directory of IDX files for --data: the shipped MNIST with only its first
    `test_images` test images. Evaluating on all 10,000 is most of a tiny run's time; the
    training images stay, since p = 0.005 needs them. Written once per machine, atomically, so
    that parallel test workers share it."""
    path = os.path.join(tempfile.gettempdir(), f"tltransfer-tests-mnist-test{test_images}")
    if not os.path.isdir(path):
        full = data.load_mnist()
        arrays = {"x_train": full.x_train, "y_train": full.y_train,
                  "x_test": full.x_test[:test_images], "y_test": full.y_test[:test_images]}
        work = tempfile.mkdtemp(dir=os.path.dirname(path))
        for key, stem, _ in data.IDX_FILES:
            write_idx(os.path.join(work, stem), arrays[key])
        try:
            os.rename(work, path)
        except OSError:  # another worker was first
            shutil.rmtree(work)
    return path


# As main does by default (op determinism, machine.THREADS threads), so in-process runs give
# the same bits as the command line on any machine.
tf.config.experimental.enable_op_determinism()
tf.config.threading.set_intra_op_parallelism_threads(machine.THREADS)
tf.config.threading.set_inter_op_parallelism_threads(machine.THREADS)

# A few hundred samples of training: enough to move every weight, fast on 2 CPU cores.
TINY = dict(p=0.005, seed=0, train_samples=300, source_samples=200, eval_every=100,
            data=small_mnist())
# One evaluation per run, for tests of who trains what rather than of the curves.
ONE_EVAL = {**TINY, "train_samples": 200, "eval_every": 200}


@pytest.fixture(scope="session")
def mnist():
    return data.load_mnist()


@pytest.fixture(scope="session")
def tiny_mnist():
    """The data of TINY's runs, for the runs a test makes in its own process."""
    return data.load_data(TINY["data"])


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, tiny_mnist):
    """logdir holding a source net and the frozen and finetune runs made from it."""
    logdir = str(tmp_path_factory.mktemp("tiny_study"))
    results = {mode: experiment.run(Config(mode=mode, **TINY), logdir, log=quiet,
                                    mnist=tiny_mnist)
               for mode in ("frozen", "finetune")}
    return logdir, results


def copy_tiny_source(tiny_study, logdir):
    """Puts a copy of the session's TINY source net (dropout 0) into `logdir`, so that a command
    run there trains only its target runs."""
    name = run_name("source", **TINY)
    shutil.copytree(os.path.join(tiny_study[0], name), os.path.join(logdir, name))
    return logdir


@pytest.fixture
def with_source(tiny_study, tmp_path):
    """tmp_path holding a copy of the TINY source net."""
    return copy_tiny_source(tiny_study, tmp_path)
