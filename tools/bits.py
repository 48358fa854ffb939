"""Fingerprints of the CNN's operations on this machine, to find which one makes two machines'
bits differ.

    python -m tools.bits            # one line per operation: its name and a hash of its output

Each operation runs at the shapes of the default study (its training batch and the evaluation
chunk), forward and backward, on inputs drawn from NumPy's PCG64 (the same numbers on any
machine), with the project's threads and op determinism. Run it on two machines and compare the
lines: the first that differs names the operation whose kernels compute otherwise there.
"""

import hashlib

import numpy as np
from absl import flags

from tltransfer import machine, quiet_import
from tltransfer.cli import run
from tltransfer.config import Config

FLAGS = flags.FLAGS


def inputs(tf, batch):
    """Activations and parameters of the CNN's shapes, the same on every machine."""
    rng = np.random.default_rng(0)

    def normal(*shape, scale=1.0):
        return tf.constant((scale * rng.standard_normal(shape)).astype(np.float32))
    return {"images": tf.constant(rng.random((batch, 28, 28, 1), dtype=np.float32)),
            "conv1": normal(3, 3, 1, 32, scale=0.3), "conv2": normal(3, 3, 32, 32, scale=0.06),
            "dense": normal(12 * 12 * 32, 128, scale=0.02), "out": normal(128, 4, scale=0.1),
            "labels": tf.constant(rng.integers(0, 4, batch), tf.int32)}


def operations(tf, x):
    """(name, output) of each operation of a forward and backward pass, in order."""
    params = [x["conv1"], x["conv2"], x["dense"], x["out"]]
    with tf.GradientTape() as tape:
        tape.watch(params)
        steps = [("conv1", tf.nn.relu(tf.nn.conv2d(x["images"], x["conv1"], 1, "VALID")))]
        steps.append(("conv2", tf.nn.relu(tf.nn.conv2d(steps[-1][1], x["conv2"], 1, "VALID"))))
        steps.append(("max_pool", tf.nn.max_pool2d(steps[-1][1], 2, 2, "VALID")))
        flat = tf.reshape(steps[-1][1], [tf.shape(steps[-1][1])[0], -1])
        steps.append(("dense", tf.nn.relu(tf.matmul(flat, x["dense"]))))
        steps.append(("logits", tf.matmul(steps[-1][1], x["out"])))
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(x["labels"], steps[-1][1])
        steps += [("cross_entropy", losses), ("loss_sum", tf.reduce_sum(losses))]
    grads = tape.gradient(steps[-1][1], params)
    return steps + [(f"gradient_{name}", g) for name, g in
                    zip(("conv1", "conv2", "dense", "out"), grads)]


def fingerprint(tensor):
    return hashlib.sha256(np.ascontiguousarray(tensor.numpy()).tobytes()).hexdigest()[:16]


def cpu(path="/proc/cpuinfo"):
    """The CPU's model name, family and model, and the vector extensions kernels choose by."""
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    isa = sorted(machine.cpu_flags(path) & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    return (f"{fields.get('model name', 'unknown CPU')}, family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}, {' '.join(isa) or 'no AVX2'}")


def main(argv):
    del argv
    tf = quiet_import.tensorflow(FLAGS.threads)
    tf.config.experimental.enable_op_determinism()
    from tltransfer import train  # after quiet_import, which sets the threads first
    print(f"# {cpu()}; TensorFlow {tf.__version__}, {machine.threads_in_use(tf)} threads")
    for phase, batch in (("train", Config().batch_size), ("eval", train.EVAL_CHUNK)):
        for name, output in operations(tf, inputs(tf, batch)):
            print(f"{phase:<6}{name:<18}{fingerprint(output)}")


if __name__ == "__main__":
    # Defined here, not on import, so that tests can import this module beside tltransfer.main.
    flags.DEFINE_integer("threads", machine.THREADS, "TensorFlow threads, as --threads of main.")
    run(main)
