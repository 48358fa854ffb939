"""One configuration -> one run directory (see rundir): transfer weights, train, summaries,
result.json.
"""

import dataclasses
import os
import threading
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tltransfer import data, model, train
from tltransfer.config import CHECKPOINT_SECONDS, TRANSFER_MODES, parse_classes
from tltransfer.rundir import (CHECKPOINTS, FAILED_FILE, RESULT_FILE, WEIGHTS, RunError, claim,
                               completed_result, failure, prepare_run_dir, read_scalars,
                               remove_tree, write_json_atomic)

# A window's mean cross-entropy above this (the true class given probability e^-1000) or NaN
# means training has diverged; healthy runs start near ln(classes) and go down.
DIVERGED_LOSS = 1000.0
# Set it (main does on Ctrl-C or SIGTERM) and a run stops right after its next checkpoint.
STOP = threading.Event()


class RunFailed(Exception):
    """Training diverged; the run is recorded as failed and the study goes on."""


class Interrupted(Exception):
    """STOP was set; the run stopped after writing a checkpoint."""


def load_task(config, mnist):
    if config.mode == "source":
        return data.source_task(mnist, parse_classes(config.source_classes))
    return data.target_task(mnist, config.p, parse_classes(config.target_classes),
                            config.subset, config.seed)


def copy_layers(target, source_weights, count=2):
    """Restores the first `count` layers of `target` (see CNN.layers) from a saved source CNN.

    The checkpoint is matched by the path of each layer in the module tree, so only those
    layers are read; the rest of `target` keeps its own initialisation.
    """
    convs = {name: getattr(target.features, name) for name in ("conv1", "conv2")[:count]}
    parts = {"features": tf.train.Checkpoint(**convs)}
    if count >= 3:
        parts["classifier"] = tf.train.Checkpoint(hidden=target.classifier.hidden)
    ckpt = tf.train.Checkpoint(model=tf.train.Checkpoint(**parts))
    try:
        ckpt.read(source_weights).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, OSError) as e:
        raise RunError(f"cannot read the source net's weights {source_weights} "
                       f"({type(e).__name__}); delete its run directory so that it is trained "
                       "again") from e


def hparams(config, task):
    return {"mode": config.mode, "p": config.p, "n_train": len(task.y_train),
            "dropout": config.dropout, "seed": config.seed, "lr": config.lr,
            "lr_schedule": config.lr_schedule, "precision": config.precision,
            "source_classes": config.source_classes, "target_classes": config.target_classes,
            "subset": config.subset, "transfer_layers": config.transfer_layers,
            "transferred_lr_scale": config.transferred_lr_scale,
            "batch_size": config.batch_size, "train_samples": config.samples}


def run(config, logdir, log=print, mnist=None, wait=True, checkpoint_seconds=CHECKPOINT_SECONDS):
    """Makes sure the run of `config` is complete under `logdir`; returns its result dict.

    A complete run is returned as it is. frozen/finetune runs first make sure their source net
    exists (training it if needed). `log` receives progress lines. When another process holds
    the run (or its source net), waits for it, or raises Busy if not `wait`. Raises RunFailed
    if the run (or its source) diverged, now or before. A checkpoint is written after the
    first evaluation once `checkpoint_seconds` have passed since the last one (0: after every
    evaluation), and after the next one when STOP is set.
    """
    config = config.canonical()  # the same run writes the same config.json and result.json
    result = completed_result(config, logdir)
    if result is not None:
        return result
    mnist = mnist if mnist is not None else data.load_data(config.data)
    task = load_task(config, mnist)
    source_dir = None
    if config.mode in TRANSFER_MODES:
        source_config = config.source()
        try:
            run(source_config, logdir, log, mnist, wait, checkpoint_seconds)
        except RunFailed as e:
            raise RunFailed(f"its source net {source_config.name} failed: {e}") from e
        source_dir = os.path.join(logdir, source_config.name)

    with claim(logdir, config.name, wait, log):
        result = completed_result(config, logdir)  # another process may have finished it
        if result is not None:
            return result
        reason = failure(config, logdir)
        if reason is not None:
            raise RunFailed(reason)
        run_dir = os.path.join(logdir, config.name)
        resume = prepare_run_dir(run_dir, config, mnist.sha256)
        net = model.CNN(task.num_classes, config.seed, config.dropout)
        if source_dir is not None:
            copy_layers(net, os.path.join(source_dir, WEIGHTS), config.transfer_layers)
        try:
            curve = fit(config, task, net, run_dir, log, resume, checkpoint_seconds)
        except (OSError, tf.errors.ResourceExhaustedError, tf.errors.UnknownError) as e:
            # A write that fails mid-run (a full disk, a vanished mount): what is on disk is
            # the last checkpoint, which a later run resumes from.
            raise RunError(f"{config.name} could not write to {run_dir} ({e}); free space or "
                           "fix the log root, then run the same command to resume") from e
        except RunFailed as e:
            write_json_atomic(os.path.join(run_dir, FAILED_FILE),
                              {"config": dataclasses.asdict(config), "reason": str(e)})
            remove_tree(os.path.join(run_dir, CHECKPOINTS))
            log(f"{config.name}: FAILED: {e}")
            raise

        tf.train.Checkpoint(model=net).write(os.path.join(run_dir, WEIGHTS))
        result = {
            "config": dataclasses.asdict(config), "run": config.name,
            "n_train": len(task.y_train), "n_test": len(task.y_test),
            "source_run": config.source().name if source_dir else None,
            "test_accuracy": curve["test_accuracy"][-1], "test_loss": curve["test_loss"][-1],
            "curve": curve}
        write_json_atomic(os.path.join(run_dir, RESULT_FILE), result)
        remove_tree(os.path.join(run_dir, CHECKPOINTS))
        return result


