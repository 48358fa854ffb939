"""Sweeps: every setting of Config is a grid axis, each distinct run its own directory."""

import dataclasses
import json
import os

import pytest

from conftest import TINY, copy_tiny_source, error_line, flags_of, run_main
from tltransfer import config as config_lib
from tltransfer.config import Config

# The lab's names must not change, or existing log roots and docs/study would be retrained.
LAB_NAMES = {Config(mode="source"): "source_drop0_seed0",
             Config(mode="source", dropout=0.5, seed=2): "source_drop0.5_seed2",
             Config(mode="scratch", p=0.005): "scratch_p0.005_drop0_seed0",
             Config(mode="frozen", p=0.01, dropout=0.5, seed=1): "frozen_p0.01_drop0.5_seed1",
             Config(mode="finetune", p=1.0): "finetune_p1_drop0_seed0",
             Config(mode="frozen", p=0.1, transfer_layers=3): "frozen_p0.1_drop0_seed0_depth3",
             Config(mode="finetune", p=0.1, transferred_lr_scale=0.1):
                 "finetune_p0.1_drop0_seed0_lrx0.1",
             Config(mode="scratch", p=0.1, precision="bfloat16"):
                 "scratch_p0.1_drop0_seed0_bfloat16",
             Config(mode="frozen", p=0.1, source_classes="0-4", target_classes="5-9",
                    subset="random"): "frozen_p0.1_drop0_seed0_from0-4_to5-9_random"}
# A value other than the default for every field that is not a lab axis.
OTHER = {"source_classes": "0-4", "target_classes": "5-9", "subset": "random",
         "transfer_layers": 1, "transferred_lr_scale": 0.5, "precision": "bfloat16",
         "lr": 0.002, "lr_schedule": "constant", "batch_size": 50, "train_samples": 30_000,
         "eval_every": 500, "source_lr": 0.003, "source_lr_schedule": "constant",
         "source_batch_size": 50, "source_samples": 30_000, "data": "/data/fashion"}


@pytest.mark.parametrize("config, name", LAB_NAMES.items())
def test_the_lab_runs_keep_their_names(config, name):
    assert config.canonical().name == name


def test_other_covers_every_setting():
    assert set(OTHER) == {f.name for f in dataclasses.fields(Config)} - set(
        config_lib.LAB_AXES)


@pytest.mark.parametrize("mode", config_lib.MODES)
@pytest.mark.parametrize("field", sorted(OTHER))
def test_a_setting_shows_in_the_name_exactly_when_the_run_depends_on_it(mode, field):
    base = Config(mode=mode, p=0.1)
    changed = Config(**{**dataclasses.asdict(base), field: OTHER[field]}).canonical()
    if mode in {f.name: f for f in dataclasses.fields(Config)}[field].metadata["modes"]:
        assert changed.name != base.canonical().name and changed != base.canonical()
        assert changed.name.startswith(base.canonical().name + "_")
    else:  # the same run: the same config and directory
        assert changed == base.canonical() and changed.name == base.canonical().name


def test_names_are_readable_and_exact():
    config = Config(mode="frozen", p=0.005, lr=0.002, batch_size=50, train_samples=30_000)
    assert config.name == "frozen_p0.005_drop0_seed0_lr0.002_bs50_n30000"
    assert Config(mode="scratch", lr=0.0012345678).name.endswith("_lr0.0012345678")
    assert Config(mode="scratch", lr=0.0012345678).name != Config(mode="scratch",
                                                                 lr=0.0012345679).name


def test_target_only_settings_keep_the_source_net():
    lab = Config(mode="frozen", p=0.005).source()
    for field in ("lr", "lr_schedule", "batch_size", "train_samples", "p", "subset",
                  "target_classes", "transfer_layers"):
        swept = Config(**{"mode": "finetune", "p": 0.005, **{field: {**OTHER, "p": 0.1}[field]}})
        assert swept.source() == lab, field
    assert lab == Config(mode="source").canonical()
    own = Config(mode="frozen", source_lr=0.003, source_batch_size=50).source()
    assert own == Config(mode="source", lr=0.003, batch_size=50)
    assert own.name == "source_drop0_seed0_lr0.003_bs50"


