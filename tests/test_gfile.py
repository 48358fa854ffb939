"""A log root anywhere tf.io.gfile reaches: the study, resume and export on ram://."""

import csv
import io
import os

import pytest
import tensorflow as tf

from tltransfer import export, rundir, study
from tltransfer.config import Config
from conftest import TINY, Crash, quiet


def test_study_resume_and_export_on_an_in_memory_filesystem(tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so that a path mistaken for a local one would show up here
    logdir = "ram://tltransfer-test/logs"
    configs = [Config(mode=m, dropout=0.0, **TINY) for m in ("scratch", "frozen")]
    names = {c.mode: c.name for c in configs + [configs[1].source()]}

    def crash_in_frozen(event):
        if (event.run, event.samples) == (names["frozen"], 200):
            raise Crash()
    with pytest.raises(Crash):
        study.run_all(configs, logdir, quiet, tiny_mnist, checkpoint_seconds=0,
                      progress=crash_in_frozen)
    lines = []
    results, failures = study.run_all(configs, logdir, lines.append, tiny_mnist)
    assert not failures and len(results) == 3
    assert any(f"{names['frozen']}: resuming at 200 samples" in line for line in lines)
    for name in names.values():
        result = rundir.read_json(f"{logdir}/{name}/result.json")
        assert result["curve"]["step"][-1] == (200 if name.startswith("source") else 300)
        assert not tf.io.gfile.exists(f"{logdir}/{name}/{rundir.CHECKPOINTS}")
    again = []
    study.run_all(configs, logdir, again.append, tiny_mnist)
    assert "0 to train" in again[0]

    runs, count, incomplete, failed = export.export(logdir, "ram://tltransfer-test/out.csv")
    assert (runs, incomplete, failed) == (3, [], [])
    with tf.io.gfile.GFile("ram://tltransfer-test/out.csv") as f:
        table = list(csv.DictReader(io.StringIO(f.read())))
    assert len(table) == count == 4 * (2 + 3 + 3)
    assert os.listdir(tmp_path) == []  # nothing written locally
