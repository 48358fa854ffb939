import gc
import os

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import data, experiment, model, rundir, train
from tltransfer.config import Config
from tltransfer.session import Session
from conftest import TINY, quiet, run_name

SOURCE = run_name("source", **TINY)


def test_trainable_variables_follow_module_structure():
    net = model.CNN(4, seed=0)
    frozen = train.trainable_variables(net, "frozen")
    assert {id(v) for v in frozen} == {id(v) for v in net.classifier.trainable_variables}
    for mode in ("source", "scratch", "finetune"):
        assert len(train.trainable_variables(net, mode)) == 8
    with pytest.raises(ValueError, match="unknown mode"):
        train.trainable_variables(net, "fozen")


def weights(run_dir):
    """name -> array of the final weights saved in a run directory."""
    path = f"{run_dir}/{rundir.WEIGHTS}"
    return {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
            if name.startswith("model/")}


def split_weights(w):
    conv = {k: v for k, v in w.items() if "/features/" in k}
    dense = {k: v for k, v in w.items() if "/classifier/" in k}
    assert len(conv) == 4 and len(dense) == 4
    return conv, dense


def test_frozen_keeps_source_conv_bits_and_finetune_changes_them(tiny_study):
    logdir, _ = tiny_study
    source_conv, _ = split_weights(weights(f"{logdir}/{SOURCE}"))
    frozen_conv, frozen_dense = split_weights(weights(f"{logdir}/{run_name('frozen', **TINY)}"))
    tuned_conv, tuned_dense = split_weights(weights(f"{logdir}/{run_name('finetune', **TINY)}"))
    untrained = model.CNN(4, seed=0)
    for name, value in source_conv.items():
        np.testing.assert_array_equal(frozen_conv[name], value)
        assert not np.array_equal(tuned_conv[name], value), name
    dense = untrained.classifier
    initial = {"model/classifier/hidden/w/.ATTRIBUTES/VARIABLE_VALUE": dense.hidden.w,
               "model/classifier/logits/w/.ATTRIBUTES/VARIABLE_VALUE": dense.logits.w}
    for name, value in initial.items():
        assert not np.array_equal(frozen_dense[name], value.numpy()), name
        assert not np.array_equal(tuned_dense[name], value.numpy()), name


def test_transfer_starts_from_source_conv_weights(tiny_study):
    logdir, _ = tiny_study
    source_conv, _ = split_weights(weights(f"{logdir}/{SOURCE}"))
    net = model.CNN(4, seed=5)
    train.copy_layers(net, f"{logdir}/{SOURCE}/{rundir.WEIGHTS}")
    for layer in ("conv1", "conv2"):
        for var in ("w", "b"):
            saved = source_conv[f"model/features/{layer}/{var}/.ATTRIBUTES/VARIABLE_VALUE"]
            np.testing.assert_array_equal(getattr(getattr(net.features, layer), var).numpy(), saved)
    fresh = model.CNN(4, seed=5)
    np.testing.assert_array_equal(net.classifier.hidden.w.numpy(),
                                  fresh.classifier.hidden.w.numpy())


