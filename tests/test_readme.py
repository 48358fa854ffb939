"""The README's quick start, run as the README writes it, in a fresh directory."""

import os
import re
import shlex
import shutil
import subprocess
import sys

from conftest import REPO
from tltransfer import rundir
from test_first_contact import OWN_LINE

# The exporter's and the report's own lines.
OWN_TOOL_LINE = re.compile(r"wrote \d+ rows? from \d+ runs? to \S+|wrote \S+ and \d+ other files?")


def quick_start(prefix=".venv/bin/python -m tltransfer."):
    """The commands of the README's quick-start block that start with `prefix`, comments cut."""
    text = open(os.path.join(REPO, "README.md")).read()
    block = text.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [c for c in commands if c.startswith(prefix)]


def flag(command, name):
    return [a.split("=", 1)[1] for a in shlex.split(command) if a.startswith(f"--{name}=")][-1]


def test_the_quick_start_views_its_own_log_root_beside_the_studys():
    def flagfile_logdir(name):
        lines = open(os.path.join(REPO, "flags", name)).read().splitlines()
        return [line.split("=", 1)[1] for line in lines if line.startswith("--logdir=")][-1]
    logdir, study = flagfile_logdir("smoke.cfg"), flagfile_logdir("base.cfg")
    inside = os.path.relpath(os.path.abspath(logdir), os.path.abspath(study))
    assert inside.startswith(".."), f"{logdir} is inside the study's log root {study}"
    assert os.path.relpath(study, logdir).startswith("..")
    export, = quick_start(".venv/bin/python -m tltransfer.export")
    tensorboard, = quick_start(".venv/bin/tensorboard")
    assert flag(export, "logdir") == flag(tensorboard, "logdir") == logdir


def test_the_quick_start_works_as_pasted_and_says_only_its_own_lines(tmp_path):
    commands = quick_start()
    assert [shlex.split(c)[2] for c in commands] == ["tltransfer.main", "tltransfer.export",
                                                      "tltransfer.report"]
    shutil.copytree(os.path.join(REPO, "flags"), tmp_path / "flags")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    for command in commands:
        argv = [sys.executable, *shlex.split(command)[1:]]
        out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, (command, out.stderr)
        assert out.stderr == "", (command, out.stderr)
        foreign = [line for line in out.stdout.splitlines()
                   if not (OWN_LINE.fullmatch(line) or OWN_TOOL_LINE.fullmatch(line))]
        assert foreign == [], command
    report = (tmp_path / "smoke" / "report" / "report.md").read_text()
    assert "frozen" in report and "scratch" in report
    assert rundir.other_runs(str(tmp_path / "smoke" / "logs")) == {}
