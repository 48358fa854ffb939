"""What a sweep user types wrong, and log roots damaged by hand or by a kill: each case ends
in one line that says what is wrong and how to fix it, a non-zero exit, no traceback, and
nothing written that could later look complete (../shared/reviews/badinput.md, issue 22).

The commands of a table run at once, as separate processes; the flag cases are refused
before TensorFlow loads, so they take a fraction of a second each."""

import concurrent.futures
import glob
import json
import os
import resource
import shutil
import signal
import struct

import pytest
import tensorflow as tf

from conftest import (REPO, TINY, copy_tiny_source, error_line, flags_of, run_main, run_module,
                      run_name, write_idx)
from tltransfer import data, main
from tltransfer import export as export_module

# One scratch run, as the review's $M; each case adds or overrides flags.
M = ["--p=0.01", "--mode=scratch", "--dropout=0", "--seed=0", "--train_samples=500",
     "--source_samples=500", "--eval_every=100", "--logdir=L"]

FLAG_CASES = {  # name: (flags added to M, what the error line must say)
    "repeated value": (["--lr=0.001,0.001"], "--lr=0.001,0.001: '0.001' and '0.001' are the "
                       "same value; give each value once"),
    "repeated value written two ways": (["--p=0.01,1e-2"], "'0.01' and '1e-2' are the same"),
    "repeated seed": (["--seed=3,3"], "--seed=3,3: '3' and '3' are the same value"),
    "repeated class list": (["--target_classes=6-9/6,7,8,9"],
                            "'6-9' and '6,7,8,9' are the same value"),
    "empty value": (["--lr=0.001,"], "--lr=0.001,: an empty value; separate values with ','"),
    "empty mode": (["--mode=scratch,"], "--mode=scratch,: an empty value"),
    "empty seed": (["--seed=0,"], "--seed=0,: an empty value"),
    "empty class list at the end": (["--target_classes=6-9/"],
                                    "--target_classes=6-9/: an empty value; separate values "
                                    "with '/'"),
    "empty class list between": (["--target_classes=6-9//5-9"], "an empty value"),
    "empty class": (["--mode=frozen", "--source_classes=0-5,"],
                    "classes '0-5,': an empty part"),
    "overlapping parts of a class list": (
        ["--target_classes=6-9,5-9"], "'5-9' repeats 6-9 of '6-9'; separate the class lists "
        "of a sweep with '/' (6-9/5-9)"),
    "a digit named twice": (["--target_classes=1,1"], "'1' repeats 1 of '1'; name each digit "
                            "once"),
    "one-class split": (["--target_classes=7"], "must name at least two of the digits"),
    "one-class split in a sweep": (["--target_classes=6-9/7"], "classes '7' must name at least "
                                   "two"),
    "one-class source split": (["--mode=frozen", "--source_classes=3"], "classes '3' must name"),
    "digits beyond 9": (["--target_classes=8-12"], "10, 11, 12 are not digits"),
    "fewer samples than a batch": (["--train_samples=50"], "train_samples=50 must be a "
                                   "positive multiple of batch_size=100 (whole batches), "
                                   "e.g. 100"),
    "source budget below its batch": (["--mode=frozen", "--source_samples=50"],
                                      "source_samples=50 must be a positive multiple of "
                                      "source_batch_size=100"),
    "evaluation between batches": (["--eval_every=150"], "eval_every=150 must be a positive "
                                   "multiple of batch_size=100 (whole batches), e.g. 100 or "
                                   "200"),
    "NaN rate": (["--lr=nan"], "--lr=nan: 'nan' is not a finite number"),
    "infinite rate": (["--lr=inf"], "--lr=inf: 'inf' is not a finite number"),
    "infinite source rate": (["--mode=frozen", "--source_lr=inf"], "'inf' is not a finite"),
    "NaN rate scale": (["--mode=finetune", "--transferred_lr_scale=nan"], "'nan' is not a"),
    "NaN dropout": (["--dropout=0,nan"], "--dropout=0,nan: 'nan' is not a finite number"),
    "NaN p": (["--p=nan"], "--p=nan: 'nan' is not a finite number"),
    "NaN checkpoint interval": (["--checkpoint_seconds=nan"], "--checkpoint_seconds=nan must "
                                "be 0 (after every evaluation) or a finite number of seconds"),
    "infinite checkpoint interval": (["--checkpoint_seconds=inf"], "or a finite number"),
    "seed beyond int64": (["--seed=99999999999999999999"], "seed=99999999999999999999 is "
                          "outside 0..9223372036854775807"),
    "negative seed": (["--seed=-1"], "seed=-1 is outside 0.."),
    "shard index beyond the shards": (["--num_shards=2", "--shard_index=5"],
                                      "--shard_index=5 is outside 0..1"),
    "negative shard index": (["--num_shards=2", "--shard_index=-1"],
                             "--shard_index=-1 is outside 0..1"),
    "empty log root": (["--logdir="], "--logdir is empty; name the log root"),
    "no workers": (["--jobs=0"], "--jobs=0 must be at least 1 (or auto)"),
    "workers not a number": (["--jobs=two"], "--jobs=two: not a number of worker processes"),
    "no threads": (["--threads=0"], "--threads=0"),
}