# Tiny budgets: one target image set, two settings swept, a frozen run per cell, all from the
# session's tiny source net.
SWEEP = ["--mode=frozen", "--dropout=0", *flags_of(TINY)]


def completed(logdir):
    return {name: os.stat(os.path.join(logdir, name, "result.json")).st_mtime_ns
            for name in os.listdir(logdir) if os.path.exists(
                os.path.join(logdir, name, "result.json"))}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_study):
    logdir = str(tmp_path_factory.mktemp("sweep"))
    copy_tiny_source(tiny_study, logdir)
    out = run_main(*SWEEP, "--lr=0.001,0.002", "--batch_size=50,100", f"--logdir={logdir}")
    assert out.returncode == 0, out.stderr
    return logdir, out.stdout


def test_a_sweep_lands_in_one_log_root_each_value_its_own_run(sweep):
    logdir, stdout = sweep
    cells = {(lr, batch): Config(mode="frozen", lr=lr, batch_size=batch, **TINY)
             for lr in (0.001, 0.002) for batch in (50, 100)}
    assert cells[0.002, 50].name.startswith(
        "frozen_p0.005_drop0_seed0_lr0.002_bs50_n300_eval100_srcn200_data-")
    source = cells[0.001, 100].source()
    assert set(completed(logdir)) == {source.name} | {c.name for c in cells.values()}
    assert "5 runs: 1 already complete, 4 to train" in stdout
    losses = set()
    for (lr, batch), config in cells.items():
        result = json.load(open(os.path.join(logdir, config.name, "result.json")))
        assert result["source_run"] == source.name  # one source net for all of them
        assert (result["config"]["lr"], result["config"]["batch_size"]) == (lr, batch)
        losses.add(tuple(result["curve"]["test_loss"]))
    assert len(losses) == 4  # four different computations


def test_calling_the_sweep_again_trains_nothing(sweep):
    logdir, _ = sweep
    before = completed(logdir)
    out = run_main(*SWEEP, "--lr=0.001,0.002", "--batch_size=50,100", f"--logdir={logdir}")
    assert out.returncode == 0, out.stderr
    assert "5 runs: 5 already complete, 0 to train" in out.stdout
    assert completed(logdir) == before


def test_defaults_given_explicitly_reuse_the_default_runs(sweep):
    logdir, _ = sweep
    before = completed(logdir)
    out = run_main(*SWEEP, "--lr=0.001", "--batch_size=100", "--lr_schedule=cosine",
                   "--source_lr=0.0010", "--transfer_layers=2", f"--logdir={logdir}")
    assert out.returncode == 0, out.stderr
    assert "2 runs: 2 already complete, 0 to train" in out.stdout
    assert completed(logdir) == before


@pytest.mark.parametrize("flag, message", [
    ("--lr=0.001,abc", "--lr=0.001,abc: 'abc' is not a number"),
    ("--batch_size=50,1.5", "--batch_size=50,1.5: '1.5' is not an integer"),
    ("--lr=0.001,,0.002", "an empty value; separate values with ','"),
    ("--lr=0.001,-0.5", "lr=-0.5 must be positive"),
    ("--batch_size=100,64", "train_samples=300 must be a positive multiple of batch_size=64"),
    ("--lr_schedule=cosine,linear", "lr_schedule 'linear' is unknown"),
    ("--target_classes=6-9/7", "target_classes: classes '7' must name at least two"),
    ("--precision=float32,float16", "precision 'float16' is unknown"),
])
def test_a_bad_value_inside_a_list_is_one_line_and_writes_nothing(tmp_path, flag, message):
    logdir = tmp_path / "logs"
    out = run_main(*SWEEP, flag, f"--logdir={logdir}")
    assert message in error_line(out) and len(out.stderr.splitlines()) == 1, out.stderr
    assert not logdir.exists()
