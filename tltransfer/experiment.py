"""One configuration -> one run directory (see rundir): the source net's weights first, the
net, its training (loop.train_and_evaluate with its actions), result.json last.
"""

import dataclasses
import os
import time

import tensorflow as tf

from tltransfer import data, loop, model, train
from tltransfer.config import CHECKPOINT_SECONDS, MODE_TABLE
from tltransfer.loop import RunFailed
from tltransfer.rundir import (CHECKPOINTS, FAILED_FILE, RESULT_FILE, WEIGHTS, RunError, claim,
                               completed_result, describe, failure, prepare_run_dir,
                               read_scalars, remove_tree, write_json_atomic)
from tltransfer.session import Session


def run(config, logdir, log=print, mnist=None, wait=True, checkpoint_seconds=CHECKPOINT_SECONDS,
        progress=None, session=None):
    """Makes sure the run of `config` is complete under `logdir`; returns its result dict.

    A complete run is returned as it is. frozen/finetune runs first make sure their source net
    exists (training it if needed). `log` receives what happens, in lines; `progress`, when
    given, a Progress after every evaluation (of this run and of a source net trained for it)
    instead of the progress lines. When another process holds
    the run (or its source net), waits for it, or raises Busy if not `wait`. Raises RunFailed
    if the run (or its source) diverged, now or before. A checkpoint is written after the
    first evaluation once `checkpoint_seconds` have passed since the last one (0: after every
    evaluation), and after the next one when the session's stop event is set. `session` (the
    process's Session; a new one if not given) compiles, keeps tasks and tells it to stop.
    """
    config = config.canonical()  # the same run writes the same config.json and result.json
    session = session if session is not None else Session()
    with claim(logdir, config.name, wait, log):
        result = completed_result(config, logdir)  # read once, under the claim
        if result is not None:
            return result
        reason = failure(config, logdir)
        if reason is not None:
            raise RunFailed(reason)
        mnist = mnist if mnist is not None else data.load_data(config.data)
        task = session.task(config, mnist)
        source = None
        if MODE_TABLE[config.mode].copies:
            source = config.source()
            try:
                run(source, logdir, log, mnist, wait, checkpoint_seconds, progress, session)
            except RunFailed as e:
                raise RunFailed(f"its source net {source.name} failed: {e}") from e
        run_dir = os.path.join(logdir, config.name)
        resume = prepare_run_dir(run_dir, config, mnist.sha256)
        net = model.CNN(task.num_classes, config.seed, config.dropout)
        if source is not None:
            weights = os.path.join(logdir, source.name, WEIGHTS)
            try:
                train.copy_layers(net, weights, config.transfer_layers)
            except ValueError as e:
                raise RunError(f"cannot read the source net's weights {weights} ({e}); delete "
                               "its run directory so that it is trained again") from e
        try:
            curve = fit(config, task, net, run_dir, session, log, resume, checkpoint_seconds,
                        progress)
        except (OSError, tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError,
                tf.errors.PermissionDeniedError, tf.errors.UnknownError) as e:
            # A write that fails mid-run (a full disk or quota, a file-size limit (EFBIG), a
            # vanished mount): what is on disk is the last checkpoint, which a later run
            # resumes from.
            raise write_failed(config, run_dir, e) from e
        except RunFailed as e:
            write_json_atomic(os.path.join(run_dir, FAILED_FILE),
                              {"config": dataclasses.asdict(config), "reason": str(e)})
            remove_tree(os.path.join(run_dir, CHECKPOINTS))
            log(f"{config.name}: FAILED: {e}")
            raise

        result = {
            "config": dataclasses.asdict(config), "run": config.name,
            "n_train": len(task.y_train), "n_test": len(task.y_test),
            "source_run": source.name if source else None,
            "threads": session.threads,
            "test_accuracy": curve["test_accuracy"][-1], "test_loss": curve["test_loss"][-1],
            "curve": curve}
        try:  # only writes: any error of theirs is the disk's, and leaves no result.json
            tf.train.Checkpoint(model=net).write(os.path.join(run_dir, WEIGHTS))
            write_json_atomic(os.path.join(run_dir, RESULT_FILE), result)
        except (OSError, tf.errors.OpError) as e:
            raise write_failed(config, run_dir, e) from e
        remove_tree(os.path.join(run_dir, CHECKPOINTS))
        return result


def write_failed(config, run_dir, e):
    """The RunError of a write that failed in a run (a full disk, a vanished mount)."""
    return RunError(f"{config.name} could not write to {run_dir} ({describe(e)}); free space "
                    "or fix the log root, then run the same command to resume")


def fit(config, task, net, run_dir, session, log, resume=False,
        checkpoint_seconds=CHECKPOINT_SECONDS, progress=None):
    """Trains `net` on `task` for the config's budget; returns the test curve.

    Summaries after every evaluation, a checkpoint (what the Trainer checkpoints) once
    `checkpoint_seconds` of training have passed, and progress: a Progress to `progress` after
    every evaluation, or, without it, a line to `log` every tenth of the run. With `resume`,
    training goes on from the latest checkpoint, and summaries already in the events are not
    written again.
    """
    train_x, train_y, test_x, test_y = task.tensors
    trained, extract_seconds = train.trained_module(config, net), 0.0
    if trained is not net:  # frozen features: computed once, the classifier trains on them
        started = time.perf_counter()
        train_x = session.extract_features(net.features, train_x)
        test_x = session.extract_features(net.features, test_x)
        extract_seconds = time.perf_counter() - started
    trainer = train.start(session, config, net, trained)
    checkpoints = loop.Checkpoints(trainer.checkpoint(), os.path.join(run_dir, CHECKPOINTS),
                                   checkpoint_seconds)
    curve, written = loop.Curve(), 0
    if resume:
        checkpoints.restore()
    samples = int(trainer.step.numpy()) * config.batch_size
    if resume:
        curve, written = resumed_curve(run_dir, samples)
        log(f"{config.name}: resuming at {samples} samples")
    else:
        log(f"{config.name}: training on {len(task.y_train)} images of {task.name}, "
            f"{config.samples} samples")
    windows = iter(data.index_windows(len(task.y_train), config.batch_size,
                                      config.eval_every // config.batch_size, config.seed,
                                      start_step=samples // config.batch_size))
    writer = loop.Summaries(run_dir, config.mode, written, None if resume else (config, task))
    reporter = loop.Reporter(config.name, config.samples, samples,
                             max(config.samples // 10, config.eval_every), progress, log,
                             extract_seconds)
    loop.train_and_evaluate(
        trainer, (train_x, train_y, test_x, test_y), windows, samples, config.samples,
        train_actions=[loop.divergence_guard],
        eval_actions=[writer, checkpoints,
                      loop.StopCheck(session.stop, checkpoints, config.samples, config.name),
                      curve, reporter])
    trainer.export(trained)
    return curve.curve


def resumed_curve(run_dir, samples):
    """(loop.Curve, last step written) of a resumed run: its test curve up to `samples` as its
    summaries hold it."""
    scalars = read_scalars(run_dir)
    accuracy, loss = scalars.get("test/accuracy", {}), scalars.get("test/loss", {})
    steps = [s for s in sorted(accuracy) if s <= samples]
    return loop.Curve({"step": steps, "test_accuracy": [accuracy[s] for s in steps],
                       "test_loss": [loss[s] for s in steps]}), max(accuracy, default=0)
