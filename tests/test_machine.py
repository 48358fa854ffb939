"""What the machine decides: the same bits at any core count, `auto` precision and jobs."""

import os
import subprocess
import sys

import pytest

from tltransfer import export, machine
from tltransfer.config import Config
from conftest import REPO, TINY, flags_of


def results(logdir):
    return {result["run"]: result for result in export.find_runs(str(logdir))[0]}


@pytest.mark.skipif(machine.usable_cores() < 2, reason="needs two cores to compare with one")
def test_one_visible_core_gives_the_bits_of_two(tmp_path):
    """TensorFlow sizes its default pools by the cores it sees, and the kernels split their
    work by the pool: with the thread count fixed, the core count no longer shows in the bits,
    in float32 and in bfloat16."""
    grid = ["--mode=finetune", "--precision=auto,bfloat16", "--dropout=0.5", *flags_of(TINY)]
    def start(logdir, **kwargs):
        return subprocess.Popen([sys.executable, "-m", "tltransfer.main", *grid,
                                 f"--logdir={logdir}"], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, **kwargs)
    one = start(tmp_path / "one",
                preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    two = start(tmp_path / "two")
    for process in (one, two):
        assert process.wait(timeout=300) == 0, process.stderr.read()
    one, two = results(tmp_path / "one"), results(tmp_path / "two")
    # auto is named by what it resolved to on this CPU, so it is never a run of its own.
    used = sorted({machine.resolve_precision("auto", machine.cpu_flags()), "bfloat16"})
    expected = sorted(Config(**TINY, mode=mode, dropout=0.5,
                             precision=precision).canonical().name
                      for mode in ("source", "finetune") for precision in used)
    assert sorted(two) == expected
    assert sorted(one) == expected
    for name in expected:
        assert one[name]["curve"] == two[name]["curve"], name
        assert one[name]["threads"] == two[name]["threads"] == machine.THREADS


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    assert machine.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    assert machine.cpu_flags(str(tmp_path / "absent")) == frozenset()


@pytest.mark.parametrize("flags, precision", [
    ({"avx2", "amx_bf16", "amx_tile"}, "bfloat16"),
    ({"avx512f", "avx512_bf16"}, "bfloat16"),
    ({"avx512f", "avx2"}, "float32"),   # AVX-512 without its bfloat16 extension: emulated
    (set(), "float32"),                 # no /proc/cpuinfo: not Linux
])
def test_auto_precision_follows_the_cpu_flags(flags, precision):
    assert machine.resolve_precision("auto", flags) == precision
    assert machine.resolve_precision("float32", flags) == "float32"
    name = Config(mode="scratch", precision=machine.resolve_precision("auto", flags)).name
    assert name.endswith("_bfloat16") == (precision == "bfloat16"), name


@pytest.mark.parametrize("jobs, cores, count", [
    ("auto", 1, 1), ("auto", 2, 1), ("auto", 3, 1), ("auto", 8, 4), ("auto", 64, 32),
    ("3", 2, 3), (" 2", 8, 2)])
def test_jobs(jobs, cores, count):
    assert machine.resolve_jobs(jobs, cores) == count


@pytest.mark.parametrize("jobs, message", [("0", "must be at least 1"),
                                           ("two", "not a number of worker processes")])
def test_bad_jobs(jobs, message):
    with pytest.raises(ValueError, match=message):
        machine.resolve_jobs(jobs, 2)


def test_op_fingerprints_repeat_and_change_from_the_first_op_that_computes_otherwise():
    import tensorflow as tf
    from tools import bits

    def prints(inputs):
        return [(name, bits.fingerprint(output)) for name, output in bits.operations(tf, inputs)]
    first = prints(bits.inputs(tf, 8))
    assert prints(bits.inputs(tf, 8)) == first  # the same inputs on every call
    assert [name for name, _ in first][:5] == ["conv1", "conv2", "max_pool", "dense", "logits"]
    inputs = bits.inputs(tf, 8)
    changed = prints({**inputs, "out": inputs["out"] * 2})  # the last layer computes otherwise
    assert changed[:4] == first[:4]
    assert all(c != f for c, f in zip(changed[4:], first[4:]))


def test_op_fingerprints_name_the_cpu(tmp_path):
    from tools import bits
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\ncpu family\t: 25\nmodel\t\t: 1\n"
                       "flags\t\t: fpu avx2 fma avx512f\n")
    assert bits.cpu(str(cpuinfo)) == "AMD EPYC, family 25 model 1, avx2 avx512f fma"
