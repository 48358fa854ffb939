"""tools/benchmark.py --quick end to end: every figure is there, named and consistent.

Speed itself is not tested: the machine may be busy with anything else.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from tltransfer import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("scratch", "frozen", "finetune")
SIDES = ("keras", "tltransfer")


def benchmark(*args):
    return subprocess.run([sys.executable, "tools/benchmark.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=1500)


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("benchmark") / "b.json"
    out = benchmark("--quick", f"--json={path}")
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout, json.loads(path.read_text())


def test_every_mode_is_timed_both_ways_with_its_ratio(quick):
    _, report = quick
    assert [(r["mode"], r["p"]) for r in report["runs"]] == [(m, 0.005) for m in MODES]
    for run in report["runs"]:
        for side in SIDES:
            assert all(positive(run[side][key]) for key in ("s_per_1000", "total_s")), run
        assert run["ratio"] == pytest.approx(
            run["keras"]["s_per_1000"] / run["tltransfer"]["s_per_1000"])
        assert run["ratio_total"] == pytest.approx(
            run["keras"]["total_s"] / run["tltransfer"]["total_s"])


def test_floors_follow_their_formula(quick):
    _, report = quick
    evaluations_per_1000 = 1000 / report["settings"]["eval_every"]
    for floor in report["floor"].values():
        assert positive(floor["train_samples_per_s"]) and positive(floor["eval_images_per_s"])
        assert floor["test_images"] == 3969
        assert floor["s_per_1000"] == pytest.approx(
            1000 / floor["train_samples_per_s"]
            + evaluations_per_1000 * floor["test_images"] / floor["eval_images_per_s"])


def test_study_estimate_and_memory(quick):
    _, report = quick
    study = report["study"]
    assert study["runs"] == 78
    for side in SIDES:
        assert sorted(study[side]["slice"]) == sorted(("source", *MODES))
        assert positive(study[side]["total_s"])
        assert positive(report["rss_mib"][side])
    assert study["ratio"] == pytest.approx(
        study["keras"]["total_s"] / study["tltransfer"]["total_s"])


def test_compute_counts_the_cnns_multiply_adds(quick):
    _, report = quick
    multiply_adds = 26 * 26 * 32 * 9 + 24 * 24 * 32 * 288 + 12 * 12 * 32 * 128 + 128 * 4
    # the profiler counts 2 per multiply-add, plus the bias adds and pooling comparisons
    flops = report["compute"]["forward_flops_per_image"]
    assert 2 * multiply_adds <= flops < 1.01 * 2 * multiply_adds
    assert positive(report["compute"]["matmul_gflops"])



def test_whole_processes_are_timed_both_ways_without_the_tensorflow_import(quick):
    _, report = quick
    whole = report["whole"]
    assert (whole["p"], whole["samples"]) == (0.005, 300)
    assert [r["mode"] for r in whole["runs"]] == list(MODES)
    for run in whole["runs"]:
        for side in SIDES:
            assert positive(run[side]["total_s"]) and positive(run[side]["import_s"])
        assert run["ratio"] == pytest.approx(run["keras"]["total_s"]
                                             / run["tltransfer"]["total_s"])


def test_long_process_records_memory_and_time_outside_compiled_calls(quick):
    _, report = quick
    memory = report["memory"]
    runs = memory["runs"]
    assert [r["mode"] for r in runs] == ["source", *MODES] * 2
    for run in runs:
        assert run["wall_s"] >= run["compiled_s"] > 0
        assert run["outside_s"] == pytest.approx(run["wall_s"] - run["compiled_s"])
        assert positive(run["rss_mib"]) and run["peak_rss_mib"] >= run["rss_mib"]
    summary = memory["summary"]
    assert summary["runs"] == 8 and len(summary["outside_first_s"]) == 4
    assert summary["peak_after_5_mib"] == runs[4]["peak_rss_mib"]
    assert summary["growth_mib"] == pytest.approx(runs[-1]["peak_rss_mib"]
                                                  - runs[4]["peak_rss_mib"])


def test_eval_chunk_side_measures_speed_and_memory(quick):
    _, report = quick
    assert report["eval_chunk"] == train.EVAL_CHUNK
    assert list(report["eval_chunks"]) == ["256"]  # --quick measures the smallest only
    chunk = report["eval_chunks"]["256"]
    assert positive(chunk["eval_images_per_s"]) and positive(chunk["rss_mib"])


def test_table_names_every_mode_and_section(quick):
    table, _ = quick
    for text in (*MODES, "float32 floor", "whole default study", "peak RSS", "TensorFlow",
                 "GFLOP/s", "whole process", "long process", "outside compiled calls"):
        assert text in table


@pytest.mark.parametrize("args, message", [
    (["--samples=1500"], "--samples=1500 must be a multiple of 1000"),
    (["--samples=0"], "--samples=0 must be a multiple of 1000"),
    (["--study_samples=1000"], "--study_samples=1000 must be a multiple of 1000"),
    (["--repeats=0"], "--repeats=0 must be at least 1"),
    (["--p=abc"], "--p=abc: every value must be a number"),
    (["--quick", "--samples=2000"], "--quick sets its own budgets; drop --samples"),
    (["--whole_samples=500"], "--whole_samples=500 must be a multiple of 1000"),
    (["--memory_runs=5"], "--memory_runs=5 must be at least 6"),
])
def test_bad_flags_give_one_clear_line(args, message):
    out = benchmark(*args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
