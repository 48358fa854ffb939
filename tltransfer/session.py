"""What one process keeps from run to run, in one object: the entry point makes a Session and
passes it to the study and to every run.

A Session owns the compiled Trainers and feature extractors (one per shape of run: tracing
costs ~1 s, and every graph traced stays in memory until the process ends), the latest source
and target task with their tensors, the stop event that Ctrl-C sets, and the process's memory
policy between runs. Settings of the whole process (the evaluation chunk, the thread count, op
determinism) are its constructor's arguments.
"""

import ctypes
import sys
import threading

import tensorflow as tf

from tltransfer import data, machine, train


def return_freed_memory():
    """Gives the heap's free pages back to the system, where the C library can (glibc).

    A run allocates and frees a few hundred MiB of tensors; glibc keeps what was freed in its
    arenas, fragmented, so a long process's resident size grew run after run with nothing
    leaked. Trimming between runs keeps it level (`python -m tools.benchmark
    --sections=memory` measures it).
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform == "linux" else None
    if trim is not None:
        trim(0)


class Session:
    """A process's compiled functions, kept tasks, stop event and between-run policy.

    `threads` fixes TensorFlow's intra- and inter-op thread pools, which must happen before
    TensorFlow starts its runtime (the entry points pass the same count to
    quiet_import.tensorflow, which starts it): None keeps what the process has. `deterministic`
    turns on op determinism for the whole process. `stop` may be an event of another process's
    making (a worker's is its parent's).
    """

    def __init__(self, eval_chunk=train.EVAL_CHUNK, threads=None, deterministic=False,
                 stop=None):
        self.eval_chunk = eval_chunk  # test images per forward pass, in every Trainer
        if threads and machine.threads_in_use(tf) != threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                raise RuntimeError(f"TensorFlow already computes on "
                                   f"{machine.threads_in_use(tf)} threads in this process; "
                                   f"ask for {threads} before it starts") from None
        self.threads = machine.threads_in_use(tf)  # what every run records in result.json
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        # Each shape of run (and of training window) is traced once, on purpose, and kept for
        # the process; TensorFlow's warning about functions traced repeatedly would only alarm.
        tf.get_logger().addFilter(
            lambda record: "triggered tf.function retracing" not in record.getMessage())
        # Set it (main does on Ctrl-C or SIGTERM) and a run stops right after its next
        # checkpoint.
        self.stop = threading.Event() if stop is None else stop
        self._trainers = {}    # train.graph_key -> Trainer
        self._extractors = {}  # train.Extractor.key -> Extractor
        self._tasks = {}       # source task or not -> (its data.TaskSpec and data set, Task)

    def trainer(self, net, variables, schedule="constant", compute_dtype="float32",
                slow_variables=()):
        """The Trainer for runs shaped like `net` training `variables` (see train.graph_key),
        built on the first call for that shape."""
        key = train.graph_key(net, variables, schedule, compute_dtype, slow_variables,
                              self.eval_chunk)
        if key not in self._trainers:
            self._trainers[key] = train.trainer_of_shape(net, key)
        return self._trainers[key]

    def extract_features(self, features, images):
        """`features(images)`, float32 [n, d], compiled once per structure of `features`."""
        key = train.Extractor.key(features)
        if key not in self._extractors:
            self._extractors[key] = train.Extractor(features)
        return self._extractors[key](features, images, self.eval_chunk)

    def task(self, config, mnist):
        """The Task of `config`'s run on `mnist`, kept for the next runs of the same task: a
        study's source nets all train on one task, and a seed's target runs on one (every
        seed's, with prefix subsets)."""
        spec = data.TaskSpec.of(config)
        slot = spec.p is None
        kept = self._tasks.get(slot)
        if kept is None or kept[0] != (spec, mnist.sha256):
            kept = self._tasks[slot] = ((spec, mnist.sha256), spec.build(mnist))
        return kept[1]

    def traces(self):
        """How many times this session's compiled functions were traced, all told."""
        return sum(compiled.traces() for compiled in (*self._trainers.values(),
                                                      *self._extractors.values()))

    def between_runs(self):
        """What the process does after a run and before the next: free memory back."""
        return_freed_memory()
