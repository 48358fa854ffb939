"""A grid of runs: the order they train in, progress with an ETA, and the closing summary."""

import collections
import time

import numpy as np

from tltransfer import data, experiment, loop, rundir
from tltransfer.cli import plural
from tltransfer.config import CHECKPOINT_SECONDS, MODES, TRANSFER_MODES
from tltransfer.session import Session

# How long a process waits before trying again a run that another process is training.
POLL_SECONDS = 5.0


def plan(configs):
    """Runs to make, each source net right before the first run that needs it, no repeats.

    Seed-major order, so that an interrupted study already holds whole seeds.
    """
    ordered = sorted(configs, key=lambda c: (c.seed, c.dropout, c.mode == "source", c.p,
                                             MODES.index(c.mode)))
    runs = []
    for config in ordered:
        if config.mode in TRANSFER_MODES:
            runs.append(config.source())
        runs.append(config)
    return list(dict.fromkeys(runs))


class Clock:
    """Estimates the time left: the current run at its own training rate, the runs after it at
    the seconds per sample (start-up included) of the finished runs of their mode, or of all
    finished runs, or, while none has finished, at the current run's rate."""

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds = collections.Counter()
        self.samples = collections.Counter()

    def record(self, config, seconds):
        self.seconds[config.mode] += seconds
        self.samples[config.mode] += config.samples

    def left(self, current, remaining, workers=1):
        """`current`: the latest loop.Progress of the running run (or a list of them, one
        per worker busy); `remaining`: the configs no worker has started, shared by `workers`
        processes side by side. None while no running run has a rate yet."""
        rated = [event for event in (current if isinstance(current, list) else [current])
                 if event.samples > event.start_samples]
        if not rated:
            return None
        own = sum((event.total - event.samples) / event.samples_per_second for event in rated)
        overall = (sum(self.seconds.values()) / sum(self.samples.values()) if self.samples
                   else 1 / rated[0].samples_per_second)
        queued = sum(c.samples * (self.seconds[c.mode] / self.samples[c.mode]
                                  if self.samples[c.mode] else overall) for c in remaining)
        return (own + queued) / workers

    def elapsed(self):
        return time.perf_counter() - self.start


