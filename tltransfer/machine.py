"""What the machine brings to a study, read without TensorFlow: the threads every run computes
with, the cores this process may use, whether the CPU computes bfloat16 natively, and so the
number of worker processes and the precision that `auto` stands for.
"""

import os

# TensorFlow threads of every run (intra- and inter-op), whatever the machine's cores: the
# kernels split their work by the thread count, so the count is part of what makes the bits.
# 2 is what a 2-core machine's TensorFlow chose by itself, so docs/study keeps its bits.
THREADS = 2
# CPU flags (Linux's /proc/cpuinfo names) of instructions that compute bfloat16 products
# natively; elsewhere TensorFlow emulates bfloat16 and gains little or nothing.
NATIVE_BFLOAT16 = ("amx_bf16", "avx512_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags, or none where the file is missing (not Linux)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(flags):
    """The instruction sets among `flags` that compute bfloat16 natively, as a string ('' if
    none)."""
    return ", ".join(name for name in NATIVE_BFLOAT16 if name in flags)


def resolve_precision(precision, flags):
    """`auto` as the precision it means on a CPU with these flags; other values as they are."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(flags) else "float32"


def usable_cores():
    """The cores this process may run on (its affinity, e.g. under taskset or Slurm)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_jobs(jobs, cores, threads=THREADS):
    """`--jobs`: 'auto' is as many workers as `cores` holds runs of `threads` threads, at
    least 1; otherwise a count of at least 1."""
    if jobs == "auto":
        return max(1, cores // threads)
    try:
        count = int(jobs)
    except ValueError:
        raise ValueError(f"--jobs={jobs}: not a number of worker processes; give one, e.g. "
                         "--jobs=2, or auto (cores / threads)") from None
    if count < 1:
        raise ValueError(f"--jobs={jobs} must be at least 1 (or auto)")
    return count


def threads_in_use(tf):
    """The intra-op threads TensorFlow computes with in this process: the count it was given,
    or, when none was (0), the one it chose itself, one per usable core."""
    return tf.config.threading.get_intra_op_parallelism_threads() or usable_cores()
