"""Measurements of whole processes: each run a process of its own, each side started fresh
(what a user waits for), and one long process of many runs (memory, time outside compiled
calls)."""

import dataclasses
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from tltransfer.config import Config
from tools.benchmark.measure import current_rss_mib, peak_rss_mib, progress, reset_peak_rss
from tools.benchmark.settings import MODES, SIDES

# A fresh interpreter that times `import tensorflow`, writes it to argv[1], then runs the module
# named in argv[2] as `python -m` would, with the rest of argv as its arguments.
WHOLE_CHILD = """import json, runpy, sys, time
start = time.perf_counter()
import tensorflow
with open(sys.argv[1], "w") as f:
    json.dump({"import_s": time.perf_counter() - start}, f)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def whole_process(module, *args):
    """Seconds of a fresh `python -m module args` minus its `import tensorflow`, and that
    import's seconds: everything a user waits for but TensorFlow's own loading."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "import.json")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", WHOLE_CHILD, out, module, *args], cwd=REPO,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)} failed (exit status "
                               f"{done.returncode}): {done.stderr[-2000:]}")
        with open(out) as f:
            imported = json.load(f)["import_s"]
    return {"total_s": seconds - imported, "import_s": imported}


def extracted_images(logdir, mode):
    """The images a run of `mode` under `logdir` passed through its features once (a frozen
    run caches its training and test images' features), from its result.json."""
    for path in glob.glob(os.path.join(logdir, "*", "result.json")):
        with open(path) as f:
            result = json.load(f)
        if result["config"]["mode"] == mode:
            return result["n_train"] + result["n_test"]
    raise RuntimeError(f"no result.json of a {mode} run under {logdir}")


def measure_whole(settings):
    """Each mode's run as a whole process, each side fresh: tltransfer's command line (its
    source net already trained, as in a study) against the Keras script of the same run."""
    eval_every = settings.eval_every
    common = ["--dropout=0", "--seed=0", f"--eval_every={eval_every}",
              f"--source_samples={2 * eval_every}"]
    figures = {mode: {"keras": [], "tltransfer": []} for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="tltransfer-whole-") as tmp:
        sources = os.path.join(tmp, "sources")
        whole_process("tltransfer.main", "--mode=source", *common, f"--logdir={sources}")
        source = Config(mode="source", source_samples=2 * eval_every, eval_every=eval_every).name
        for repeat in range(settings.repeats):
            for mode in MODES:
                logdir = os.path.join(tmp, f"{mode}{repeat}")
                os.makedirs(logdir)
                os.symlink(os.path.join(sources, source), os.path.join(logdir, source))
                figures[mode]["tltransfer"].append(whole_process(
                    "tltransfer.main", f"--mode={mode}", f"--p={settings.whole_p}", *common,
                    f"--train_samples={settings.whole_samples}", f"--logdir={logdir}"))
                figures[mode]["keras"].append(whole_process(
                    __package__, "--side=keras_whole", f"--whole_mode={mode}",
                    f"--side_out={os.path.join(tmp, 'keras.json')}", *settings.side_flags()))
                progress(f"whole process: {mode} repeat {repeat + 1}/{settings.repeats}: keras "
                         f"{figures[mode]['keras'][-1]['total_s']:.2f} s, tltransfer "
                         f"{figures[mode]['tltransfer'][-1]['total_s']:.2f} s")
        extracted = extracted_images(os.path.join(tmp, "frozen0"), "frozen")
    runs = []
    for mode in MODES:
        run = {"mode": mode}
        for side in SIDES:
            repeats = figures[mode][side]
            run[side] = {key: statistics.median(r[key] for r in repeats)
                         for key in ("total_s", "import_s")}
            run[side]["repeats_total_s"] = [r["total_s"] for r in repeats]
        run["ratio"] = run["keras"]["total_s"] / run["tltransfer"]["total_s"]
        runs.append(run)
    return {"p": settings.whole_p, "samples": settings.whole_samples, "runs": runs,
            "frozen_extracted_images": extracted}


def measure_memory(settings, mnist):
    """One long process of runs of the same shapes (a source net, then its scratch, frozen and
    finetune runs, seed after seed), as a study makes them. For each run: the resident size
    after the heap trim before it, its own peak (where the kernel lets the peak restart), the
    process's peak so far, and its seconds outside compiled calls (its wall time minus its
    training windows and evaluations, from its Progress events, and its feature extraction)."""
    import tensorflow as tf
    from tltransfer import experiment
    from tltransfer.session import Session
    tf.config.experimental.enable_op_determinism()
    session = Session()
    configs, seed = [], 0
    while len(configs) < settings.memory_runs:
        target = Config(mode="scratch", p=settings.memory_p, seed=seed,
                        train_samples=settings.memory_samples,
                        source_samples=settings.memory_samples, eval_every=settings.eval_every)
        configs += [target.source()] + [dataclasses.replace(target, mode=mode) for mode in MODES]
        seed += 1
    runs, high_water = [], peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="tltransfer-memory-") as logdir:
        for config in configs[:settings.memory_runs]:
            events = []
            session.between_runs()  # as a study does
            trimmed, own_peak = current_rss_mib(), reset_peak_rss()
            start = time.perf_counter()
            experiment.run(config, logdir, log=lambda line: None, mnist=mnist,
                           progress=events.append, session=session)
            wall = time.perf_counter() - start
            compiled = events[-1].train_seconds + events[-1].extract_seconds
            high_water = max(high_water, peak_rss_mib())
            runs.append({"mode": config.mode, "wall_s": wall, "compiled_s": compiled,
                         "outside_s": wall - compiled, "rss_mib": current_rss_mib(),
                         "trimmed_rss_mib": trimmed,
                         "run_peak_rss_mib": peak_rss_mib() if own_peak else None,
                         "peak_rss_mib": high_water})
    return {"p": settings.memory_p, "samples": settings.memory_samples, "runs": runs}