class EveryTenth:
    """Which Progress events a screen shows: a run's every tenth of its budget, and its end."""

    def __init__(self):
        self.due = {}  # run -> samples at which to show it next

    def __call__(self, event):
        if event.samples < self.due.get(event.run, 0) and event.samples < event.total:
            return False
        self.due[event.run] = event.samples + max(event.total // 10, 1)
        return True


def duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def shard(runs, index, count):
    """This shard's part of a plan: every count-th run from `index`, so the shards partition it.

    A shard that needs a source net another shard owns trains it under the run's claim, or
    waits for the owner, so each run is still trained once.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1} (--shard_index, "
                         "--num_shards)")
    return runs[index::count]


def preflight(configs, logdir, shard_of=(0, 1), mnist=None):
    """(this shard's plan, each run's result or None, the data): a bad grid or log root is
    refused before any run trains. Reading every result first also refuses a clashing log
    root."""
    runs = shard(plan(configs), *shard_of)
    mnist = mnist if mnist is not None else data.load_data(configs[0].data)
    data.check_tasks(configs, mnist)
    rundir.make_log_root(logdir)
    return runs, {c: rundir.completed_result(c, logdir) for c in runs}, mnist


def run_all(configs, logdir, log=print, mnist=None, poll_seconds=POLL_SECONDS, shard_of=(0, 1),
            checkpoint_seconds=CHECKPOINT_SECONDS, trained=None, progress=None, session=None):
    """Makes every run of the grid complete under `logdir`; returns (results, failures).

    results maps each config to its result dict, failures each failed config to the reason.
    Complete runs are reused, so calling this again trains only what is missing. Runs that
    another process is training are left for later and then waited for, so several processes
    can share one log root, each run trained once. Every run goes through `session` (the
    process's Session; a new one if not given), which frees memory between runs. `shard_of` =
    (index, count) takes only that shard's part of the plan; `checkpoint_seconds` goes to
    every experiment.run. The configs this call trains (or finishes) are appended to the list
    `trained` as they complete, so the caller knows them even when the study stops half-way.
    `progress`, when given, also receives every run's Progress events.
    """
    trained = [] if trained is None else trained
    session = session if session is not None else Session()
    runs, results, mnist = preflight(configs, logdir, shard_of, mnist)
    pending = [c for c in runs if results[c] is None]
    log(f"{plural(len(runs), 'run')}: {len(runs) - len(pending)} already complete, "
        f"{len(pending)} to train under {logdir}")
    total, finished, failures, clock, shown = len(pending), 0, {}, Clock(), EveryTenth()
    announced = None
    while pending:
        deferred = []
        for i, config in enumerate(pending):
            started = time.perf_counter()
            prefix = f"[run {finished + 1}/{total}"

            def log_line(line, eta="", prefix=prefix):
                log(f"{prefix} {duration(clock.elapsed())}{eta}] {line}")

            def report(event, config=config, after=pending[i + 1:]):
                if progress is not None:
                    progress(event)
                if not shown(event):
                    return
                left = clock.left(event, after if event.run == config.name else [config, *after])
                log_line(loop.progress_line(event),
                         "" if left is None else f", ~{duration(left)} left")

            try:
                done = rundir.completed_result(config, logdir)  # another process finished it
                if done is None:
                    session.between_runs()
                results[config] = done or experiment.run(
                    config, logdir, log=log_line, mnist=mnist, wait=False,
                    checkpoint_seconds=checkpoint_seconds, progress=report, session=session)
                if done is None:
                    trained.append(config)
                    clock.record(config, time.perf_counter() - started)
            except rundir.Busy:
                deferred.append(config)
                continue
            except loop.RunFailed as e:
                failures[config] = str(e)
                results.pop(config)
            finished += 1
        if deferred:
            if len(deferred) != announced:  # say it once per change, not at every poll
                log(f"waiting for {plural(len(deferred), 'run')} that other processes are "
                    "training")
                announced = len(deferred)
            time.sleep(poll_seconds)
        pending = deferred
    return {c: r for c, r in results.items() if r is not None}, failures


def summary(results):
    """A one-screen table: mean final test accuracy (± std, n seeds) per p and dropout, one
    column per mode (and per variant, e.g. frozen_depth1, when a study has several)."""
    groups = collections.defaultdict(list)
    for config, result in results.items():
        label = "_".join(filter(None, (config.mode, config.variant)))
        groups[(label, config.mode, config.p, config.dropout)].append(result["test_accuracy"])
    columns = sorted({(MODES.index(m), label) for label, m, _, _ in groups if m != "source"})
    columns = [label for _, label in columns]
    rows = sorted({(p, d) for _, m, p, d in groups if m != "source"})
    width = max([22] + [len(label) + 2 for label in columns])

    def fmt(values):
        if not values:
            return "-"
        std = f" ± {100 * np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        return f"{100 * np.mean(values):.2f}{std} (n={len(values)})"

    lines = ["final test accuracy, % (mean ± std over seeds)"]
    if columns:
        lines.append(f"{'p':>7} {'dropout':>7}  " + "".join(f"{c:<{width}}" for c in columns))
        cells = {(label, p, d): v for (label, _, p, d), v in groups.items()}
        for p, d in rows:
            lines.append(f"{p:>7g} {d:>7g}  " + "".join(
                f"{fmt(cells.get((c, p, d), [])):<{width}}" for c in columns))
    for (label, m, p, d), values in sorted(groups.items()):
        if m == "source":
            lines.append(f"{label.replace('_', ' ')} net, dropout {d:g}: {fmt(values)}")
    return "\n".join(lines)
