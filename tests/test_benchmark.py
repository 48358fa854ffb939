"""tools.benchmark: its figures follow their formulas, its table shows the sections measured,
one real section runs end to end, and a bad flag is one clear line.

The formulas are checked on small hand-made measurements whose right answers are worked out
here; the one end-to-end run is the cheapest real section (`--quick --sections=chunks`). Speed
itself is not tested: the machine may be busy with anything else.
"""

import dataclasses
import json
import math

import pytest
import tensorflow as tf

from conftest import error_line, run_module
from tltransfer import train
from tools.benchmark import figures, table, tltransfer_side
from tools.benchmark.settings import MODES, QUICK, SECTIONS, STUDY_RUNS

SETTINGS = dataclasses.replace(QUICK, ps=(0.1,), eval_every=1000)
# The keys of the report each section writes, besides settings and machine.
SECTION_KEYS = {"inrun": ("runs", "floor", "compute", "study", "rss_mib"), "whole": ("whole",),
                "memory": ("memory",), "chunks": ("eval_chunk", "eval_chunks"), "jobs": ("jobs",)}


def timing(s_per_1000, total_s, startup_s=1.0):
    return {"s_per_1000": s_per_1000, "total_s": total_s, "startup_s": startup_s}


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


# Rates picked so that every figure below is a round number: a whole-CNN evaluation of the 4,000
# test images takes 1 s, a classifier's 0.1 s.
FLOOR = {"full": {"train_samples_per_s": 2000, "eval_images_per_s": 4000, "test_images": 4000,
                  "s_per_1000": 1.5},
         "frozen": {"train_samples_per_s": 20_000, "eval_images_per_s": 40_000,
                    "test_images": 4000, "s_per_1000": 0.15, "extract_images_per_s": 10_000}}
# keras / tltransfer s per 1000 samples by mode, and whole-run seconds
PER_1000 = {"scratch": (3.0, 1.5), "frozen": (3.0, 0.3), "finetune": (3.0, 2.0)}
STUDY_SLICE = {"source": timing(0.5, 5.0, startup_s=2.0), "scratch": timing(0.5, 5.0),
               "frozen": timing(0.05, 5.0, startup_s=3.0), "finetune": timing(0.5, 5.0)}


def sides():
    """Both sides' measurements, as their processes write them."""
    return {side: {"runs": [{"mode": mode, "p": 0.1, **timing(PER_1000[mode][i], 10.0 * (i + 1))}
                            for mode in MODES],
                   "study_slice": STUDY_SLICE, "rss_mib": 1000.0 + i,
                   "floor": FLOOR, "compute": {"matmul_gflops": 200.0,
                                               "forward_flops_per_image": 12e6}}
            for i, side in enumerate(("keras", "tltransfer"))}


def whole():
    """The whole-process section of 3,000-sample runs whose frozen run extracts 5,000 images."""
    return {"p": 0.1, "samples": 3000, "frozen_extracted_images": 5000,
            "runs": [{"mode": mode, "keras": {"total_s": keras, "import_s": 6.0},
                      "tltransfer": {"total_s": keras / 2, "import_s": 6.0}, "ratio": 2.0}
                     for mode, keras in zip(MODES, (9.0, 1.9, 13.5))]}


def memory():
    """Twelve runs of a long process, three cycles of the four shapes: the last run's peak is an
    outlier that raises the process's peak far more than the mean of the last four runs' own."""
    own = (900, 950, 960, 1000, 1010, 1000, 980, 990, 990, 990, 990, 1100)
    runs = [{"mode": mode, "outside_s": outside, "trimmed_rss_mib": trimmed,
             "run_peak_rss_mib": peak, "peak_rss_mib": max(own[:i + 1])}
            for i, (mode, outside, trimmed, peak) in enumerate(zip(
                ["source", *MODES] * 3, (1.6, 0.9, 0.7, 0.2, 0.4, 0.1, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1),
                (800, 810, 820, 830, 840, 850, 860, 870, 840, 840, 840, 840), own))]
    return {"p": 0.005, "samples": 200, "runs": runs}


@pytest.fixture(scope="module")
def report():
    """A report of every section, made by the benchmark's own functions from the hand-made
    measurements above."""
    return {"settings": dataclasses.asdict(SETTINGS), "machine": figures.machine(),
            **figures.combine(SETTINGS, sides()),
            "whole": figures.bound_whole(whole(), FLOOR, eval_every=1000, floor_from="inrun"),
            "memory": {**memory(), "summary": figures.memory_summary(memory())},
            "eval_chunk": 512, "eval_chunks": {"256": {"eval_images_per_s": 4000.0,
                                                       "rss_mib": 900.0}},
            "jobs": figures.jobs_summary(JOBS)}


