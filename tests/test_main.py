import json
import os

import pytest

from conftest import TINY, error_line, flags_of, run_main, run_name


@pytest.mark.parametrize("args, message", [
    (["--mode=fozen"], "mode 'fozen' is unknown"),
    (["--p=1.5"], "p=1.5 is outside (0, 1]"),
    (["--p=0"], "p=0.0 is outside (0, 1]"),
    (["--p=abc"], "--p=abc: 'abc' is not a number"),
    (["--p=0.001"], "no training images"),
    (["--data=/nowhere/mnist.mat"], "neither a directory of IDX files nor an existing .mat"),
    (["--target_classes=7"], "target_classes"),
    (["--checkpoint_seconds=-1"], "--checkpoint_seconds=-1 must be 0"),
])
def test_bad_flags_give_one_clear_line(tmp_path, args, message):
    assert message in error_line(run_main(*args, f"--logdir={tmp_path}"))
    assert not any((tmp_path / name / "result.json").exists() for name in os.listdir(tmp_path))


def test_main_runs_a_transfer_run_with_its_source(tmp_path):
    out = run_main("--mode=frozen", "--dropout=0", *flags_of(TINY), f"--logdir={tmp_path}")
    assert out.returncode == 0, out.stderr
    frozen, source = run_name("frozen", **TINY), run_name("source", **TINY)
    assert frozen.startswith("frozen_p0.005_drop0_seed0_n300_eval100_srcn200_data-")
    assert sorted(os.listdir(tmp_path)) == [".claims", frozen, source, "studies.jsonl"]
    result = json.loads((tmp_path / frozen / "result.json").read_text())
    assert result["source_run"] == source
    assert f"{frozen}:     300/300 samples" in out.stdout
    assert f"{100 * result['test_accuracy']:.2f} (n=1)" in out.stdout  # the summary table
