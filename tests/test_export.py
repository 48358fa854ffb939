"""The exporter's schema (derived from Config), its provenance from studies.jsonl, its
command's refusals, and its reading of the events without TensorFlow."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

from conftest import REPO, error_line, read_events, run_module
from tltransfer import export
from tltransfer.config import Config, scalar_tag

# `python -m tltransfer.export` in a fresh interpreter, then the TensorFlow modules it loaded.
EXPORT_THEN_MODULES = """import runpy, sys
sys.argv = ["tltransfer.export", *sys.argv[1:]]
try:
    runpy.run_module("tltransfer.export", run_name="__main__", alter_sys=True)
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))
"""


def test_the_export_command_reads_events_without_tensorflow(tiny_study, tmp_path):
    """The command imports no TensorFlow and writes what this process (TensorFlow loaded)
    writes, bit for bit; each value is the one TensorFlow's own record reader reads."""
    logdir, results = tiny_study
    out = subprocess.run([sys.executable, "-c", EXPORT_THEN_MODULES, f"--logdir={logdir}",
                          f"--out={tmp_path / 'command.csv'}"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    export.export(logdir, str(tmp_path / "here.csv"))
    for suffix in (".csv", "_runs.csv", "_meta.json"):
        assert ((tmp_path / f"command{suffix}").read_bytes()
                == (tmp_path / f"here{suffix}").read_bytes())
    with open(tmp_path / "command.csv") as f:
        table = list(csv.DictReader(f))
    assert {r["run"] for r in table} == {r["run"] for r in results.values()} | {
        results["frozen"]["source_run"]}
    for run in {r["run"] for r in table}:
        for tag in ("test/accuracy", "train/loss"):
            mode = run.split("_")[0]  # a source net writes tags of its own (scalar_tag)
            expected, _ = read_events(os.path.join(logdir, run), scalar_tag(mode, tag))
            rows = [r for r in table if r["run"] == run and r["tag"] == tag]
            assert {int(r["step"]): r["value"] for r in rows} == {
                step: repr(value) for step, value in expected.items()}


def test_columns_derive_from_config_fields():
    fields = [f.name for f in dataclasses.fields(Config)]
    assert export.COLUMNS == ["run", *fields, "n_train", "samples", "tag", "step", "value"]
    assert export.RUN_COLUMNS == ["run", *fields, "n_train", "samples", "test_accuracy",
                                  "test_loss"]


def test_settings_fill_fields_added_since_and_give_the_budget():
    stored = {k: v for k, v in dataclasses.asdict(Config(mode="source")).items()
              if k != "transferred_lr_scale"}
    row = export.settings({"run": "source_drop0_seed0", "n_train": 36017,
                           "config": {**stored, "source_samples": 3000}})
    assert list(row) == export.SETTINGS
    assert row["transferred_lr_scale"] == 1.0 and row["samples"] == 3000


def test_meta_lists_the_commands_that_made_the_runs_and_refused_ones_apart(tmp_path):
    run = Config(mode="scratch")
    (tmp_path / run.name).mkdir()
    (tmp_path / run.name / "config.json").write_text(json.dumps(
        {"config": dataclasses.asdict(run), "versions": {"tensorflow": "2.21.0"},
         "data_sha256": "abc"}))
    lines = [{"argv": ["main.py", "--flagfile=flags/old.cfg"]},  # before statuses existed
             {"argv": ["main.py", "--p=1"], "status": "trained", "runs": [run.name]},
             {"argv": ["main.py", "--p=0.1"], "status": "trained", "runs": ["other_run"]},
             {"argv": ["main.py", "--p=1"], "status": "nothing to do", "runs": []},
             {"argv": ["main.py", "--lr=3"], "status": "refused", "runs": [],
              "reason": "holds a finished run with other settings (lr)"}]
    (tmp_path / "studies.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    meta = export.meta(str(tmp_path), [{"run": run.name}])
    assert meta["commands"] == ["python -m tltransfer.main --flagfile=flags/old.cfg",
                                "python -m tltransfer.main --p=1"]
    assert meta["refused_commands"] == [{"command": "python -m tltransfer.main --lr=3",
                                         "reason": "holds a finished run with other settings "
                                                   "(lr)"}]
    assert meta["flagfiles"] == ["flags/old.cfg"]
    assert meta["versions"] == {"tensorflow": "2.21.0"} and meta["data_sha256"] == ["abc"]


def test_the_command_refuses_a_missing_logdir_in_one_line(tmp_path):
    out = run_module("tltransfer.export", f"--logdir={tmp_path / 'none'}",
                     f"--out={tmp_path / 'r.csv'}")
    assert error_line(out) == (f"error: --logdir={tmp_path / 'none'} does not exist; point it "
                               "at the log root that tltransfer.main wrote")
    assert not list(tmp_path.iterdir())