# The jobs section's measurements: 10 runs, 60 s with one worker and 50 s with two; one run at
# 1,000 samples/s on one thread and 1,600 on two.
JOBS = {"p": [0.005, 0.1, 1.0], "samples": 20_000, "grid": [], "runs": 10, "jobs1_s": 60.0,
        "jobs2_s": 50.0, "bit_identical": True, "threads1_samples_per_s": 1000.0,
        "threads2_samples_per_s": 1600.0}


def test_jobs_speed_up_and_thread_efficiency(report):
    jobs = report["jobs"]
    assert jobs["speedup_2_jobs"] == pytest.approx(1.2)
    assert jobs["thread_efficiency_2"] == pytest.approx(0.8)
    text = table.table(report).split(f"\n{table.TITLES['jobs']}")[1]
    assert "--jobs=1 60.0 s, --jobs=2 50.0 s: 1.20x; results bit-identical: yes" in text
    assert "1,000 samples/s on 1 thread, 1,600 on 2: 1.60x (80% efficiency)" in text
    assert " 8 cores: --jobs=auto =  4 workers, ~4x the grid rate of --jobs=1" in text


def test_in_run_ratios_and_distance_to_the_floor(report):
    runs = {r["mode"]: r for r in report["runs"]}
    assert [(r["mode"], r["p"]) for r in report["runs"]] == [(m, 0.1) for m in MODES]
    assert [runs[m]["ratio"] for m in MODES] == pytest.approx([2.0, 10.0, 1.5])
    assert [runs[m]["ratio_total"] for m in MODES] == pytest.approx([0.5] * 3)  # 10 s vs 20 s
    assert [runs[m]["floor_s_per_1000"] for m in MODES] == [1.5, 0.15, 1.5]
    # keras 3.0 s/1000 is 100% over the whole CNN's floor of 1.5, 1900% over the classifier's
    assert [runs[m]["keras_over_floor_pct"] for m in MODES] == pytest.approx([100, 1900, 100])
    assert [runs[m]["tltransfer_over_floor_pct"] for m in MODES] == pytest.approx(
        [0, 100, 100 / 3])
    assert report["rss_mib"] == {"keras": 1000.0, "tltransfer": 1001.0}


def test_study_estimate_extrapolates_each_run_to_the_full_budget(report):
    # each run: start-up + 60 x s/1000; 6 source runs and 24 of each target mode
    per_run = {"source": 2 + 30, "scratch": 1 + 30, "frozen": 3 + 3, "finetune": 1 + 30}
    assert figures.study_estimate(STUDY_SLICE) == {
        "per_run_s": pytest.approx(per_run), "total_s": pytest.approx(6 * 32 + 24 * 68)}
    study = report["study"]
    assert study["runs"] == STUDY_RUNS == 78
    assert study["ratio"] == pytest.approx(1.0)  # both sides measured the same slice here


def test_floor_bound_and_best_ratio_of_whole_processes(report):
    # scratch, finetune: 3,000 samples at 2,000/s + 3 evaluations of 1 s = 4.5 s;
    # frozen: 3,000 at 20,000/s + 3 x 0.1 s + 5,000 images extracted at 10,000/s = 0.95 s
    runs = report["whole"]["runs"]
    assert [r["floor_s"] for r in runs] == pytest.approx([4.5, 0.95, 4.5])
    assert [r["best_ratio"] for r in runs] == pytest.approx([2.0, 2.0, 3.0])
    assert report["whole"]["floor_from"] == "inrun"
    # a shorter last window still evaluates: 2,500 samples make 3 evaluations
    assert figures.floor_bound_s(FLOOR, "finetune", 2500, 1000, 0) == pytest.approx(1.25 + 3)


def test_memory_summary(report):
    summary = report["memory"]["summary"]
    assert summary == {"runs": 12, "peak_after_5_mib": 1010, "peak_after_all_mib": 1100,
                       "growth_mib": 90, "trimmed_early_mib": 855, "trimmed_late_mib": 840,
                       "run_peak_early_mib": 995, "run_peak_late_mib": 1017.5,
                       "run_peak_median_mib": 990, "run_peak_min_mib": 980,
                       "run_peak_max_mib": 1100,
                       "outside_first_s": [1.6, 0.9, 0.7, 0.2],
                       "outside_later_median_s": pytest.approx(0.1),
                       "outside_later_max_s": 0.4}
    lines = table.memory_lines(report)
    assert "peak RSS after 5 runs 1,010 MiB, after 12 1,100 MiB (+90 MiB)" in lines[1]
    assert lines[2].endswith("runs 5-8 855 MiB, of the last four 840 MiB (-15 MiB)")
    assert lines[3].endswith("runs 5-8 995 MiB, of the last four 1,018 MiB (+22 MiB)")
    assert lines[4] == "  a run's own peak, runs 5-12: median 990 MiB, lowest 980, highest 1,100"


