"""One side of the benchmark measured in this process (`--side`), or in a fresh process of this
tool (run_side), so that each side's memory and warm state are its own."""

import json
import os
import subprocess
import sys
import tempfile

from tools.benchmark import keras_side, process, tltransfer_side
from tools.benchmark.measure import load_mnist, median_timings, peak_rss_mib, progress
from tools.benchmark.process import REPO
from tools.benchmark.settings import MODES

SIDE_NAMES = ("keras", "tltransfer", "floor", "nondeterministic", "precision", "eval_chunk",
              "keras_whole", "memory")


def measure_runs(side, name, settings):
    """Per-mode runs and the study slice of one side, medians over repeats."""
    if settings.warm_up:
        side.run(settings.ps[0], "scratch", 2 * settings.eval_every)
    runs = {(p, mode): [] for p in settings.ps for mode in MODES}
    slices = []
    for repeat in range(settings.repeats):
        for (p, mode), timings in runs.items():
            timings.append(side.run(p, mode, settings.samples))
            progress(f"{name}: {mode} p={p:g} repeat {repeat + 1}/{settings.repeats}: "
                     f"{timings[-1]['total_s']:.2f} s")
        slices.append(side.study_slice(settings.study_samples))
        progress(f"{name}: study slice repeat {repeat + 1}/{settings.repeats}: "
                 f"{sum(t['total_s'] for t in slices[-1].values()):.2f} s")
    return {"runs": [{"mode": mode, "p": p, **median_timings(timings)}
                     for (p, mode), timings in runs.items()],
            "study_slice": {mode: median_timings([s[mode] for s in slices])
                            for mode in slices[0]}}


def measure_side(name, settings, whole_mode=None, eval_chunk=None):
    """The figures of side `name` (one of SIDE_NAMES), measured in this process."""
    mnist = load_mnist()
    if name == "keras_whole":  # first, so that the process does nothing else
        return keras_side.measure_keras_whole(settings, mnist, whole_mode)
    import tensorflow as tf
    from tltransfer import data
    if name == "floor":  # the floors the whole processes are bound by, with op determinism
        tf.config.experimental.enable_op_determinism()
        return {"floor": tltransfer_side.measure_floor(settings, mnist, extras=False)}
    if name == "nondeterministic":  # the floor again, in a process without op determinism
        return {"floor": tltransfer_side.measure_floor(settings, mnist, extras=True)}
    if name == "precision":
        return tltransfer_side.measure_precision(mnist, settings.precision_samples)
    if name == "eval_chunk":
        return tltransfer_side.measure_eval_chunk(eval_chunk, mnist, settings.chunk_evals,
                                                  settings.chunk_repeats)
    if name == "memory":
        return process.measure_memory(settings, mnist)
    tasks = {p: data.target_task(mnist, p) for p in (*settings.ps, settings.study_p)}
    if name == "keras":
        figures = measure_runs(keras_side.KerasSide(settings, mnist, tasks), name, settings)
        return {**figures, "rss_mib": peak_rss_mib()}
    with tempfile.TemporaryDirectory(prefix="tltransfer-benchmark-") as workdir:
        figures = measure_runs(tltransfer_side.TltransferSide(settings, mnist, tasks, workdir),
                               name, settings)
    rss = peak_rss_mib()  # before the floor, whose cached features of p=1.0 are no run's
    return {**figures, "rss_mib": rss,
            "floor": tltransfer_side.measure_floor(settings, mnist, settings.measure_extras),
            "compute": tltransfer_side.measure_compute()}


def run_side(name, settings, *extra_flags):
    """Measures one side in a fresh process of this tool; returns its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{name}.json")
        command = [sys.executable, "-m", __package__, f"--side={name}", f"--side_out={out}",
                   *settings.side_flags(), *extra_flags]
        code = subprocess.run(command, cwd=REPO).returncode
        if code != 0:
            raise RuntimeError(f"the {name} side failed (exit status {code}); its output is above")
        with open(out) as f:
            return json.load(f)
