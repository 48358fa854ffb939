"""The figures derived from the measurements, by name: pure functions of plain dicts."""

import importlib.metadata
import math
import os
import statistics
import sys

from tools.benchmark.settings import (MODES, SIDES, STUDY_RUNS, STUDY_SAMPLES, STUDY_SOURCES,
                                      STUDY_TARGETS_PER_MODE)

FLOOR_BOUND_FORMULA = (
    "floor-bound s = the run's compiled work at the float32 floor's rates: samples / train "
    "rate + its evaluations x test images / eval rate, and for frozen also the training and "
    "test images whose features it extracts once / extraction rate (whole-CNN floor for "
    "scratch and finetune, classifier-on-cached-features floor for frozen); best ratio = "
    "keras s / floor-bound s, the largest ratio a tltransfer whose results stay bit-identical "
    "(so whose compiled work is fixed) could reach on this machine")


def installed(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "tensorflow": installed("tensorflow"), "keras": installed("keras")}


def over_floor_pct(s_per_1000, floor_s_per_1000):
    return 100 * (s_per_1000 / floor_s_per_1000 - 1)


def study_estimate(slice_timings):
    """The default study's wall time: per run, start-up + its samples at the steady rate."""
    per_run = {mode: t["startup_s"] + STUDY_SAMPLES / 1000 * t["s_per_1000"]
               for mode, t in slice_timings.items()}
    total = (STUDY_SOURCES * per_run["source"]
             + STUDY_TARGETS_PER_MODE * sum(per_run[mode] for mode in MODES))
    return {"per_run_s": per_run, "total_s": total}


def study_formula(settings):
    return (f"total = {STUDY_SOURCES} x source run + {STUDY_TARGETS_PER_MODE} x (scratch + "
            f"frozen + finetune run) = {STUDY_RUNS} runs; each run = start-up + "
            f"{STUDY_SAMPLES // 1000} x steady s/1000 ({STUDY_SAMPLES:,} samples), both measured "
            f"on a slice of one run per mode at p={settings.study_p:g}, dropout 0, "
            f"{settings.study_samples} samples each")


def combine(settings, sides):
    """The in-run section's figures, by name, from the two sides' measurements."""
    floor = sides["tltransfer"]["floor"]
    runs = []
    for p in settings.ps:
        for mode in MODES:
            keras, tlt = (next(r for r in sides[side]["runs"] if r["mode"] == mode and r["p"] == p)
                          for side in SIDES)
            floor_s = floor["frozen" if mode == "frozen" else "full"]["s_per_1000"]
            runs.append({
                "mode": mode, "p": p, "keras": keras, "tltransfer": tlt,
                "ratio": keras["s_per_1000"] / tlt["s_per_1000"],
                "ratio_total": keras["total_s"] / tlt["total_s"],
                "floor_s_per_1000": floor_s,
                "keras_over_floor_pct": over_floor_pct(keras["s_per_1000"], floor_s),
                "tltransfer_over_floor_pct": over_floor_pct(tlt["s_per_1000"], floor_s)})
    study = {side: {"slice": sides[side]["study_slice"],
                    **study_estimate(sides[side]["study_slice"])}
             for side in SIDES}
    study["ratio"] = study["keras"]["total_s"] / study["tltransfer"]["total_s"]
    study["runs"] = STUDY_RUNS
    study["formula"] = study_formula(settings)
    return {"runs": runs, "floor": floor, "compute": sides["tltransfer"]["compute"],
            "study": study, "rss_mib": {side: sides[side]["rss_mib"] for side in SIDES}}


def floor_bound_s(floor, mode, samples, eval_every, extracted_images):
    """Seconds of one run's compiled work at the floor's rates (see FLOOR_BOUND_FORMULA)."""
    rates = floor["frozen" if mode == "frozen" else "full"]
    seconds = (samples / rates["train_samples_per_s"] + math.ceil(samples / eval_every)
               * rates["test_images"] / rates["eval_images_per_s"])
    if mode == "frozen":
        seconds += extracted_images / rates["extract_images_per_s"]
    return seconds


def bound_whole(whole, floor, eval_every, floor_from):
    """The whole-process section with each run's floor-bound seconds and best ratio."""
    runs = []
    for run in whole["runs"]:
        bound = floor_bound_s(floor, run["mode"], whole["samples"], eval_every,
                              whole["frozen_extracted_images"])
        runs.append({**run, "floor_s": bound, "best_ratio": run["keras"]["total_s"] / bound})
    return {**whole, "runs": runs, "floor_from": floor_from,
            "floor_bound_formula": FLOOR_BOUND_FORMULA}


# The long process repeats a cycle of one source net and one run of each mode, so runs 5-8 and
# the last four hold one run of each shape, whose peaks differ.
MEMORY_CYCLE = 1 + len(MODES)


def memory_summary(memory):
    """The process's peak after 5 runs and after all; the mean resident size after the heap trim
    before each run, and the mean of the runs' own peaks, over runs 5-8 and over the last four
    (a leak raises both; one run's unlucky peak raises the process's alone); the median and
    range of the runs' own peaks from run 5 on (the band the process's peak moves in without
    any leak: it rises wherever one run's peak tops all before it); seconds outside compiled
    calls per run, for the first run of each shape and for the later ones."""
    runs = memory["runs"]
    seen, first, later = set(), [], []
    for run in runs:
        (later if run["mode"] in seen else first).append(run["outside_s"])
        seen.add(run["mode"])
    early, late = runs[4:4 + MEMORY_CYCLE], runs[-MEMORY_CYCLE:]
    own_peaks = [run.get("run_peak_rss_mib") for run in runs[4:]]
    if None in own_peaks:  # a kernel that cannot restart the peak
        own_peaks = []

    def mean(group, key):
        values = [run.get(key) for run in group]
        return None if None in values else statistics.fmean(values)
    return {"runs": len(runs), "peak_after_5_mib": runs[4]["peak_rss_mib"],
            "peak_after_all_mib": runs[-1]["peak_rss_mib"],
            "growth_mib": runs[-1]["peak_rss_mib"] - runs[4]["peak_rss_mib"],
            **{f"{key}_{name}_mib": mean(group, f"{key}_rss_mib")
               for key in ("trimmed", "run_peak") for name, group in (("early", early),
                                                                       ("late", late))},
            "run_peak_median_mib": statistics.median(own_peaks) if own_peaks else None,
            "run_peak_min_mib": min(own_peaks, default=None),
            "run_peak_max_mib": max(own_peaks, default=None),
            "outside_first_s": first, "outside_later_median_s": statistics.median(later),
            "outside_later_max_s": max(later)}


def jobs_summary(measured):
    """The jobs section's measurements with what follows from them: --jobs=2's speed-up over
    --jobs=1, and the efficiency of one run's second thread (1 = twice the rate of one)."""
    return {**measured, "speedup_2_jobs": measured["jobs1_s"] / measured["jobs2_s"],
            "thread_efficiency_2": (measured["threads2_samples_per_s"]
                                    / (2 * measured["threads1_samples_per_s"]))}
