"""A grid trained by several worker processes on one log root, shown on one screen (--jobs).

The parent plans the grid as study does, hands each idle worker the next run whose source net
is complete (so no worker waits on another), and prints what the workers report: one progress
line set with one ETA, failures, the summary. Workers (worker.py) are spawned, not forked
(TensorFlow does not survive a fork), and each makes its own Session. Claims still guard every run, so
other commands on the same log root (another --jobs, a Slurm array) share it safely.

Ctrl-C reaches the parent alone: it asks every worker to stop after its next checkpoint, and
a second Ctrl-C ends them at once. Either way the next command resumes.
"""

import multiprocessing
import queue
import time

from tltransfer import loop, rundir, study, worker
from tltransfer.cli import plural
from tltransfer.config import CHECKPOINT_SECONDS, TRANSFER_MODES

# How often the parent looks up from the workers' reports: for a Ctrl-C, a dead worker, or a
# run another process holds. Nothing is computed on these wake-ups.
POLL_SECONDS = 0.5


class Screen:
    """The parent's view of the running runs: numbers them as they start, and prints every
    tenth of each run's budget with the ETA of the whole grid."""

    def __init__(self, log, total, jobs):
        self.log, self.total, self.jobs = log, total, jobs
        self.clock = study.Clock()
        self.numbers, self.started, self.latest = {}, {}, {}
        self.shown = study.EveryTenth()

    def start(self, config):
        self.numbers[config] = len(self.numbers) + 1
        self.started[config] = time.perf_counter()

    def finish(self, config, trained=True):
        """`config` ended; its seconds inform the ETA if it trained here (and not in another
        process while this one waited)."""
        seconds = time.perf_counter() - self.started.pop(config)
        if trained:
            self.clock.record(config, seconds)
        self.latest.pop(config, None)

    def line(self, config, text, eta=""):
        self.log(f"[run {self.numbers[config]}/{self.total} "
                 f"{study.duration(self.clock.elapsed())}{eta}] {text}")

    def progress(self, config, event, waiting):
        self.latest[config] = event
        if not self.shown(event):
            return
        left = self.clock.left(list(self.latest.values()), waiting, self.jobs)
        self.line(config, loop.progress_line(event),
                  "" if left is None else f", ~{study.duration(left)} left")


def run_all(configs, logdir, jobs, session_settings, log=print, shard_of=(0, 1), trained=None,
            stop=None, checkpoint_seconds=CHECKPOINT_SECONDS, poll_seconds=POLL_SECONDS):
    """study.run_all with `jobs` worker processes; returns (results, failures).

    `session_settings` are the keyword arguments of each worker's Session; `stop` (an Event
    the caller sets on Ctrl-C) stops every worker after its next checkpoint, then this raises
    loop.Interrupted. A worker that cannot go on (a RunError) stops the others the same
    way, and its error is raised.
    """
    trained = [] if trained is None else trained
    runs, results, _ = study.preflight(configs, logdir, shard_of)
    waiting = [c for c in runs if results[c] is None]
    log(f"{plural(len(runs), 'run')}: {len(runs) - len(waiting)} already complete, "
        f"{len(waiting)} to train under {logdir} by {plural(jobs, 'worker')}")
    context = multiprocessing.get_context("spawn")
    tasks, reports, halt = context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=worker.work, daemon=True, args=(
        logdir, session_settings, checkpoint_seconds, tasks, reports, halt))
               for _ in range(min(jobs, len(waiting)))]
    for process in workers:
        process.start()
    screen, failures, running, busy = Screen(log, len(waiting), len(workers)), {}, set(), {}
    interrupted, error = None, None
    try:
        while waiting or running:
            if not halt.is_set() and (stop is not None and stop.is_set() or error):
                halt.set()
            if not halt.is_set():
                for config in _ready(waiting, running, busy, len(workers)):
                    waiting.remove(config)
                    running.add(config)
                    if config not in screen.numbers:
                        screen.start(config)
                    tasks.put(config)
            elif not running:
                break
            try:
                kind, config, payload = reports.get(timeout=poll_seconds)
            except queue.Empty:
                dead = [p.exitcode for p in workers if p.exitcode not in (None, 0)]
                if dead and running:
                    raise rundir.RunError(f"a worker process ended with exit code {dead[0]}; "
                                          "run the same command again to resume") from None
                continue
            if kind == "log":
                screen.line(config, payload)
            elif kind == "progress":
                screen.progress(config, payload, waiting)
            else:
                running.discard(config)
            if kind == "done":
                results[config] = payload
                trained.append(config)
                screen.finish(config)
            elif kind == "complete":  # another process finished it while this one waited
                results[config] = payload
                screen.finish(config, trained=False)
            elif kind == "failed":
                failures[config] = payload
                results.pop(config, None)
                screen.finish(config)
            elif kind == "busy":  # another command trains it: try again a little later
                busy[config] = time.monotonic() + study.POLL_SECONDS
                waiting.append(config)
            elif kind == "interrupted":
                interrupted = payload
            elif kind == "error":
                error = error or payload
    except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint wait
        for process in workers:
            process.kill()
        raise
    finally:
        stopped = halt.is_set()
        halt.set()  # a worker still training (after an error here) stops at its checkpoint
        for _ in workers:
            tasks.put(None)
        for process in workers:
            process.join()
        # Their semaphores are unlinked when the last reference goes: the queue's feeder thread
        # holds two, and an exception's traceback would keep this frame's (and the processes'
        # arguments) past the process's quick exit.
        tasks.close()
        tasks.join_thread()
        del workers, tasks, reports, halt
    if error:
        raise rundir.RunError(error)
    if interrupted or stopped and waiting:
        raise loop.Interrupted(interrupted or "stopped before starting the remaining runs")
    return {c: r for c, r in results.items() if r is not None}, failures


def _ready(waiting, running, busy, jobs):
    """The runs to start now: in plan order, as many as there are idle workers, each transfer
    run only once its source net is neither waiting nor running."""
    now, ready = time.monotonic(), []
    unfinished = set(waiting) | running
    for config in waiting:
        if len(running) + len(ready) >= jobs:
            break
        if busy.get(config, 0) > now:
            continue
        if config.mode in TRANSFER_MODES and config.source() in unfinished:
            continue
        ready.append(config)
    return ready
