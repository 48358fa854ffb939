"""Failures, interruptions, concurrent processes and bad input: each answered cleanly."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tltransfer import experiment, export, rundir, study
from tltransfer.config import Config
from conftest import (ONE_EVAL, REPO, TINY, Crash, crash_at, error_line, flags_of, quiet, run_main,
                      run_name)

TINY_FLAGS = ["--dropout=0", *flags_of(TINY)]
NAMES = {mode: run_name(mode, **TINY) for mode in ("source", "scratch", "frozen")}
SCRATCH = {k: v for k, v in TINY.items() if k != "source_samples"}


def test_diverging_run_is_recorded_as_failed_and_the_grid_goes_on(tmp_path, tiny_mnist):
    diverging = Config(mode="scratch", **{**SCRATCH, "lr": 1e3})
    healthy = Config(mode="scratch", **{**SCRATCH, "seed": 1})
    results, failures = study.run_all([diverging, healthy], str(tmp_path), quiet, tiny_mnist)
    assert list(results) == [healthy] and list(failures) == [diverging]
    assert "diverged" in failures[diverging] and "--lr" in failures[diverging]
    run_dir = tmp_path / diverging.name
    assert not (run_dir / "result.json").exists()
    assert "diverged" in json.loads((run_dir / "failed.json").read_text())["reason"]
    # Failed stays failed: a second pass reports it again without training.
    assert study.run_all([diverging], str(tmp_path), quiet, tiny_mnist)[1] == failures
    runs, _, incomplete, failed = export.export(str(tmp_path), str(tmp_path / "r.csv"))
    assert (runs, incomplete, failed) == (1, [], [diverging.name])
    from tltransfer.report import document
    document.build(str(tmp_path / "r.csv"), str(tmp_path / "report"), command="test")
    assert f"failed runs, left out: `{diverging.name}`" in (tmp_path / "report" / "report.md"
                                                            ).read_text()


def test_main_exits_non_zero_and_names_failed_runs(tmp_path):
    out = run_main("--mode=scratch", "--lr=1e3", *TINY_FLAGS, f"--logdir={tmp_path}")
    assert f"FAILED {run_name('scratch', **{**SCRATCH, 'lr': 1e3})}: training diverged" \
        in out.stderr
    assert error_line(out) == ("error: 1 of 1 run failed; delete a failed run's directory "
                                   "to try it again")


def test_ctrl_c_stops_after_a_checkpoint_and_the_same_command_resumes(tmp_path):
    args = ["--mode=scratch", *TINY_FLAGS, "--checkpoint_seconds=0", f"--logdir={tmp_path}"]
    process = subprocess.Popen([sys.executable, "-m", "tltransfer.main", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / NAMES["scratch"] / rundir.CHECKPOINTS
    deadline = time.time() + 120
    while not (checkpoints / "checkpoint").exists() and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    out = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if "SIGINT: stopping after the next checkpoint" not in stdout:
        pytest.skip("the run finished before the signal arrived")
    last = error_line(out)
    assert re.fullmatch(rf"interrupted \({NAMES['scratch']} stopped at \d+ samples, "
                        r"after a checkpoint\); run the same command again to resume", last)
    stopped_at = int(re.search(r"stopped at (\d+)", last).group(1))
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"-{stopped_at}")
    resumed = run_main(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at {stopped_at} samples" in resumed.stdout


@pytest.mark.parametrize("sharded", [False, True])
def test_two_processes_on_one_log_root_train_every_run_once(tmp_path, sharded):
    settings = {k: v for k, v in ONE_EVAL.items() if k != "p"}
    args = ["--mode=scratch,frozen,finetune", "--p=0.005,0.01", "--dropout=0",
            *flags_of(settings), f"--logdir={tmp_path}"]
    # Sharded: one process by flags, the other as a Slurm array task (ids 1-2) would be.
    extra = [["--num_shards=2", "--shard_index=0"], []] if sharded else [[], []]
    slurm = {"SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_ID": "2",
             "SLURM_ARRAY_TASK_MIN": "1"}
    envs = [dict(os.environ), {**os.environ, **slurm} if sharded else dict(os.environ)]
    processes = [subprocess.Popen([sys.executable, "-m", "tltransfer.main", *args, *more],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for more, env in zip(extra, envs)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    trained = [name for stdout, _ in outputs
               for name in re.findall(r"\] (\S+): training on", stdout)]
    expected = [run_name("source", **settings)] + [
        run_name(m, p=p, **settings) for m in ("scratch", "frozen", "finetune")
        for p in (0.005, 0.01)]
    assert sorted(trained) == sorted(expected)  # each run trained by exactly one process
    if sharded:  # each process planned only its half of the 7 runs
        assert sorted(re.findall(r"^(\d) runs:", stdout, re.M)[0] for stdout, _ in outputs) \
            == ["3", "4"]
    for name in expected:
        assert rundir.read_json(str(tmp_path / name / "result.json"))["run"] == name


@pytest.mark.parametrize("flagfile, message", [
    ("missing.cfg", "missing.cfg"),
    ("malformed.cfg", "Unknown command line flag 'nonsense'"),
])
def test_bad_flagfiles_are_one_clear_line(tmp_path, flagfile, message):
    (tmp_path / "malformed.cfg").write_text("--nonsense=1\n")
    out = run_main(f"--flagfile={tmp_path / flagfile}", f"--logdir={tmp_path / 'logs'}")
    assert message in error_line(out)
    assert not (tmp_path / "logs").exists()


def test_unwritable_log_root_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = run_main("--mode=scratch", *TINY_FLAGS, f"--logdir={blocker / 'logs'}")
    assert "cannot write to --logdir" in error_line(out)


def test_corrupted_source_net_is_one_clear_line(with_source):
    data_file = next((with_source / NAMES["source"] / "weights").glob("final.data*"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    out = run_main("--mode=frozen", *TINY_FLAGS, f"--logdir={with_source}")
    assert "cannot read the source net's weights" in error_line(out)
    assert not (with_source / NAMES["frozen"] / "result.json").exists()


def test_corrupted_checkpoint_is_one_clear_line(tmp_path, tiny_mnist):
    config = Config(mode="scratch", **SCRATCH)
    with pytest.raises(Crash):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=0,
                       progress=crash_at(200))
    checkpoints = tmp_path / config.name / rundir.CHECKPOINTS
    for data_file in checkpoints.glob("*.data*"):
        data_file.write_bytes(b"garbage")
    with pytest.raises(rundir.RunError, match="checkpoint .* is unreadable.*delete"):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist)


def test_disk_full_mid_run_is_a_clear_error_and_resumable(tmp_path, tiny_mnist, monkeypatch):
    config = Config(mode="scratch", **SCRATCH)
    save = tf.train.CheckpointManager.save

    def full_disk(self, checkpoint_number=None):
        if checkpoint_number == 200:
            raise OSError(28, "No space left on device")
        return save(self, checkpoint_number=checkpoint_number)
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(rundir.RunError, match="No space left on device.*resume"):
        experiment.run(config, str(tmp_path), quiet, tiny_mnist, checkpoint_seconds=0)
    assert rundir.completed_result(config, str(tmp_path)) is None
    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    lines = []
    experiment.run(config, str(tmp_path), lines.append, tiny_mnist)
    assert lines[0] == f"{config.name}: resuming at 100 samples"


def test_result_that_is_not_json_is_redone_not_trusted(tmp_path, tiny_mnist):
    config = Config(mode="scratch", **{**SCRATCH, "train_samples": 200})
    first = experiment.run(config, str(tmp_path), quiet, tiny_mnist)
    (tmp_path / config.name / "result.json").write_text("{not json")
    assert rundir.completed_result(config, str(tmp_path)) is None
    assert experiment.run(config, str(tmp_path), quiet, tiny_mnist) == first
