"""TensorFlow, imported without the start-up lines it writes before anything can configure it.

On import, TensorFlow's C++ libraries log through absl before absl's logging is initialised, so
neither TF_CPP_MIN_LOG_LEVEL nor Python's logging reaches them: "WARNING: All log messages
before absl::InitializeLog() ...", "I0000 ... Could not find cuda drivers", the CPU feature
notice, and once the devices are set up, "E0000 ... failed call to cuInit" on a machine without
a GPU. They go straight to file descriptor 2. So the import and the device set-up run with that
descriptor pointed at a temporary file, and afterwards every line of it is written back to the
real stderr unless it is one of these known notices. INFO lines are notices by definition; the
cuInit error is dropped only where no NVIDIA device exists, so a GPU that is present but
broken is still reported, and so is anything else (a Python traceback, a warning, an error).
"""

import glob
import os
import re
import sys
import tempfile

NOTICES = re.compile("|".join((
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] .*",  # absl's INFO lines
    r"To enable the following instructions: .* in other operations, rebuild TensorFlow with "
    r"the appropriate compiler flags\.",  # the second line of the CPU feature notice
)))
NO_GPU_NOTICE = re.compile(r"E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_\w+\.cc:\d+\] failed call to "
                           r"cuInit: .*")


def is_notice(line, gpu_present):
    return bool(NOTICES.fullmatch(line)
                or not gpu_present and NO_GPU_NOTICE.fullmatch(line))


def has_nvidia_device():
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def tensorflow(threads=None):
    """The tensorflow module, imported and its devices set up, its start-up notices dropped.

    `threads`, when given, fixes the intra- and inter-op thread pools before the devices (and
    with them the pools) exist; later it can no longer change them, so a process that imported
    TensorFlow already keeps what it has.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO and WARNING lines
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            tf.config.list_logical_devices()  # initialises the devices: cuInit's line
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            gpu_present = has_nvidia_device()
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not is_notice(line, gpu_present)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf
