"""The Session: what a process keeps from run to run, each cache keyed by all it depends on."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import data, model, train
from tltransfer.config import Config
from tltransfer.session import Session


def test_a_session_keeps_its_latest_source_and_target_task(mnist):
    session = Session()
    config = Config(mode="scratch", p=0.01, seed=0)
    task = session.task(config, mnist)
    images = task.tensors[0]
    assert session.task(config.source(), mnist) is not task
    # The other seeds and modes of a prefix subset train on the same task, tensors included.
    for same in (dataclasses.replace(config, seed=1), dataclasses.replace(config, mode="frozen")):
        assert session.task(same, mnist) is task and task.tensors[0] is images
    np.testing.assert_array_equal(images.numpy()[..., 0], task.x_train)
    other = session.task(dataclasses.replace(config, p=0.005), mnist)
    assert len(other.y_train) == 100 and len(task.y_train) == 200
    random = [session.task(dataclasses.replace(config, subset="random", seed=seed), mnist)
              for seed in (0, 1)]
    assert not np.array_equal(random[0].x_train, random[1].x_train)
    assert Session().task(config, mnist) is not task  # each session keeps its own


def test_a_kept_task_is_keyed_by_what_builds_it(mnist):
    """The key is the spec the task is built from, so equal keys give equal tasks."""
    config = Config(mode="scratch", p=0.01, subset="random", seed=4)
    spec = data.TaskSpec.of(config)
    built = spec.build(mnist)
    expected = data.target_task(mnist, 0.01, (6, 7, 8, 9), "random", 4)
    np.testing.assert_array_equal(built.x_train, expected.x_train)
    assert data.TaskSpec.of(dataclasses.replace(config, target_classes="5-9")) != spec
    assert data.TaskSpec.of(config.source()) == data.TaskSpec((0, 1, 2, 3, 4, 5))


def trainer(session, dropout=0.0, classes=4, mode="scratch", slow=False, schedule="constant",
            dtype="float32"):
    net = model.CNN(classes, seed=0, dropout=dropout)
    slow_variables = train.copied_variables(net) if slow else ()
    return session.trainer(net, train.trainable_variables(net, mode), schedule, dtype,
                           slow_variables)


@pytest.mark.parametrize("change", [
    {"dropout": 0.5}, {"classes": 6}, {"mode": "frozen"}, {"slow": True},
    {"schedule": "cosine"}, {"dtype": "bfloat16"}])
def test_trainers_are_keyed_by_everything_their_graphs_bake_in(change):
    session = Session()
    plain = trainer(session)
    assert trainer(session) is plain
    other = trainer(session, **change)
    assert other is not plain and trainer(session, **change) is other


def test_the_evaluation_chunk_is_a_trainer_setting_and_part_of_the_key():
    net = model.CNN(4, seed=0)
    variables = net.trainable_variables
    small, large = Session(eval_chunk=100), Session(eval_chunk=1000)
    assert small.trainer(net, variables).eval_chunk == 100
    assert large.trainer(net, variables).eval_chunk == 1000
    keys = {train.graph_key(net, variables, "constant", "float32", (), chunk)
            for chunk in (100, 1000)}
    assert len(keys) == 2
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (250, 28, 28, 1), np.uint8))
    labels = tf.constant(np.arange(250) % 4, tf.int32)
    a = small.trainer(net, variables).evaluate(images, labels)
    b = large.trainer(net, variables).evaluate(images, labels)
    assert float(a[0]) == float(b[0])  # the same net, the same predictions
    assert float(a[1]) == pytest.approx(float(b[1]), rel=1e-6)


def test_features_are_extracted_in_chunks_by_one_compiled_function():
    session = Session(eval_chunk=64)
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (150, 28, 28, 1), np.uint8))
    first, second = model.CNN(4, seed=0), model.CNN(4, seed=1)
    features = session.extract_features(first.features, images)
    np.testing.assert_allclose(features.numpy(), first.features(images).numpy(), rtol=1e-5,
                               atol=1e-6)
    traced = session.traces()
    other = session.extract_features(second.features, images)  # same structure, new values
    np.testing.assert_allclose(other.numpy(), second.features(images).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert session.traces() == traced == 1


def test_each_session_has_its_own_stop_event():
    first, second = Session(), Session()
    first.stop.set()
    assert first.stop.is_set() and not second.stop.is_set()
