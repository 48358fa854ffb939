"""The jobs section: one grid as whole commands with --jobs=1 and --jobs=2 on fresh log roots
(wall time, and whether the results agree to the bit), and one run on 1 and on 2 threads, whose
ratio is the thread efficiency a many-core estimate rests on."""

import os
import re
import subprocess
import sys
import tempfile
import time

from tltransfer import export
from tools.benchmark.measure import progress
from tools.benchmark.process import REPO

JOBS = (1, 2)
THREADS = (1, 2)


def command(*args):
    """Wall seconds and stdout of `python -m tltransfer.main ARGS`."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tltransfer.main", *args], cwd=REPO,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"tltransfer.main {' '.join(args)} failed (exit status "
                           f"{done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout


def curves(logdir):
    """{run: its test curve} of the complete runs under `logdir`."""
    return {result["run"]: result["curve"] for result in export.find_runs(logdir)[0]}


def in_run_rate(stdout):
    """The last progress line's samples per second (compiled calls only)."""
    rates = re.findall(r"([\d,]+) samples/s", stdout)
    if not rates:
        raise RuntimeError(f"no progress line in:\n{stdout[-2000:]}")
    return float(rates[-1].replace(",", ""))


def measure_jobs(settings):
    grid = [f"--p={','.join(map(repr, settings.jobs_p))}", "--mode=scratch,frozen,finetune",
            "--dropout=0", "--seed=0", f"--eval_every={settings.eval_every}",
            f"--train_samples={settings.jobs_samples}",
            f"--source_samples={settings.jobs_samples}"]
    figures = {"p": list(settings.jobs_p), "samples": settings.jobs_samples, "grid": grid}
    with tempfile.TemporaryDirectory(prefix="tltransfer-jobs-") as tmp:
        found = {}
        for jobs in JOBS:
            progress(f"jobs: the grid with --jobs={jobs}")
            logdir = os.path.join(tmp, f"jobs{jobs}")
            figures[f"jobs{jobs}_s"], _ = command(*grid, f"--jobs={jobs}", f"--logdir={logdir}")
            found[jobs] = curves(logdir)
        figures["runs"] = len(found[1])
        figures["bit_identical"] = found[1] == found[2]
        for threads in THREADS:
            progress(f"jobs: one scratch run on {threads} thread(s)")
            _, stdout = command(
                "--mode=scratch", f"--p={settings.jobs_p[-1]!r}", "--dropout=0", "--seed=0",
                f"--eval_every={settings.eval_every}", f"--train_samples={settings.jobs_samples}",
                f"--threads={threads}", "--jobs=1",
                f"--logdir={os.path.join(tmp, f'threads{threads}')}")
            figures[f"threads{threads}_samples_per_s"] = in_run_rate(stdout)
    return figures