def learning_rate(config, scale=1.0):
    """Adam's learning rate times `scale`: constant, or cosine-decayed to 0 over the run."""
    if config.lr_schedule == "constant":
        return config.lr * scale
    return tf.keras.optimizers.schedules.CosineDecay(config.lr * scale,
                                                     config.samples // config.batch_size)


def fit(config, task, net, run_dir, log, resume=False, checkpoint_seconds=CHECKPOINT_SECONDS):
    """Trains `net` on `task` for the config's budget; returns the test curve.

    A checkpoint (trained variables, optimizer, step) follows every evaluation, after the
    summaries are flushed; with `resume` training goes on from the latest one, and summaries
    already in the events are not written again.
    """
    train_x, test_x = data.images_tensor(task.x_train), data.images_tensor(task.x_test)
    train_y, test_y = tf.constant(task.y_train), tf.constant(task.y_test)
    variables = train.trainable_variables(net, config.mode, config.transfer_layers)
    trained = net
    if config.mode == "frozen" and config.transfer_layers == 2:
        # The features never change: compute them once and train the classifier on them.
        extract = train.feature_extractor(net.features)
        train_x, test_x = extract(train_x), extract(test_x)
        trained = net.classifier
    copied = ()
    if config.mode == "finetune" and config.transferred_lr_scale != 1:
        copied = [v for layer in net.layers[:config.transfer_layers]
                  for v in layer.trainable_variables]
    trainer = train.Trainer(trained, variables, learning_rate(config), config.seed,
                            compute_dtype=config.precision, slow_variables=copied,
                            slow_learning_rate=learning_rate(config, config.transferred_lr_scale))
    slow = {"copied_optimizer": trainer.optimizers[1]} if len(trainer.optimizers) > 1 else {}
    checkpoint = tf.train.Checkpoint(trained=trained, optimizer=trainer.optimizer,
                                     step=trainer.step, **slow)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, CHECKPOINTS),
                                         max_to_keep=1)
    curve = {"step": [], "test_accuracy": [], "test_loss": []}
    written = 0
    if resume:
        try:
            checkpoint.read(manager.latest_checkpoint).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, OSError) as e:
            raise RunError(f"the checkpoint in {run_dir} is unreadable ({type(e).__name__}); "
                           "delete that run directory to train the run from the start") from e
        scalars = read_scalars(run_dir)
        accuracy, loss = scalars.get("test/accuracy", {}), scalars.get("test/loss", {})
        samples = int(trainer.step.numpy()) * config.batch_size
        curve["step"] = [s for s in sorted(accuracy) if s <= samples]
        curve["test_accuracy"] = [accuracy[s] for s in curve["step"]]
        curve["test_loss"] = [loss[s] for s in curve["step"]]
        written = max(accuracy, default=0)
        log(f"{config.name}: resuming at {samples} samples")
    samples = int(trainer.step.numpy()) * config.batch_size

    steps_per_window = config.eval_every // config.batch_size
    windows = iter(data.index_windows(len(task.y_train), config.batch_size, steps_per_window,
                                      config.seed, start_step=samples // config.batch_size))
    writer = tf.summary.create_file_writer(run_dir)
    start, start_samples, next_report = time.perf_counter(), samples, 0
    saved = start
    if not resume:
        log(f"{config.name}: training on {len(task.y_train)} images of {task.name}, "
            f"{config.samples} samples")
    with writer.as_default():
        if not resume:
            hp.hparams(hparams(config, task), trial_id=config.name)
        while samples < config.samples:
            steps = min(steps_per_window, (config.samples - samples) // config.batch_size)
            train_loss, train_acc = trainer.train_window(train_x, train_y, next(windows)[:steps])
            samples += steps * config.batch_size
            if not float(train_loss) < DIVERGED_LOSS:  # NaN fails the comparison too
                raise RunFailed(f"training diverged (mean loss {float(train_loss):.3g} in the "
                                f"window ending at {samples} samples); a smaller --lr may help")
            test_acc, test_loss = (float(v) for v in trainer.evaluate(test_x, test_y))
            if samples > written:
                for tag, value in (("test/accuracy", test_acc), ("test/loss", test_loss),
                                   ("train/accuracy", float(train_acc)),
                                   ("train/loss", float(train_loss))):
                    tf.summary.scalar(tag, value, step=samples)
                writer.flush()
            stopping = STOP.is_set() and samples < config.samples
            if stopping or time.perf_counter() - saved >= checkpoint_seconds:
                manager.save(checkpoint_number=samples)
                saved = time.perf_counter()
            if stopping:
                raise Interrupted(f"{config.name} stopped at {samples} samples, after a checkpoint")
            curve["step"].append(samples)
            curve["test_accuracy"].append(test_acc)
            curve["test_loss"].append(test_loss)
            if samples >= next_report or samples == config.samples:
                rate = (samples - start_samples) / max(time.perf_counter() - start, 1e-9)
                log(f"{config.name}: {samples:>7}/{config.samples} samples  "
                    f"test accuracy {100 * test_acc:6.2f}%  {rate:,.0f} samples/s")
                next_report = samples + max(config.samples // 10, config.eval_every)
    writer.close()
    return curve
