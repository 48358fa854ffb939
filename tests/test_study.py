"""The grid through main: skipping complete runs, redoing missing ones, export to CSV."""

import csv
import json
import os
import re

import pytest

from tltransfer import export, rundir, study
from tltransfer.config import Config
from conftest import (TINY, copy_tiny_source, error_line, flags_of, run_main, run_module,
                      run_name)

# The smoke flagfile, narrowed to 2 target runs + their source net to stay fast.
SMOKE = ["--flagfile=flags/smoke.cfg", "--dropout=0", "--mode=scratch,frozen",
         *flags_of({k: v for k, v in TINY.items() if k != "seed"})]  # smoke.cfg: --seeds=1
RUNS = sorted(run_name(mode, **TINY) for mode in ("frozen", "scratch", "source"))
SCRATCH = run_name("scratch", **TINY)


def main(logdir, *args):
    out = run_main(*SMOKE, f"--logdir={logdir}", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def mtimes(logdir):
    return {name: os.stat(os.path.join(logdir, name, "result.json")).st_mtime_ns for name in RUNS}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_study):
    """The smoke grid with its source net already trained (copied from the session's)."""
    logdir = str(tmp_path_factory.mktemp("smoke"))
    copy_tiny_source(tiny_study, logdir)
    return logdir, main(logdir)


def test_grid_trains_each_run_once_with_progress(smoke):
    logdir, stdout = smoke
    assert sorted(n for n in os.listdir(logdir) if n not in (rundir.HISTORY, ".claims")) == RUNS
    assert "3 runs: 1 already complete, 2 to train" in stdout
    # An ETA from the first run's first report on, from that run's own training rate.
    first = next(line for line in stdout.splitlines() if line.startswith("[run 1/2")
                 and "samples/s" in line)
    assert re.search(r", ~\d+m\d\ds left\] ", first), first
    assert "[run 2/2" in stdout
    assert "final test accuracy" in stdout and "scratch" in stdout.split("final test accuracy")[1]


def test_second_invocation_trains_nothing_and_a_deleted_result_is_redone(smoke):
    logdir, _ = smoke
    before = mtimes(logdir)
    assert "0 to train" in main(logdir)
    assert mtimes(logdir) == before
    os.remove(os.path.join(logdir, SCRATCH, "result.json"))
    stdout = main(logdir)
    assert "1 to train" in stdout and SCRATCH in stdout
    after = mtimes(logdir)
    changed = [name for name in RUNS if after[name] != before[name]]
    assert changed == [SCRATCH]


def test_export_writes_one_row_per_run_tag_step(smoke, tmp_path):
    logdir, _ = smoke
    out = tmp_path / "results.csv"
    runs, count, incomplete, failed = export.export(logdir, str(out))
    assert (runs, incomplete, failed) == (3, [], [])
    with open(out) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == export.COLUMNS and len(table) == count
    keys = [(r["run"], r["tag"], int(r["step"])) for r in table]
    assert len(set(keys)) == len(keys)
    for name in RUNS:
        result = json.loads(open(os.path.join(logdir, name, "result.json")).read())
        mine = [r for r in table if r["run"] == name]
        assert {r["tag"] for r in mine} == {"test/accuracy", "test/loss", "train/accuracy",
                                            "train/loss"}
        accuracy = [r for r in mine if r["tag"] == "test/accuracy"]
        assert [int(r["step"]) for r in accuracy] == result["curve"]["step"]
        assert [float(r["value"]) for r in accuracy] == result["curve"]["test_accuracy"]
        assert {r["mode"] for r in mine} == {result["config"]["mode"]}
        assert {int(r["n_train"]) for r in mine} == {result["n_train"]}
    with open(tmp_path / "results_meta.json") as f:
        meta = json.load(f)
    assert meta["flagfiles"] == ["flags/smoke.cfg"]
    assert any("--mode=scratch,frozen" in c for c in meta["commands"])
    assert meta["versions"]["tensorflow"]


def test_export_is_deterministic_and_leaves_out_incomplete_runs(smoke, tmp_path):
    logdir, _ = smoke
    export.export(logdir, str(tmp_path / "a.csv"))
    unfinished = os.path.join(logdir, "scratch_p0.5_drop0_seed0")
    os.makedirs(unfinished)
    with open(os.path.join(unfinished, rundir.CONFIG_FILE), "w") as f:
        f.write("{}")
    try:
        runs, _, incomplete, _ = export.export(logdir, str(tmp_path / "b.csv"))
    finally:
        os.remove(os.path.join(unfinished, rundir.CONFIG_FILE))
        os.rmdir(unfinished)
    assert runs == 3 and incomplete == ["scratch_p0.5_drop0_seed0"]
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_export_refuses_a_log_root_without_runs(tmp_path):
    (tmp_path / "logs").mkdir()
    out = run_module("tltransfer.export", f"--logdir={tmp_path / 'logs'}",
                     f"--out={tmp_path / 'r.csv'}")
    assert "no complete runs" in error_line(out)
    assert not (tmp_path / "r.csv").exists()


def test_plan_puts_each_source_before_its_first_use_once():
    configs = [Config(mode=m, p=p, seed=s)
               for s in (1, 0) for p in (0.1, 0.01) for m in ("finetune", "scratch", "frozen")]
    names = [c.name for c in study.plan(configs)]
    assert len(names) == len(set(names)) == 14
    assert names[:4] == ["scratch_p0.01_drop0_seed0", "source_drop0_seed0",
                         "frozen_p0.01_drop0_seed0", "finetune_p0.01_drop0_seed0"]
    assert names.index("source_drop0_seed1") < names.index("frozen_p0.01_drop0_seed1")


def test_shards_partition_the_plan():
    configs = [Config(mode=m, p=p, seed=s) for s in (0, 1) for p in (0.1, 1.0)
               for m in ("scratch", "frozen", "finetune")]
    runs = study.plan(configs)
    parts = [study.shard(runs, i, 3) for i in range(3)]
    assert sorted(c.name for part in parts for c in part) == sorted(c.name for c in runs)
    assert all(abs(len(a) - len(b)) <= 1 for a in parts for b in parts)
    with pytest.raises(ValueError, match="shard index 3 is outside 0..2"):
        study.shard(runs, 3, 3)


def test_summary_has_a_column_per_mode_and_variant():
    results = {}
    for seed, accuracy in ((0, 0.90), (1, 0.92)):
        for mode, layers, shift in (("scratch", 2, 0.0), ("frozen", 2, 0.03), ("frozen", 1, 0.01)):
            config = Config(mode=mode, p=0.1, seed=seed, transfer_layers=layers)
            results[config.canonical()] = {"test_accuracy": accuracy + shift}
    lines = study.summary(results).splitlines()
    assert lines[1].split() == ["p", "dropout", "scratch", "frozen", "frozen_depth1"]
    assert lines[2].split()[:2] == ["0.1", "0"]
    cells = [c.strip() for c in lines[2][16:].split("(n=2)")[:3]]
    assert cells == ["91.00 ± 1.41", "94.00 ± 1.41", "92.00 ± 1.41"]