def run_all(commands):
    """{name: CompletedProcess} of (name, run function, args, kwargs) run at once."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(function, *args, **kwargs)
                   for name, function, args, kwargs in commands}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def flag_cases(tmp_path_factory):
    """Each case run in an empty directory of its own (the log root L would go there)."""
    env = {**os.environ, "PYTHONPATH": REPO}
    cwds = {name: tmp_path_factory.mktemp("case") for name in FLAG_CASES}
    outs = run_all((name, run_main, (*M, *flags), {"cwd": cwds[name], "env": env})
                   for name, (flags, _) in FLAG_CASES.items())
    return {name: (outs[name], cwds[name]) for name in FLAG_CASES}


@pytest.mark.parametrize("name", FLAG_CASES)
def test_flag_case_is_one_line_before_anything_is_written(flag_cases, name):
    out, cwd = flag_cases[name]
    assert FLAG_CASES[name][1] in error_line(out)
    assert len(out.stderr.splitlines()) == 1 and out.stdout == ""
    assert os.listdir(cwd) == []  # no log root, nor runs in the working directory


def test_only_a_setting_given_gets_a_note():
    """--mode=source leaves --p at its flag default, which is not Config's: no note for it
    unless it was given."""
    axes = {"mode": ["source"], "p": [0.005, 0.1], "seed": [0]}
    assert main.ignored_settings(axes, given=set()) == []
    assert main.ignored_settings(axes, given={"p"}) == ["p"]


def idx_dir(path, train, test):
    """An IDX directory of the shipped MNIST's images chosen by the masks `train`, `test`
    (each cut to its first images, so that it is written in a moment)."""
    mnist = data.load_mnist()
    path.mkdir()
    chosen = {"x_train": mnist.x_train[train][:3000], "y_train": mnist.y_train[train][:3000],
              "x_test": mnist.x_test[test][:500], "y_test": mnist.y_test[test][:500]}
    for key, stem, _ in data.IDX_FILES:
        write_idx(path / stem, chosen[key])
    return str(path)


def limit_file_size():
    """A disk that fills up, for a subprocess: files stop growing at 1 MiB (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_data_without_a_class_of_the_task(tmp_path, mnist):
    no69train = idx_dir(tmp_path / "no69train", mnist.y_train < 6, slice(None))
    out = run_main(*M, f"--data={no69train}", f"--logdir={tmp_path / 'L'}")
    assert error_line(out) == (
        "error: the data has no training images of digits 6-9 (task: digits 6-9); choose "
        "classes it holds (--source_classes, --target_classes) or other --data")
    assert not (tmp_path / "L").exists()  # refused before the log root was made
    # The same check, in the process, for a source task and for a test split.
    no69 = data.load_data(no69train)
    with pytest.raises(data.DataError, match="no training images of digits 6-9"):
        data.source_task(no69, (6, 7, 8, 9))
    no69test = data.load_data(idx_dir(tmp_path / "no69test", slice(None), mnist.y_test < 6))
    with pytest.raises(data.DataError, match="no test images of digit 9 "):
        data.target_task(no69test, 0.1, (0, 9))


@pytest.mark.parametrize("checkpoint_seconds", [0, 1000])
def test_a_full_disk_leaves_the_run_unfinished(tmp_path, checkpoint_seconds):
    """The first checkpoint (0) or the final weights (1000) do not fit: one line, and the run
    is left to be resumed, without a result.json."""
    config = {**TINY, "train_samples": 200}
    out = run_main(*flags_of(config), "--mode=scratch", "--dropout=0",
                   f"--checkpoint_seconds={checkpoint_seconds}", f"--logdir={tmp_path}",
                   preexec_fn=limit_file_size)
    line = error_line(out)
    assert line.startswith(f"error: {run_name('scratch', **config)} could not write to ")
    assert "File too large" in line and "function_node" not in line
    assert line.endswith("free space or fix the log root, then run the same command to resume")
    assert len(out.stderr.splitlines()) == 1
    assert glob.glob(str(tmp_path / "*" / "config.json"))
    assert not glob.glob(str(tmp_path / "*" / "result.json"))


def export(logdir, out):
    return run_module("tltransfer.export", f"--logdir={logdir}", f"--out={out}")


def record_start(path, tag, step):
    """The offset in an event file of the record of `tag` at `step`: a TFRecord is its length
    (8 bytes), a CRC (4), the event, a CRC (4)."""
    raw, offset = open(path, "rb").read(), 0
    while offset < len(raw):
        length = struct.unpack("<Q", raw[offset:offset + 8])[0]
        event = tf.compat.v1.Event.FromString(raw[offset + 12:offset + 12 + length])
        if event.step == step and any(v.tag == tag for v in event.summary.value):
            return offset
        offset += 16 + length
    raise AssertionError(f"no {tag} at step {step} in {path}")


def damaged_roots(tiny_study, tmp_path):
    """{case: log root}: copies of a complete frozen run and its source net, each damaged."""
    frozen = run_name("frozen", **TINY)
    roots = {}
    for case in ("events cut", "result cut", "history cut", "config garbled", "out a directory",
                 "another root inside"):
        root = tmp_path / case.replace(" ", "_")
        root.mkdir()
        copy_tiny_source(tiny_study, root)
        shutil.copytree(os.path.join(tiny_study[0], frozen), root / frozen)
        (root / "studies.jsonl").write_text(json.dumps(
            {"argv": ["main.py", "--mode=frozen"], "status": "trained",
             "runs": [frozen]}) + "\n")
        roots[case] = root
    shutil.copytree(roots["result cut"], roots["another root inside"] / "smoke")
    events, = glob.glob(str(roots["events cut"] / frozen / "events.out.tfevents.*"))
    os.truncate(events, record_start(events, "test/accuracy", 300) + 20)
    result = roots["result cut"] / frozen / "result.json"
    result.write_text(result.read_text()[:200])
    with open(roots["history cut"] / "studies.jsonl", "a") as f:
        f.write('{"argv": ["main.py", "--p=0.1"], "sta')
    (roots["config garbled"] / frozen / "config.json").write_text("{garbage")
    (roots["out a directory"] / "out").mkdir()
    return roots, frozen


def test_damaged_log_roots(tiny_study, tmp_path):
    roots, frozen = damaged_roots(tiny_study, tmp_path)
    nested = roots["another root inside"]
    outs = run_all([("another root inside", export, (nested, nested / "r.csv"), {}),
                    ("main", run_main, ("--mode=frozen", "--dropout=0", *flags_of(TINY),
                                        f"--logdir={nested}"), {})])
    # An event file cut short would move the run's final accuracy to an earlier step. (The
    # command turns an ExportError into its one line: tests/test_export.py.)
    with pytest.raises(export_module.ExportError) as refused:
        export_module.export(str(roots["events cut"]), str(tmp_path / "cut" / "r.csv"))
    assert str(refused.value) == (
        f"{roots['events cut'] / frozen}: its event files lack the evaluation at step 300 that "
        "result.json holds (1 of 3 missing): they were cut short or damaged; delete that run "
        "directory and run the tltransfer.main command again to retrain it")
    assert not (tmp_path / "cut").exists()
    # A result.json cut short is an unfinished run: left out (main trains it again).
    out = roots["result cut"] / "out" / "r.csv"
    assert export_module.export(str(roots["result cut"]), str(out))[2] == [frozen]
    assert frozen not in out.read_text() and run_name("source", **TINY) in out.read_text()
    # A history line cut short by a kill, a config.json garbled by hand: noted, left out.
    for case, what in (("history cut", "studies.jsonl line 2 is not a command's record"),
                       ("config garbled", f"{frozen}/config.json is unreadable")):
        notes = []
        export_module.export(str(roots[case]), str(roots[case] / "out" / "r.csv"), notes.append)
        assert [note for note in notes if what in note], notes
        meta = json.loads((roots[case] / "out" / "r_meta.json").read_text())
        assert meta["commands"] == ["python -m tltransfer.main --mode=frozen"]
    # An --out that is a directory: refused before any of the three files is written.
    out = roots["out a directory"] / "out"
    with pytest.raises(export_module.ExportError) as refused:
        export_module.export(str(roots["out a directory"]), str(out))
    assert str(refused.value) == (f"--out={out} is a directory; give the CSV file to write, "
                                  f"e.g. --out={out / 'results.csv'}")
    assert os.listdir(out) == [] and glob.glob(f"{out}*") == [str(out)]
    # Another study's log root inside this one: the CSV holds 2 runs, TensorBoard would show 4.
    for out in (outs["another root inside"], outs["main"]):
        assert out.returncode == 0, out.stderr
        notes = [line for line in out.stdout.splitlines() if line.startswith("note:")]
        assert notes == [f"note: {nested / 'smoke'} holds 2 TensorBoard runs of another study "
                         f"(a log root inside this one?); `tensorboard --logdir={nested}` mixes "
                         f"them with this study's runs: move it out of {nested} to see the "
                         "study alone"]
