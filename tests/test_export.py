"""The exporter's schema (derived from Config), its provenance from studies.jsonl, and its
command's refusals."""

import dataclasses
import json

from conftest import error_line, run_module
from tltransfer import export
from tltransfer.config import Config


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
