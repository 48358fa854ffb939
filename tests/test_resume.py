"""Reproducible to the bit, and resumable: an interrupted run ends as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import experiment, loop, rundir
from tltransfer.config import Config
from tltransfer.session import Session
from conftest import TINY, Crash, crash_at, flags_of, quiet, read_events

# Six evaluations, with dropout: resume points before, between and after checkpoints.
SETTINGS = {**TINY, "dropout": 0.5, "train_samples": 600}


def weights(run_dir):
    path = os.path.join(run_dir, rundir.WEIGHTS)
    return {n: tf.train.load_variable(path, n) for n, _ in tf.train.list_variables(path)
            if n.startswith("model/")}


def assert_same_run(dir_a, dir_b):
    with open(os.path.join(dir_a, "result.json"), "rb") as a, \
            open(os.path.join(dir_b, "result.json"), "rb") as b:
        assert a.read() == b.read()
    wa, wb = weights(dir_a), weights(dir_b)
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])
    assert read_events(dir_a)[1] == read_events(dir_b)[1] == list(range(100, 601, 100))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_mnist):
    logdir = str(tmp_path_factory.mktemp("reference"))
    for mode in ("scratch", "frozen"):
        experiment.run(Config(mode=mode, **SETTINGS), logdir, quiet, tiny_mnist)
    return logdir


def test_same_seed_gives_the_same_bits_and_another_seed_does_not(reference, tmp_path, tiny_mnist):
    config = Config(mode="scratch", **SETTINGS)
    experiment.run(config, str(tmp_path), quiet, tiny_mnist)
    assert_same_run(os.path.join(reference, config.name), os.path.join(tmp_path, config.name))
    other = Config(mode="scratch", **{**SETTINGS, "seed": 1})
    other_result = experiment.run(other, str(tmp_path), quiet, tiny_mnist)
    same_result = json.loads(open(os.path.join(reference, config.name, "result.json")).read())
    assert other_result["curve"]["test_loss"] != same_result["curve"]["test_loss"]


@pytest.mark.parametrize("mode", ["scratch", "frozen"])
def test_run_interrupted_after_an_evaluation_resumes_exactly(reference, tmp_path, tiny_mnist, mode):
    config = Config(mode=mode, **SETTINGS)
    if mode == "frozen":  # reuse the reference's source net
        source = config.source().name
        os.symlink(os.path.join(reference, source), os.path.join(tmp_path, source))

    with pytest.raises(Crash):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=0,
                       progress=crash_at(300))
    run_dir = os.path.join(tmp_path, config.name)
    assert not os.path.exists(os.path.join(run_dir, "result.json"))
    checkpoints = os.path.join(run_dir, rundir.CHECKPOINTS)
    assert tf.train.latest_checkpoint(checkpoints).endswith("-300")
    lines = []
    experiment.run(config, str(tmp_path), lines.append, tiny_mnist)
    assert lines[0] == f"{config.name}: resuming at 300 samples"
    assert_same_run(os.path.join(reference, config.name), run_dir)
    assert not os.path.exists(os.path.join(run_dir, rundir.CHECKPOINTS))


def test_crash_during_checkpoint_and_final_writes_resumes_exactly(reference, tmp_path, tiny_mnist,
                                                                  monkeypatch):
    config = Config(mode="scratch", **SETTINGS)
    save = tf.train.CheckpointManager.save
    calls = []

    def save_then_crash(self, checkpoint_number=None):
        calls.append(checkpoint_number)
        if len(calls) == 4:  # the 400-sample checkpoint never lands
            raise Crash()
        return save(self, checkpoint_number=checkpoint_number)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_then_crash)
    with pytest.raises(Crash):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=0)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)

    write = rundir.write_json_atomic

    def crash_on_result(path, obj):
        if path.endswith(rundir.RESULT_FILE):
            with open(f"{path}.tmp", "w") as f:
                f.write(json.dumps(obj)[:50])  # the temporary file, cut short
            raise Crash()
        write(path, obj)
    monkeypatch.setattr(experiment, "write_json_atomic", crash_on_result)
    with pytest.raises(Crash):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist)
    monkeypatch.setattr(experiment, "write_json_atomic", write)
    assert rundir.completed_result(config, str(tmp_path)) is None

    experiment.run(config, str(tmp_path), quiet, tiny_mnist)
    assert_same_run(os.path.join(reference, config.name), os.path.join(tmp_path, config.name))


def test_checkpoints_are_timed_and_a_stop_forces_one(reference, tmp_path, tiny_mnist, monkeypatch):
    config = Config(mode="scratch", **SETTINGS)
    save = tf.train.CheckpointManager.save
    saved = []

    def counted_save(self, checkpoint_number=None):
        saved.append(checkpoint_number)
        return save(self, checkpoint_number=checkpoint_number)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", counted_save)

    with pytest.raises(Crash):  # no hour has passed: nothing to resume from
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=3600,
                       progress=crash_at(300))
    assert saved == []

    session = Session()

    def stop_at_300(event):
        if event.samples == 300:
            session.stop.set()
    with pytest.raises(loop.Interrupted, match="stopped at 400 samples"):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=3600,
                       progress=stop_at_300, session=session)
    assert saved == [400]  # the run started over, and the stop wrote the only checkpoint
    lines = []
    experiment.run(config, str(tmp_path), lines.append, tiny_mnist, checkpoint_seconds=3600)
    assert lines[0] == f"{config.name}: resuming at 400 samples"
    assert_same_run(os.path.join(reference, config.name), os.path.join(tmp_path, config.name))


def test_kill_9_of_a_real_run_then_resume(reference, tmp_path):
    kill_after_checkpoint = 300  # mid-run: checkpoints before it and evaluations after it
    config = Config(mode="scratch", **SETTINGS)
    command = [sys.executable, "-m", "tltransfer.main", "--mode=scratch",
               *flags_of({k: v for k, v in SETTINGS.items() if k != "source_samples"}),
               "--checkpoint_seconds=0", f"--logdir={tmp_path}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = os.path.join(tmp_path, config.name, rundir.CHECKPOINTS,
                          f"ckpt-{kill_after_checkpoint}.index")
    deadline = time.time() + 120
    while not os.path.exists(marker) and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(tmp_path, config.name, "result.json"))
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "resuming at" in out.stdout
    assert out.stderr == ""  # no warning about the checkpoint's save counter, left unread
    assert_same_run(os.path.join(reference, config.name), os.path.join(tmp_path, config.name))
