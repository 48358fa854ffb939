"""--jobs: a grid trained by worker processes, on one screen, to the bits of one process."""

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from conftest import REPO, TINY, error_line, flags_of, run_main, run_name
from tltransfer import export, rundir

# Two workers: the source net and scratch side by side, then frozen and finetune.
GRID = ["--mode=scratch,frozen,finetune", "--dropout=0", *flags_of(TINY)]
RUNS = sorted(run_name(mode, **TINY) for mode in ("source", "scratch", "frozen", "finetune"))


def curves(logdir):
    return {result["run"]: result["curve"] for result in export.find_runs(str(logdir))[0]}


def test_two_workers_train_each_run_once_to_the_bits_of_one(tmp_path, tiny_study):
    two = run_main(*GRID, "--jobs=2", f"--logdir={tmp_path}")
    assert two.returncode == 0, two.stderr
    assert sorted(curves(tmp_path)) == RUNS
    # The session's tiny study trained its source, frozen and finetune runs in one process.
    one = curves(tiny_study[0])
    assert sorted(one) == [name for name in RUNS if not name.startswith("scratch")]
    assert {name: curves(tmp_path)[name] for name in one} == one
    lines = two.stdout.splitlines()
    assert f"{len(RUNS)} runs: 0 already complete, {len(RUNS)} to train under {tmp_path} by " \
           "2 workers" in lines
    trained = re.findall(r"^\[run \d+/\d+ [^]]*\] (\S+): training on", two.stdout, re.M)
    assert sorted(trained) == RUNS  # every run once, each on one numbered progress line set
    # The source net is complete before a run copying it starts.
    source = run_name("source", **TINY)
    done = next(i for i, line in enumerate(lines)
                if f"] {source}:" in line and f"{TINY['source_samples']}/" in line)
    for name in trained:
        if name.startswith(("frozen", "finetune")):
            start = next(i for i, line in enumerate(lines) if f"] {name}: training on" in line)
            assert done < start, (source, name)
    assert two.stdout.count("final test accuracy") == 1
    assert re.search(r"~\d+m\d\ds left\]", two.stdout)


def test_ctrl_c_stops_every_worker_and_the_same_command_resumes(with_source):
    """Two workers stopped mid-run (the source net is the session's, copied)."""
    tmp_path = with_source
    settings = {**TINY, "train_samples": 1000}
    args = ["--mode=scratch,frozen", "--dropout=0", *flags_of(settings), "--jobs=2",
            "--checkpoint_seconds=0", f"--logdir={tmp_path}"]
    process = subprocess.Popen([sys.executable, "-m", "tltransfer.main", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not glob.glob(str(tmp_path / "*" / "checkpoints" / "checkpoint")) \
            and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    out = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert re.fullmatch(r"interrupted \(.*\); run the same command again to resume",
                        error_line(out))
    assert "Traceback" not in stderr
    finished = set(curves(tmp_path))
    resumed = run_main(*args, "--jobs=1")  # the last --jobs wins; one process is quicker
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} already complete" in resumed.stdout
    assert re.search(r": resuming at \d+ samples", resumed.stdout)
    assert sorted(curves(tmp_path)) == sorted(run_name(mode, **settings)
                                              for mode in ("source", "scratch", "frozen"))


def test_a_run_another_process_finishes_meanwhile_is_taken_as_it_is(with_source, tiny_study):
    """While this test holds a run's claim, as another command would, the run turns complete:
    the workers reuse it, and the command records that it trained nothing."""
    logdir, name = with_source, run_name("frozen", **TINY)
    with rundir.claim(str(logdir), name, wait=False, log=None):
        process = subprocess.Popen(
            [sys.executable, "-m", "tltransfer.main", "--mode=frozen", "--dropout=0",
             *flags_of(TINY), "--jobs=2", f"--logdir={logdir}"], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while "to train under" not in (line := process.stdout.readline()):
            assert line, process.stderr.read()  # the plan is made before the copy below
        shutil.copytree(os.path.join(tiny_study[0], name), logdir / name)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert f"{name}: training on" not in stdout
    assert "final test accuracy" in stdout
    last = rundir.read_history(str(logdir))[-1]
    assert (last["status"], last["runs"]) == ("nothing to do", [])
