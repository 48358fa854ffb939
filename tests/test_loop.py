"""The outer loop and each of its actions, alone."""

import math
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import loop, rundir
from tltransfer.config import Config
from tltransfer.rundir import RunError


def evaluation(samples, test_accuracy=0.5, seconds=1.0):
    return loop.Evaluation(samples, train_loss=0.7, train_accuracy=0.6,
                           test_accuracy=test_accuracy, test_loss=0.9, train_seconds=seconds)


class Counting:
    """A stand-in Trainer whose window loss is the number of steps it was given."""

    def __init__(self):
        self.windows = []

    def train_window(self, x, y, window):
        self.windows.append(window.numpy())
        return tf.constant(float(window.shape[0])), tf.constant(1.0)

    def evaluate(self, x, y):
        return tf.constant(0.25 * len(self.windows)), tf.constant(1.0)


def test_the_loop_trains_to_the_budget_and_calls_every_action_in_order():
    trainer, calls = Counting(), []
    windows = iter([tf.reshape(tf.range(6 * i, 6 * i + 6), [3, 2]) for i in range(5)])

    class Closing:
        def __call__(self, evaluation):
            calls.append(("eval", evaluation.samples, evaluation.test_accuracy))

        def close(self):
            calls.append("closed")
    loop.train_and_evaluate(trainer, (None,) * 4, windows, samples=2, budget=12,
                            train_actions=[lambda s, loss, acc: calls.append(("train", s, loss))],
                            eval_actions=[Closing()])
    # 2 -> 8 -> 12: the last window is cut to the 2 steps the budget has left.
    assert [w.shape for w in trainer.windows] == [(3, 2), (2, 2)]
    assert calls == [("train", 8, 3.0), ("eval", 8, 0.25), ("train", 12, 2.0),
                     ("eval", 12, 0.5), "closed"]


def test_actions_are_closed_when_an_action_stops_the_run():
    closed = []

    class Closing:
        def __call__(self, evaluation):
            raise loop.Interrupted("stop")

        def close(self):
            closed.append(True)
    windows = iter([tf.zeros([1, 2], tf.int32)] * 3)
    with pytest.raises(loop.Interrupted):
        loop.train_and_evaluate(Counting(), (None,) * 4, windows, 0, 6, eval_actions=[Closing()])
    assert closed == [True]


@pytest.mark.parametrize("loss", [math.nan, 1000.0, 1e30])
def test_the_divergence_guard_fails_a_diverged_window(loss):
    with pytest.raises(loop.RunFailed, match="at 300 samples"):
        loop.divergence_guard(300, loss, 0.1)


def test_the_divergence_guard_lets_a_healthy_window_pass():
    assert loop.divergence_guard(300, 2.3, 0.1) is None


def test_summaries_write_each_new_evaluation_once_and_the_hparams(tmp_path):
    task = type("Task", (), {"y_train": [0] * 100})
    summaries = loop.Summaries(str(tmp_path), "scratch", written=100,
                               hparams=(Config(mode="scratch"), task))
    for samples in (100, 200, 300):  # 100 is in the events already (a resumed run)
        summaries(evaluation(samples, test_accuracy=samples / 1000))
    summaries.close()
    scalars = rundir.read_scalars(str(tmp_path))
    assert sorted(scalars) == ["test/accuracy", "test/loss", "train/accuracy", "train/loss"]
    assert scalars["test/accuracy"] == {200: pytest.approx(0.2), 300: pytest.approx(0.3)}
    assert scalars["train/loss"] == {200: pytest.approx(0.7), 300: pytest.approx(0.7)}
    events = [tf.compat.v1.Event.FromString(r.numpy()) for path in tf.io.gfile.glob(
        os.path.join(tmp_path, "events.*")) for r in tf.data.TFRecordDataset(path)]
    tags = [v.tag for e in events for v in e.summary.value
            if v.metadata.plugin_data.plugin_name == "hparams"]
    assert sorted(tags) == ["_hparams_/experiment", "_hparams_/session_start_info"]


def test_a_source_nets_summaries_have_tags_of_their_own(tmp_path):
    summaries = loop.Summaries(str(tmp_path), "source")
    summaries(evaluation(100, test_accuracy=0.5))
    summaries.close()
    events = [tf.compat.v1.Event.FromString(r.numpy()) for path in tf.io.gfile.glob(
        os.path.join(tmp_path, "events.*")) for r in tf.data.TFRecordDataset(path)]
    assert sorted(v.tag for e in events for v in e.summary.value) == [
        "source/test/accuracy", "source/test/loss", "source/train/accuracy",
        "source/train/loss"]


def checkpoints(tmp_path, seconds):
    step = tf.Variable(0, dtype=tf.int64)
    return step, loop.Checkpoints(tf.train.Checkpoint(step=step), str(tmp_path), seconds)


def test_checkpoints_follow_the_clock(tmp_path):
    _, every = checkpoints(tmp_path / "every", 0)
    for samples in (100, 200):
        every(evaluation(samples))
    assert every.manager.checkpoints[-1].endswith("ckpt-200")
    _, hourly = checkpoints(tmp_path / "hourly", 3600)
    hourly(evaluation(100))
    assert hourly.manager.latest_checkpoint is None


def test_checkpoints_restore_and_refuse_an_unreadable_one(tmp_path):
    step, saver = checkpoints(tmp_path, 0)
    step.assign(7)
    saver.save(700)
    saver.save(700)  # already saved there: once is enough
    assert len(saver.manager.checkpoints) == 1
    step.assign(0)
    saver.restore()
    assert int(step.numpy()) == 7
    with open(saver.manager.latest_checkpoint + ".index", "wb") as f:
        f.write(b"damaged")
    with pytest.raises(RunError, match="unreadable"):
        saver.restore()


def test_the_stop_check_checkpoints_then_interrupts_before_the_end(tmp_path):
    stop = threading.Event()
    _, saver = checkpoints(tmp_path, 3600)
    check = loop.StopCheck(stop, saver, budget=500, name="run")
    check(evaluation(300))  # not set: nothing
    assert saver.manager.latest_checkpoint is None
    stop.set()
    check(evaluation(500))  # set, but the run is done: it finishes
    with pytest.raises(loop.Interrupted, match="run stopped at 400 samples"):
        check(evaluation(400))
    assert saver.manager.latest_checkpoint.endswith("ckpt-400")


def test_the_curve_extends_a_resumed_one():
    curve = loop.Curve({"step": [100], "test_accuracy": [0.1], "test_loss": [2.0]})
    curve(evaluation(200, test_accuracy=0.2))
    assert curve.curve == {"step": [100, 200], "test_accuracy": [0.1, 0.2],
                           "test_loss": [2.0, 0.9]}


def test_the_reporter_sends_every_event_or_logs_a_line_every_tenth():
    events = []
    loop.Reporter("run", 1000, 0, 300, progress=events.append, extract_seconds=0.5)(
        evaluation(100, seconds=2.0))
    assert events == [loop.Progress("run", 100, 1000, 0.5, 0.9, 2.0, 0, 0.5)]
    assert events[0].samples_per_second == 50
    lines = []
    reporter = loop.Reporter("run", 1000, 0, 300, log=lines.append)
    for samples in range(100, 1001, 100):
        reporter(evaluation(samples))
    assert [line.split()[1] for line in lines] == ["100/1000", "400/1000", "700/1000",
                                                   "1000/1000"]
    assert np.all(["test accuracy  50.00%" in line for line in lines])
