import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import experiment, loop, rundir, summaries
from tltransfer.config import Config
from conftest import quiet, read_events


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory, mnist):
    logdir = str(tmp_path_factory.mktemp("e2e"))
    config = Config(mode="scratch", p=0.01, seed=1, train_samples=3000)
    events = []
    result = experiment.run(config, logdir, log=quiet, mnist=mnist,
                            progress=events.append)
    return logdir, config, result, events


def test_end_to_end_run_writes_result_and_curve(scratch_run):
    logdir, config, result, events = scratch_run
    run_dir = os.path.join(logdir, config.name)
    with open(os.path.join(run_dir, "result.json")) as f:
        assert json.load(f) == result
    assert result["n_train"] == 200 and result["n_test"] == 3969
    accuracy = read_events(run_dir, "test/accuracy")[0]
    assert sorted(accuracy) == [1000, 2000, 3000]
    assert accuracy[3000] == pytest.approx(result["test_accuracy"])
    assert result["curve"]["step"] == [1000, 2000, 3000]
    assert result["test_accuracy"] > 0.6  # chance is 0.25
    assert sorted(read_events(run_dir, "train/loss")[0]) == [1000, 2000, 3000]


def test_progress_is_an_event_after_every_evaluation(scratch_run):
    _, config, result, events = scratch_run
    assert [e.samples for e in events] == [1000, 2000, 3000]
    assert {(e.run, e.total, e.start_samples) for e in events} == {(config.name, 3000, 0)}
    assert [e.test_accuracy for e in events] == result["curve"]["test_accuracy"]
    assert [e.test_loss for e in events] == result["curve"]["test_loss"]
    seconds = [e.train_seconds for e in events]
    assert 0 < seconds[0] < seconds[1] < seconds[2]
    assert events[-1].samples_per_second == pytest.approx(3000 / seconds[2])


def test_progress_line_is_the_one_human_wording():
    event = loop.Progress(run="scratch_p0.1_drop0_seed0", samples=2000, total=6000,
                                test_accuracy=0.98765, test_loss=0.1, train_seconds=0.5,
                                start_samples=1000)
    assert loop.progress_line(event) == (
        "scratch_p0.1_drop0_seed0:    2000/6000 samples  test accuracy  98.77%  2,000 samples/s")


def test_without_a_progress_callback_fit_logs_a_line_every_tenth(tmp_path, mnist):
    config = Config(mode="scratch", p=0.005, train_samples=300, eval_every=100)
    lines = []
    experiment.run(config, str(tmp_path), log=lines.append, mnist=mnist)
    assert lines[0] == (f"{config.name}: training on 100 images of digits 6-9, p=0.005, "
                        "300 samples")
    assert [line.split()[1] for line in lines[1:]] == ["100/300", "200/300", "300/300"]


def test_hparams_are_every_config_field_and_the_training_images():
    config = Config(mode="frozen", p=0.01)
    task = type("Task", (), {"y_train": [0] * 200})
    shown = {param.display_name: param.name for param in summaries.HPARAMS}
    assert list(shown) == [*(f.name for f in dataclasses.fields(Config)), "n_train"]
    assert sorted(shown.values()) == list(shown.values())  # TensorBoard sorts them by name
    values = summaries.hparams(config, task)
    assert {name: values[key] for name, key in shown.items()} == {
        **dataclasses.asdict(config), "n_train": 200}


def test_hparams_are_written(scratch_run):
    logdir, config, _, _ = scratch_run
    run_dir = os.path.join(logdir, config.name)
    plugin_tags = set()
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    plugin_tags.add(value.tag)
                    content = value.metadata.plugin_data.content
    assert plugin_tags == {"_hparams_/experiment", "_hparams_/session_start_info"}
    for key in (b"mode", b"scratch", b"n_train", b"dropout", b"seed"):
        assert key in content


def test_complete_run_is_reused_not_retrained(scratch_run, mnist):
    logdir, config, result, _ = scratch_run
    result_path = os.path.join(logdir, config.name, "result.json")
    before = os.stat(result_path).st_mtime_ns
    lines = []
    assert experiment.run(config, logdir, log=lines.append, mnist=mnist) == result
    assert os.stat(result_path).st_mtime_ns == before and lines == []


