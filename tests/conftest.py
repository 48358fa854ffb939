"""Shared fixtures: one tiny source/frozen/finetune study, trained once per test session."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tltransfer import data, experiment  # noqa: E402
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


# As main does by default, so in-process runs give the same bits as the command line.
tf.config.experimental.enable_op_determinism()

# A few hundred samples of training: enough to move every weight, fast on 2 CPU cores.
TINY = dict(p=0.005, seed=0, train_samples=300, source_samples=300, eval_every=100)


@pytest.fixture(scope="session")
def mnist():
    return data.load_mnist()


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, mnist):
    """logdir holding a source net and the frozen and finetune runs made from it."""
    logdir = str(tmp_path_factory.mktemp("tiny_study"))
    results = {mode: experiment.run(Config(mode=mode, **TINY), logdir,
                                    log=lambda line: None, mnist=mnist)
               for mode in ("frozen", "finetune")}
    return logdir, results
