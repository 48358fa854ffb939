"""One configuration -> one run directory: transfer weights, train, summaries, result.json.

A run directory holds `config.json`, the TensorBoard events (step = training samples
processed), the final weights (`weights/final.*`, a tf.train.Checkpoint of the model) and
`result.json`, written last and atomically: it alone says that a run is complete.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import threading
import time

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tltransfer import data, model, train
from tltransfer.config import (CHECKPOINT_SECONDS, IRRELEVANT, TRANSFER_MODES, Config,
                               parse_classes)

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
WEIGHTS = os.path.join("weights", "final")
CHECKPOINTS = "checkpoints"
FAILED_FILE = "failed.json"
CLAIMS = ".claims"
# A window's mean cross-entropy above this (the true class given probability e^-1000) or NaN
# means training has diverged; healthy runs start near ln(classes) and go down.
DIVERGED_LOSS = 1000.0
# Set it (main does on Ctrl-C or SIGTERM) and a run stops right after its next checkpoint.
STOP = threading.Event()


class RunError(Exception):
    """A run cannot start or finish; the message says why and what to do."""


class RunFailed(Exception):
    """Training diverged; the run is recorded as failed and the study goes on."""


class Busy(Exception):
    """Another process is training this run right now."""


class Interrupted(Exception):
    """STOP was set; the run stopped after writing a checkpoint."""


# All run-directory I/O goes through tf.io.gfile, so a log root may be anything TensorFlow can
# write to (a local path, gs://, s3:// with the TF plugins, hdfs://, ram:// in the tests).
gfile = tf.io.gfile


def is_local(path):
    return "://" not in path


def read_json(path):
    """The parsed file, or None if it is missing or not valid JSON (an unfinished write)."""
    try:
        with gfile.GFile(path) as f:
            return json.load(f)
    except (OSError, ValueError, tf.errors.OpError):
        return None


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def write_text_atomic(path, text):
    """Writes a temporary file and renames it over `path`: readers see all of it or nothing."""
    tmp = f"{path}.tmp"
    if is_local(path):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # so that a power cut cannot leave the rename without data
    else:
        with gfile.GFile(tmp, "w") as f:
            f.write(text)
    gfile.rename(tmp, path, overwrite=True)


def remove_tree(path):
    if gfile.exists(path):
        gfile.rmtree(path)


def differences(stored, config):
    """Relevant config fields whose stored value differs; a field added since counts at its
    default."""
    stored = {**dataclasses.asdict(Config()), **stored}
    ignored = IRRELEVANT.get(config.mode, ())
    return sorted(k for k, v in dataclasses.asdict(config).items()
                  if k not in ignored and stored.get(k) != v)


def completed_result(config, logdir):
    """The run's result if it is complete and was made with this config; None if not done.

    Raises RunError if a complete run under the same name was made with other settings.
    """
    run_dir = os.path.join(logdir, config.name)
    result = read_json(os.path.join(run_dir, RESULT_FILE))
    if not isinstance(result, dict) or "config" not in result:
        return None
    different = differences(result["config"], config)
    if different:
        raise RunError(
            f"{run_dir} holds a finished run with other settings ({', '.join(different)}); "
            "use another --logdir or delete that run directory")
    return result


def prepare_run_dir(run_dir, config, data_sha256):
    """True if `run_dir` holds a checkpoint of an unfinished run of `config` to resume.

    Otherwise leaves it empty but for a fresh config.json: leftovers of an unfinished run of
    ours are removed, anything else is refused.
    """
    stored = read_json(os.path.join(run_dir, CONFIG_FILE))
    if isinstance(stored, dict) and isinstance(stored.get("config"), dict):
        if (not differences(stored["config"], config)
                and tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS))):
            return True
        remove_tree(run_dir)
    elif gfile.isdir(run_dir) and gfile.listdir(run_dir):
        if not gfile.exists(os.path.join(run_dir, CONFIG_FILE)):
            raise RunError(f"{run_dir} exists and is not a tltransfer run directory; "
                           "move it away or choose another --logdir")
        remove_tree(run_dir)  # our config.json, cut short by a kill
    try:
        gfile.makedirs(run_dir)
        write_json_atomic(os.path.join(run_dir, CONFIG_FILE), {
            "config": dataclasses.asdict(config), "run": config.name,
            "versions": {"tensorflow": tf.__version__, "numpy": np.__version__},
            "data_sha256": data_sha256})
    except (OSError, tf.errors.OpError) as e:
        raise RunError(f"cannot write run directory {run_dir}: {getattr(e, 'strerror', e)}; "
                       "choose a writable --logdir") from e
    return False


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


def failure(config, logdir):
    """Why this config's run failed, if it did (a failed run stays failed until deleted)."""
    failed = read_json(os.path.join(logdir, config.name, FAILED_FILE))
    if isinstance(failed, dict) and not differences(failed.get("config", {}), config):
        return failed.get("reason", "unknown reason")
    return None


@contextlib.contextmanager
def claim(logdir, name, wait, log):
    """Holds the run's claim: one process at a time trains a run under a log root.

    An flock on a file in <logdir>/.claims: the kernel releases it when its holder exits, however
    it exits, so a claim never outlives a killed process. Object stores have no locks: on a
    remote log root, split the work with shards instead of running duplicate processes.
    """
    if not is_local(logdir):
        yield
        return
    claims = os.path.join(logdir, CLAIMS)
    try:
        os.makedirs(claims, exist_ok=True)
        handle = open(os.path.join(claims, name), "a")
    except OSError as e:
        raise RunError(f"cannot write to --logdir={logdir} ({e.strerror}); "
                       "choose a writable directory") from e
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise Busy(name) from None
            log(f"{name}: waiting for the other process that is training it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


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


def read_scalars(run_dir):
    """{tag: {step: value}} of the scalar summaries in a run's event files.

    TF2 summaries are tensors. A record cut short by a kill ends its file; a step written
    twice keeps its last value.
    """
    scalars = {}
    for path in sorted(gfile.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "scalars":
                        scalars.setdefault(value.tag, {})[event.step] = float(
                            tf.make_ndarray(value.tensor))
        except tf.errors.DataLossError:
            pass
    return scalars


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
