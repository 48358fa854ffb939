"""What a newcomer meets first: the first screen, flag errors, and the log root's history."""

import json
import os
import re

import pytest

from conftest import TINY, error_line, flags_of, run_main, run_name

# Without --source_samples, which scratch runs do not use (main would note that it is ignored).
SCRATCH = ["--mode=scratch", "--dropout=0",
           *flags_of({k: v for k, v in TINY.items() if k != "source_samples"})]
# Every line tltransfer.main prints for a study that goes well.
OWN_LINE = re.compile("|".join((
    r"",
    r"\d+ runs?: \d+ already complete, \d+ to train under \S+",
    r"\[run \d+/\d+ \d+m\d\ds(, ~\d+m\d\ds left)?\] \S+: .*",
    r"final test accuracy, % \(mean ± std over seeds\)",
    r" +p +dropout +\S.*",  # the summary's header and rows
    r" +[\d.]+ +[\d.]+ +\S.*",
    r"\d+ runs? complete under \S+ after \d+m\d\ds; see them with `tensorboard --logdir=\S+`",
    r"note: --\w+ is ignored: .*",
)))


def test_a_study_prints_only_the_projects_own_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = run_main(*SCRATCH, f"--logdir={tmp_path}", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].startswith("1 run: 0 already complete, 1 to train")
    assert [line for line in lines if not OWN_LINE.fullmatch(line)] == []
    assert lines[-1].startswith("1 run complete under")


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("make_args, message", [
    (lambda d: [f"--flagfile={write(d / 'bad.cfg', '--p=0.1' + chr(10) + '-- broken' + chr(10))}"],
     "Unknown command line flag ' broken' (flags read from"),
    (lambda d: ["--seeds=abc"], "flag --seeds=abc: invalid literal for int()"),
    (lambda d: ["--deterministic=maybe"], "flag --deterministic=maybe: ('Non-boolean argument"),
    (lambda d: ["--nonsense=1"], "Unknown command line flag 'nonsense'"),
    (lambda d: [f"--flagfile={d / 'missing.cfg'}"], "Unable to open flagfile"),
    (lambda d: [f"--flagfile={write(d / 'self.cfg', f'--flagfile={d}/self.cfg' + chr(10))}"],
     "self.cfg includes itself; remove the --flagfile line"),
    (lambda d: [f"--flagfile={write(d / 'a.cfg', f'--flagfile={d}/b.cfg' + chr(10))}",
                f"--flagfile={write(d / 'b.cfg', f'--flagfile={d}/a.cfg' + chr(10))}"],
     "includes itself"),
    (lambda d: ["stray"], "unexpected arguments stray; every setting is a flag"),
])
def test_every_flag_error_is_one_line_and_writes_nothing(tmp_path, make_args, message):
    out = run_main(*make_args(tmp_path), f"--logdir={tmp_path / 'logs'}")
    assert message in error_line(out) and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert not (tmp_path / "logs").exists()


def test_help_still_prints_the_whole_help():
    out = run_main("--help")
    text = out.stdout + out.stderr
    assert "Every setting of a run is a flag" in text
    for flag in ("--mode", "--lr", "--source_lr", "--train_samples", "--target_classes"):
        assert f"{flag}:" in text
    assert len(text.splitlines()) > 60


def test_the_log_roots_history_says_what_each_command_did(tmp_path):
    args = [*SCRATCH, f"--logdir={tmp_path}"]
    assert run_main(*args).returncode == 0
    assert run_main(*args).returncode == 0  # trains nothing
    assert run_main(*args, "--lr=abc").returncode != 0
    # A finished run of seed 1 written with other settings (as by another version): refused.
    clash = run_name("scratch", **{**TINY, "seed": 1})
    os.makedirs(tmp_path / clash)
    stored = {**TINY, "mode": "scratch", "seed": 1, "lr": 0.5}
    (tmp_path / clash / "config.json").write_text(json.dumps({"config": stored}))
    (tmp_path / clash / "result.json").write_text(json.dumps({"config": stored}))
    refused = run_main(*args, "--seed=0,1")
    assert refused.returncode != 0 and "other settings (lr)" in refused.stderr
    entries = [json.loads(line) for line in open(tmp_path / "studies.jsonl")]
    assert [e["status"] for e in entries] == ["trained", "nothing to do", "refused"]
    assert entries[0]["runs"] == [run_name("scratch", **TINY)]
    assert entries[1]["runs"] == entries[2]["runs"] == []
    assert "other settings (lr)" in entries[2]["reason"] and "reason" not in entries[0]
    assert all(f"--logdir={tmp_path}" in e["argv"] for e in entries)


def test_a_refused_command_leaves_no_log_root_behind(tmp_path):
    out = run_main(*SCRATCH, "--p=0.0001", f"--logdir={tmp_path / 'logs'}")
    assert out.returncode != 0 and "no training images" in out.stderr
    assert not (tmp_path / "logs").exists()
