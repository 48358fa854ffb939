"""One configuration -> one run directory (see rundir): the source net's weights, fit (the
controller around train.Trainer: summaries, checkpoints, Progress events), result.json last.
"""

import dataclasses
import os
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tltransfer import data, model, train
from tltransfer.config import CHECKPOINT_SECONDS, TRANSFER_MODES
from tltransfer.session import Session
from tltransfer.rundir import (CHECKPOINTS, FAILED_FILE, RESULT_FILE, WEIGHTS, RunError, claim,
                               completed_result, failure, prepare_run_dir, read_scalars,
                               remove_tree, write_json_atomic)

# A window's mean cross-entropy above this (the true class given probability e^-1000) or NaN
# means training has diverged; healthy runs start near ln(classes) and go down.
DIVERGED_LOSS = 1000.0


class RunFailed(Exception):
    """Training diverged; the run is recorded as failed and the study goes on."""


class Interrupted(Exception):
    """The session's stop event was set; the run stopped after writing a checkpoint."""


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
    """What TensorBoard's HParams dashboard shows: every field of the Config, and the run's
    number of training images."""
    return {**dataclasses.asdict(config), "n_train": len(task.y_train)}


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a run reports after each of its evaluations."""
    run: str              # config.name
    samples: int          # training samples done so far
    total: int            # the run's budget (config.samples)
    test_accuracy: float  # at this evaluation
    test_loss: float
    # Seconds this process spent in this run's compiled training windows and evaluations (each
    # timed until its result is read), since it started or resumed the run: no start-up, no
    # summaries or checkpoints. Tracing is not in it either: a Trainer traces when it is built,
    # before the first window. (The first call of a new graph still pays TensorFlow's one-off
    # graph optimisation, some tens of milliseconds, which cannot be told apart.)
    train_seconds: float
    start_samples: int    # samples at which this process started or resumed the run
    extract_seconds: float = 0.0  # computing a frozen run's features, once, before training

    @property
    def samples_per_second(self):
        return (self.samples - self.start_samples) / max(self.train_seconds, 1e-9)


def progress_line(event):
    """The human form of a Progress event: one wording for every caller."""
    return (f"{event.run}: {event.samples:>7}/{event.total} samples  test accuracy "
            f"{100 * event.test_accuracy:6.2f}%  {event.samples_per_second:,.0f} samples/s")


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
    result = completed_result(config, logdir)
    if result is not None:
        return result
    session = session if session is not None else Session()
    mnist = mnist if mnist is not None else data.load_data(config.data)
    task = session.task(config, mnist)
    source_dir = None
    if config.mode in TRANSFER_MODES:
        source_config = config.source()
        try:
            run(source_config, logdir, log, mnist, wait, checkpoint_seconds, progress, session)
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
            curve = fit(config, task, net, run_dir, session, log, resume, checkpoint_seconds,
                        progress)
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


def fit(config, task, net, run_dir, session, log, resume=False,
        checkpoint_seconds=CHECKPOINT_SECONDS, progress=None):
    """Trains `net` on `task` for the config's budget; returns the test curve.

    The controller around the compiled calls: summaries after every evaluation, a checkpoint
    (what the Trainer checkpoints) once `checkpoint_seconds` of training have passed, and
    progress: a Progress to `progress` after every evaluation, or, without it, a line to `log`
    every tenth of the run. With `resume`, training goes on from the latest checkpoint, and
    summaries already in the events are not written again.
    """
    train_x, train_y, test_x, test_y = task.tensors
    trained, extract_seconds = train.trained_module(config, net), 0.0
    if trained is not net:  # frozen features: computed once, the classifier trains on them
        started = time.perf_counter()
        train_x = session.extract_features(net.features, train_x)
        test_x = session.extract_features(net.features, test_x)
        extract_seconds = time.perf_counter() - started
    trainer = train.start(session, config, net, trained)
    checkpoint = trainer.checkpoint()
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
    start_samples, train_seconds, next_report = samples, 0.0, 0
    saved = time.perf_counter()
    if not resume:
        log(f"{config.name}: training on {len(task.y_train)} images of {task.name}, "
            f"{config.samples} samples")
    try:  # the writer is closed however training ends: done, failed or interrupted
        with writer.as_default():
            if not resume:
                hp.hparams(hparams(config, task), trial_id=config.name)
            while samples < config.samples:
                steps = min(steps_per_window, (config.samples - samples) // config.batch_size)
                window = next(windows)[:steps]
                started = time.perf_counter()
                train_loss, train_acc = (float(v) for v in trainer.train_window(train_x, train_y,
                                                                                window))
                samples += steps * config.batch_size
                if not train_loss < DIVERGED_LOSS:  # NaN fails the comparison too
                    raise RunFailed(f"training diverged (mean loss {train_loss:.3g} in the window "
                                    f"ending at {samples} samples); a smaller --lr may help")
                test_acc, test_loss = (float(v) for v in trainer.evaluate(test_x, test_y))
                train_seconds += time.perf_counter() - started
                if samples > written:
                    for tag, value in (("test/accuracy", test_acc), ("test/loss", test_loss),
                                       ("train/accuracy", train_acc), ("train/loss", train_loss)):
                        tf.summary.scalar(tag, value, step=samples)
                    writer.flush()
                stopping = session.stop.is_set() and samples < config.samples
                if stopping or time.perf_counter() - saved >= checkpoint_seconds:
                    manager.save(checkpoint_number=samples)
                    saved = time.perf_counter()
                if stopping:
                    raise Interrupted(f"{config.name} stopped at {samples} samples, after a "
                                      "checkpoint")
                curve["step"].append(samples)
                curve["test_accuracy"].append(test_acc)
                curve["test_loss"].append(test_loss)
                event = Progress(config.name, samples, config.samples, test_acc, test_loss,
                                 train_seconds, start_samples, extract_seconds)
                if progress is not None:
                    progress(event)
                elif samples >= next_report or samples == config.samples:
                    log(progress_line(event))
                    next_report = samples + max(config.samples // 10, config.eval_every)

    finally:
        writer.close()
    trainer.export(trained)
    return curve
