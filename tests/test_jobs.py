"""--jobs: a grid trained by worker processes, on one screen, to the bits of one process."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import ONE_EVAL, REPO, error_line, flags_of, run_main, run_name

SETTINGS = {k: v for k, v in ONE_EVAL.items() if k not in ("p", "seed")}
GRID = ["--mode=scratch,frozen,finetune", "--p=0.005", "--dropout=0", "--seed=0,1",
        *flags_of(SETTINGS)]
RUNS = sorted({run_name(mode, p=0.005, seed=seed, **SETTINGS)
               for mode in ("source", "scratch", "frozen", "finetune") for seed in (0, 1)})


def curves(logdir):
    found = {}
    for path in glob.glob(os.path.join(logdir, "*", "result.json")):
        with open(path) as f:
            result = json.load(f)
        found[result["run"]] = result["curve"]
    return found


def test_two_workers_train_each_run_once_to_the_bits_of_one(tmp_path):
    two = run_main(*GRID, "--jobs=2", f"--logdir={tmp_path / 'two'}")
    one = run_main(*GRID, "--jobs=1", f"--logdir={tmp_path / 'one'}")
    assert two.returncode == 0 and one.returncode == 0, two.stderr + one.stderr
    assert sorted(curves(tmp_path / "two")) == RUNS
    assert curves(tmp_path / "two") == curves(tmp_path / "one")
    lines = two.stdout.splitlines()
    assert f"{len(RUNS)} runs: 0 already complete, {len(RUNS)} to train under " \
           f"{tmp_path / 'two'} by 2 workers" in lines
    trained = re.findall(r"^\[run \d+/\d+ [^]]*\] (\S+): training on", two.stdout, re.M)
    assert sorted(trained) == RUNS  # every run once, each on one numbered progress line set
    # A source net is complete before a run copying it starts.
    for name in trained:
        if name.startswith(("frozen", "finetune")):
            seed = re.search(r"_seed(\d+)", name).group(1)
            source = run_name("source", seed=int(seed), **SETTINGS)
            done = next(i for i, line in enumerate(lines)
                        if f"] {source}:" in line and f"{SETTINGS['source_samples']}/" in line)
            start = next(i for i, line in enumerate(lines) if f"] {name}: training on" in line)
            assert done < start, (source, name)
    assert two.stdout.count("final test accuracy") == 1
    assert re.search(r"~\d+m\d\ds left\]", two.stdout)


def test_ctrl_c_stops_every_worker_and_the_same_command_resumes(tmp_path):
    settings = {**SETTINGS, "train_samples": 1000, "eval_every": 100}
    args = ["--mode=scratch,frozen", "--p=0.005", "--dropout=0", "--seed=0,1",
            *flags_of(settings), "--jobs=2", "--checkpoint_seconds=0", f"--logdir={tmp_path}"]
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
    resumed = run_main(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} already complete" in resumed.stdout
    assert re.search(r": resuming at \d+ samples", resumed.stdout)
    assert sorted(curves(tmp_path)) == sorted(
        run_name(mode, p=0.005, seed=seed, **settings)
        for mode in ("source", "scratch", "frozen") for seed in (0, 1))
