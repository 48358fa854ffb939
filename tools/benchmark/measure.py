"""The instruments every side uses: a run's stopwatch, the best rate of a compiled call, this
process's memory, and progress lines."""

import gc
import resource
import statistics
import sys
import time

from tools.benchmark.settings import TIMING_KEYS


def progress(line):
    # stderr, so that stdout holds the table alone
    print(line, file=sys.stderr, flush=True)


class Stopwatch:
    """Wall time of one run and the moments its evaluation windows ended."""

    def __init__(self):
        self.start = time.perf_counter()
        self.marks = []  # (seconds since start, samples trained by then)

    def mark(self, samples):
        self.marks.append((time.perf_counter() - self.start, samples))

    def progress(self, event):
        """tltransfer's progress callback: a Progress event after every evaluation."""
        self.mark(event.samples)

    def timing(self, samples):
        """The run's figures, its garbage collected first and charged to it.

        Keras's tf.data iterators sit in reference cycles, so only a collection frees them, and
        freeing an old one waits for its autotuner, whose sleeps double with age: a collection
        that fell inside a later run once cost that run 20 s. Collecting after every run bills
        each run for its own garbage (a few tenths of a second) and keeps repeats comparable.
        """
        gc.collect()
        total = time.perf_counter() - self.start
        if len(self.marks) < 2 or self.marks[-1][1] != samples:
            raise RuntimeError(f"expected progress after the first and the last window, got "
                               f"{self.marks}")
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        steady = 1000 * (t1 - t0) / (s1 - s0)
        return {"s_per_1000": steady, "total_s": total,
                "startup_s": total - samples / 1000 * steady}


def median_timings(timings):
    """The median of each figure over repeats, with the repeats themselves."""
    summary = {key: statistics.median(t[key] for t in timings) for key in TIMING_KEYS}
    summary.update({f"repeats_{key}": [t[key] for t in timings] for key in TIMING_KEYS})
    return summary


def best_rate(call, items_per_call, calls, repeats):
    """Items per second of `calls` back-to-back calls, the best of `repeats`."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            result = call()
        float(result[0])  # the run loop reads every result too
        best = max(best, calls * items_per_call / (time.perf_counter() - start))
    return best


def peak_rss_mib():
    """This process's peak resident size since it started or since reset_peak_rss."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss():
    """Restarts the kernel's peak resident size (and so peak_rss_mib) from the current size, so
    that the next peak is one stretch's own; True if it could (Linux 4.0 and later)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def load_mnist():
    """The shipped MNIST; a damaged file is a ValueError like any other bad input."""
    from tltransfer import data
    try:
        return data.load_mnist()
    except data.DataError as e:
        raise ValueError(str(e)) from e