def test_cached_features_path_matches_the_plain_frozen_path(mnist):
    """Training the classifier on precomputed features == training the CNN with frozen convs."""
    task = data.target_task(mnist, 0.005)
    x, y = data.images_tensor(task.x_train), tf.constant(task.y_train)
    windows = [w for w, _ in zip(data.index_windows(100, 50, 2, seed=0), range(3))]
    plain, cached = model.CNN(4, seed=0, dropout=0.5), model.CNN(4, seed=0, dropout=0.5)
    plain_trainer = train.Trainer(plain, train.trainable_variables(plain, "frozen"))
    cached_trainer = train.Trainer(cached.classifier, cached.classifier.trainable_variables)
    for trainer in (plain_trainer, cached_trainer):
        trainer.start(seed=0, learning_rate=1e-3)
    features = Session().extract_features(cached.features, x)
    for w in windows:
        plain_trainer.train_window(x, y, w)
        cached_trainer.train_window(features, y, w)
    for a, b in zip(plain.trainable_variables, cached.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.array_equal(plain.classifier.hidden.w.numpy(),
                              model.CNN(4, seed=0).classifier.hidden.w.numpy())


def test_evaluate_counts_correct_predictions():
    class Fixed(tf.Module):
        def __call__(self, x, training=False, seed=None):
            return tf.one_hot(tf.cast(x[:, 0], tf.int32), 3)
    labels = tf.constant(np.arange(2500) % 3, tf.int32)
    guesses = tf.constant(np.where(np.arange(2500) < 2000, np.arange(2500) % 3, 0)[:, None],
                          tf.float32)
    Fixed.input_shape, Fixed.input_dtype = (1,), tf.float32
    trainer = train.Trainer(Fixed(), [tf.Variable(0.0)])
    accuracy, loss = trainer.evaluate(guesses, labels)
    expected = (2000 + np.sum(np.arange(2000, 2500) % 3 == 0)) / 2500
    assert accuracy.numpy() == pytest.approx(expected)
    assert loss.numpy() > 0


def test_chunked_evaluation_matches_one_pass_over_the_test_set(mnist):
    task = data.target_task(mnist, 0.005)
    x, y = data.images_tensor(task.x_test), task.y_test
    assert len(y) % train.EVAL_CHUNK  # several chunks, the last one partial
    net = model.CNN(4, seed=3)
    accuracy, loss = train.Trainer(net, net.trainable_variables).evaluate(x, tf.constant(y))
    logits = net(x, training=False).numpy().astype(np.float64)
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    assert accuracy.numpy() == pytest.approx(np.mean(logits.argmax(1) == y), abs=1e-7)
    assert loss.numpy() == pytest.approx(-log_softmax[np.arange(len(y)), y].mean(), rel=1e-5)


def test_bfloat16_compute_trains_float32_variables(mnist):
    task = data.target_task(mnist, 0.01)
    x, y = data.images_tensor(task.x_train), tf.constant(task.y_train)
    net = model.CNN(4, seed=0)
    trainer = train.Trainer(net, net.trainable_variables, compute_dtype="bfloat16")
    trainer.start(seed=0, learning_rate=1e-3)
    windows = iter(data.index_windows(200, 100, 4, seed=0))
    first_loss, _ = trainer.train_window(x, y, next(windows))
    for _ in range(4):
        loss, accuracy = trainer.train_window(x, y, next(windows))
    assert float(loss) < 0.6 * float(first_loss) and float(accuracy) > 0.8
    assert all(v.dtype == tf.float32 for v in net.trainable_variables)
    test_accuracy, _ = trainer.evaluate(data.images_tensor(task.x_test[:500]),
                                        tf.constant(task.y_test[:500]))
    assert float(test_accuracy) > 0.7


@pytest.mark.parametrize("depth, frozen_layers", [(1, ["conv1"]), (2, ["conv1", "conv2"]),
                                                  (3, ["conv1", "conv2", "hidden"])])
def test_transfer_depth_copies_and_freezes_the_first_layers(tiny_study, tmp_path, tiny_mnist, depth,
                                                            frozen_layers):
    logdir, _ = tiny_study
    source_dir = f"{logdir}/{SOURCE}"
    os.symlink(source_dir, tmp_path / SOURCE)
    config = Config(mode="frozen", transfer_layers=depth, **TINY)
    assert len(train.trainable_variables(model.CNN(4, 0), "frozen", depth)) == 2 * (4 - depth)
    experiment.run(config, str(tmp_path), log=quiet, mnist=tiny_mnist)
    source, tuned = weights(source_dir), weights(f"{tmp_path}/{config.name}")
    paths = {"conv1": "features/conv1", "conv2": "features/conv2", "hidden": "classifier/hidden",
             "logits": "classifier/logits"}
    for layer, path in paths.items():
        key = f"model/{path}/w/.ATTRIBUTES/VARIABLE_VALUE"
        if layer in frozen_layers:
            np.testing.assert_array_equal(tuned[key], source[key])
        else:
            assert tuned[key].shape != source[key].shape or not np.array_equal(
                tuned[key], source[key]), layer


def test_transferred_lr_scale_slows_only_the_copied_layers(tiny_study, tmp_path, tiny_mnist):
    logdir, results = tiny_study
    source_dir = f"{logdir}/{SOURCE}"
    os.symlink(source_dir, tmp_path / SOURCE)
    config = Config(mode="finetune", transferred_lr_scale=0.1, **TINY)
    assert config.name.startswith("finetune_p0.005_drop0_seed0_lrx0.1_n300_eval100_srcn200_data-")
    experiment.run(config, str(tmp_path), log=quiet, mnist=tiny_mnist)
    source = weights(source_dir)
    slow = weights(f"{tmp_path}/{config.name}")
    fast = weights(f"{logdir}/{results['finetune']['run']}")
    key = "model/features/conv2/w/.ATTRIBUTES/VARIABLE_VALUE"
    moved_slow = np.abs(slow[key] - source[key]).mean()
    moved_fast = np.abs(fast[key] - source[key]).mean()
    assert 0 < moved_slow < 0.3 * moved_fast


def test_a_second_run_of_the_same_shape_traces_nothing_and_leaves_nothing(tmp_path, tiny_mnist):
    """The process compiles each shape of run once: later runs only load their values, and
    leave nothing behind."""
    settings = {**TINY, "seed": 0}
    first = [Config(mode=mode, **settings) for mode in ("scratch", "frozen", "finetune")]
    session = Session()
    for config in first:
        experiment.run(config, str(tmp_path), log=quiet, mnist=tiny_mnist, session=session)
    traced = session.traces()
    assert traced > 0
    pipelines = data.index_windows.experimental_get_tracing_count()
    # Other seeds, learning rates, budgets and proportions: the same shapes, new sources.
    def again(seed):
        for config in (Config(mode="scratch", **{**settings, "seed": seed, "lr": 0.002}),
                       Config(mode="frozen", **{**settings, "seed": seed, "p": 0.01}),
                       Config(mode="finetune", **{**settings, "seed": seed,
                                                  "train_samples": 500})):
            experiment.run(config, str(tmp_path), log=quiet, mnist=tiny_mnist, session=session)
        gc.collect()
        objects = gc.get_objects()
        return len(objects), sum(isinstance(o, tf.Variable) for o in objects)

    again(1)
    assert session.traces() == traced
    assert data.index_windows.experimental_get_tracing_count() == pipelines
    # Nor does a run leave anything behind: from the third round on (the second adds ~27,000
    # weak references and builtin methods, once, and none after), the process holds as many
    # objects and variables after four more runs, a source net among them, as before them.
    warm = again(2)
    assert again(3) == warm


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_a_reused_trainer_gives_the_bits_of_a_fresh_one(tmp_path, tiny_mnist, schedule):
    """Adam, the step, the seed and the schedule are all reset between runs."""
    settings = {**TINY, "dropout": 0.5, "lr_schedule": schedule}
    config = Config(mode="scratch", **settings)
    fresh = experiment.run(config, str(tmp_path / "fresh"), log=quiet, mnist=tiny_mnist)
    session = Session()
    other = Config(mode="scratch", **{**settings, "seed": 3, "lr": 0.003, "train_samples": 500})
    experiment.run(other, str(tmp_path / "reused"), log=quiet, mnist=tiny_mnist, session=session)
    reused = experiment.run(config, str(tmp_path / "reused"), log=quiet, mnist=tiny_mnist,
                            session=session)
    assert reused == fresh
    a, b = weights(tmp_path / "fresh" / config.name), weights(tmp_path / "reused" / config.name)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