def test_memory_without_per_run_peaks_shows_neither_their_means_nor_their_spread():
    """A kernel that cannot restart the peak gives no run's own peak: the lines about them go,
    the process's peak stays."""
    blind = memory()
    for run in blind["runs"]:
        run["run_peak_rss_mib"] = None
    summary = figures.memory_summary(blind)
    assert [summary[f"run_peak_{k}_mib"] for k in ("early", "late", "median", "min", "max")] \
        == [None] * 5
    lines = table.memory_level_lines(summary)
    assert len(lines) == 1 and lines[0].startswith("  resident size after the heap trim")


def test_the_spread_of_the_runs_own_peaks_starts_at_run_5():
    measured = memory()
    measured["runs"][3]["run_peak_rss_mib"] = 500   # run 4: left out
    measured["runs"][4]["run_peak_rss_mib"] = 2000  # run 5: counted
    summary = figures.memory_summary(measured)
    assert (summary["run_peak_min_mib"], summary["run_peak_max_mib"]) == (980, 2000)


@pytest.mark.parametrize("section", SECTIONS)
def test_the_table_shows_each_section_from_its_own_figures_alone(report, section):
    alone = {"settings": {**report["settings"], "sections": [section]},
             "machine": report["machine"], **{k: report[k] for k in SECTION_KEYS[section]}}
    text = table.table(alone)
    assert f"\n{table.TITLES[section]}" in text
    assert [title for other, title in table.TITLES.items()
            if other != section and f"\n{title}" in text] == []


def test_the_full_table_shows_every_section_and_the_new_figures(report):
    text = table.table(report)
    for title in table.TITLES.values():
        assert f"\n{title}" in text
    assert "floor-bound s" in text and "best ratio" in text
    whole_block = text.split(f"\n{table.TITLES['whole']}")[1]
    scratch = next(line for line in whole_block.splitlines() if line.startswith("scratch"))
    assert scratch.split()[:6] == ["scratch", "9.00", "4.50", "2.00", "4.50", "2.00"]
    assert "total: keras 0h30m24s, tltransfer 0h30m24s, ratio 1.00" in text  # 1,824 s


def test_compute_counts_the_cnns_multiply_adds():
    multiply_adds = 26 * 26 * 32 * 9 + 24 * 24 * 32 * 288 + 12 * 12 * 32 * 128 + 128 * 4
    # the profiler counts 2 per multiply-add, plus the bias adds and pooling comparisons
    flops = tltransfer_side.forward_flops_per_image()
    assert 2 * multiply_adds <= flops < 1.01 * 2 * multiply_adds


def test_quick_chunks_section_end_to_end(tmp_path):
    path = tmp_path / "b.json"
    out = run_module("tools.benchmark", "--quick", "--sections=chunks", f"--json={path}")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(path.read_text())
    assert sorted(report) == ["eval_chunk", "eval_chunks", "machine", "settings"]
    assert report["settings"]["sections"] == ["chunks"] and report["settings"]["quick"]
    assert report["machine"]["tensorflow"] == tf.__version__
    assert report["eval_chunk"] == train.EVAL_CHUNK
    assert list(report["eval_chunks"]) == ["256"]  # --quick measures the smallest only
    chunk = report["eval_chunks"]["256"]
    assert sorted(chunk) == ["eval_images_per_s", "rss_mib"]
    assert positive(chunk["eval_images_per_s"]) and positive(chunk["rss_mib"])
    assert table.TITLES["chunks"] in out.stdout and table.TITLES["inrun"] not in out.stdout


@pytest.mark.parametrize("args, message", [
    (["--samples=1500"], "--samples=1500 must be a multiple of 1000"),
    (["--samples=0"], "--samples=0 must be a multiple of 1000"),
    (["--study_samples=1000"], "--study_samples=1000 must be a multiple of 1000"),
    (["--repeats=0"], "--repeats=0 must be at least 1"),
    (["--p=abc"], "--p=abc: every value must be a number"),
    (["--quick", "--samples=2000"], "--quick sets its own budgets; drop --samples"),
    (["--whole_samples=500"], "--whole_samples=500 must be a multiple of 1000"),
    (["--memory_runs=7"], "--memory_runs=7 must be at least 8"),
    (["--sections=whole,bogus"], "--sections=whole,bogus: unknown section bogus; choose from "
                                 "inrun, whole, memory, chunks"),
    (["--quick", "--sections="], "--sections is empty; choose from"),
])
def test_bad_flags_give_one_clear_line(args, message):
    assert message in error_line(run_module("tools.benchmark", *args))