def test_finished_run_with_other_settings_is_refused(tmp_path, mnist):
    # Other settings get another name; a clash needs a directory written otherwise (by another
    # version, say) under this run's name.
    config = Config(mode="scratch", p=0.005, train_samples=100, eval_every=100)
    assert Config(**{**config.__dict__, "lr": 0.01}).name != config.name
    (tmp_path / config.name).mkdir()
    (tmp_path / config.name / "result.json").write_text(
        json.dumps({"config": {**dataclasses.asdict(config), "lr": 0.01}}))
    with pytest.raises(rundir.RunError, match="other settings.*lr"):
        experiment.run(config, str(tmp_path), mnist=mnist)


def test_foreign_directory_is_not_overwritten(tmp_path, mnist):
    config = Config(mode="scratch", p=0.005, train_samples=100, eval_every=100)
    foreign = tmp_path / config.name
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(rundir.RunError, match="not a tltransfer run"):
        experiment.run(config, str(tmp_path), mnist=mnist)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_unfinished_run_is_redone(tmp_path, mnist):
    config = Config(mode="scratch", p=0.005, train_samples=200, eval_every=100)
    run_dir = tmp_path / config.name
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    (run_dir / "result.json").write_text('{"config": ')  # a write cut short
    result = experiment.run(config, str(tmp_path), log=quiet, mnist=mnist)
    assert result["curve"]["step"] == [100, 200]
    assert json.loads((run_dir / "result.json").read_text()) == result


@pytest.mark.parametrize("field, value, message", [
    ("mode", "fozen", "mode 'fozen' is unknown"),
    ("p", 0.0, "outside"),
    ("dropout", 1.0, "dropout"),
    ("train_samples", 150, "multiple of batch_size"),
    ("eval_every", 250, "multiple of batch_size"),
    ("train_samples", -100, "positive"),
])
def test_config_refuses_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        Config(**{field: value})


def test_settings_a_mode_does_not_use_do_not_invalidate_its_runs(scratch_run, mnist):
    logdir, config, result, _ = scratch_run
    other_source_budget = Config(**{**config.__dict__, "source_samples": 500})
    assert rundir.completed_result(other_source_budget, logdir) == result


def test_source_config_is_shared_across_p_and_mode():
    a = Config(mode="frozen", p=0.1, seed=2, dropout=0.5).source()
    b = Config(mode="finetune", p=1.0, seed=2, dropout=0.5, train_samples=900).source()
    assert a == b and a.name == "source_drop0.5_seed2"
    assert np.isclose(a.p, 1.0)


def test_other_classes_get_their_own_names_and_output_width(tmp_path, mnist):
    config = Config(mode="frozen", p=0.01, source_classes="0-4",
                    target_classes="5,6,7,8,9", subset="random", train_samples=200,
                    source_samples=200, eval_every=100)
    assert config.target_classes == "5-9"  # canonical
    assert config.name == "frozen_p0.01_drop0_seed0_from0-4_to5-9_random_n200_eval100_srcn200"
    assert config.source().name == "source_drop0_seed0_from0-4_eval100_srcn200"
    assert Config().name == "finetune_p1_drop0_seed0"  # defaults keep the lab's names
    result = experiment.run(config, str(tmp_path), log=quiet, mnist=mnist)
    assert result["n_train"] == 200 and result["n_test"] == int(np.sum(mnist.y_test >= 5))
    path = os.path.join(tmp_path, config.name, rundir.WEIGHTS)
    assert tf.train.load_variable(path, "model/classifier/logits/w/.ATTRIBUTES/VARIABLE_VALUE"
                                  ).shape == (128, 5)
    with pytest.raises(ValueError, match="target_classes"):
        Config(target_classes="7")


def test_canonical_configs_of_one_run_compare_equal():
    depths = [Config(mode="scratch", p=0.1, transfer_layers=n).canonical()
              for n in (1, 2, 3)]
    assert len(set(depths)) == 1 and depths[0].name == "scratch_p0.1_drop0_seed0"
    frozen = {Config(mode="frozen", p=0.1, transfer_layers=n,
                     transferred_lr_scale=s).canonical()
              for n in (1, 3) for s in (0.1, 1.0)}
    assert sorted(c.name for c in frozen) == ["frozen_p0.1_drop0_seed0_depth1",
                                              "frozen_p0.1_drop0_seed0_depth3"]
    assert Config(mode="finetune", transfer_layers=3).source() == \
        Config(mode="frozen", p=0.01).source()
