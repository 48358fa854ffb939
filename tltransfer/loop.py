"""The outer training loop, as Orbit's Controller draws it: `train_and_evaluate` alternates the
Trainer's compiled training windows and evaluations, and hands each result to a list of small
actions (summaries, checkpoints, the divergence guard, the stop check, progress, the curve).
The inner loop, one compiled call per window, is train.Trainer's.
"""

import dataclasses
import time

import tensorflow as tf

from tltransfer import summaries
from tltransfer.rundir import RunError

# A window's mean cross-entropy above this (the true class given probability e^-1000) or NaN
# means training has diverged; healthy runs start near ln(classes) and go down.
DIVERGED_LOSS = 1000.0


class RunFailed(Exception):
    """Training diverged; the run is recorded as failed and the study goes on."""


class Interrupted(Exception):
    """The stop event was set; the run stopped after writing a checkpoint."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What one window of training and the evaluation after it gave."""
    samples: int           # training samples done, the summaries' step
    train_loss: float      # the window's mean
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    # Seconds this process spent in compiled training windows and evaluations (each timed
    # until its result is read) since it started or resumed the run.
    train_seconds: float


def train_and_evaluate(trainer, inputs, windows, samples, budget, train_actions=(),
                       eval_actions=()):
    """Trains from `samples` to `budget` samples, a window of `windows` (an iterator of index
    windows [steps, batch]) at a time, and evaluates after each window.

    `inputs` = (train inputs, train labels, test inputs, test labels). Each of `train_actions`
    is called with the window's (samples, loss, accuracy) before the evaluation, each of
    `eval_actions` with the Evaluation after it, in order; an action stops the run by raising.
    Actions with a `close` method are closed at the end, however the loop ends.
    """
    train_x, train_y, test_x, test_y = inputs
    seconds = 0.0
    try:
        while samples < budget:
            window = next(windows)
            steps = min(int(window.shape[0]), (budget - samples) // int(window.shape[1]))
            started = time.perf_counter()
            loss, accuracy = (float(v) for v in trainer.train_window(train_x, train_y,
                                                                     window[:steps]))
            samples += steps * int(window.shape[1])
            for action in train_actions:
                action(samples, loss, accuracy)
            test_accuracy, test_loss = (float(v) for v in trainer.evaluate(test_x, test_y))
            seconds += time.perf_counter() - started
            evaluation = Evaluation(samples, loss, accuracy, test_accuracy, test_loss, seconds)
            for action in eval_actions:
                action(evaluation)
    finally:
        for action in (*train_actions, *eval_actions):
            if hasattr(action, "close"):
                action.close()


def divergence_guard(samples, loss, accuracy):
    """A train action: raises RunFailed when a window's loss is NaN or beyond DIVERGED_LOSS."""
    if not loss < DIVERGED_LOSS:  # NaN fails the comparison too
        raise RunFailed(f"training diverged (mean loss {loss:.3g} in the window ending at "
                        f"{samples} samples); a smaller --lr may help")


class Summaries:
    """Writes the four scalars of every evaluation past `written` samples (those before are in
    the events already: a resumed run) under the tags of `mode` (see summaries), flushed at
    once so that a killed process loses none; first, when `hparams` = (config, task) is given,
    the run's HParams and the experiment config."""
    FIELDS = {"test/accuracy": "test_accuracy", "test/loss": "test_loss",
              "train/accuracy": "train_accuracy", "train/loss": "train_loss"}

    def __init__(self, run_dir, mode, written=0, hparams=None):
        self.writer = tf.summary.create_file_writer(run_dir)
        self.mode, self.written = mode, written
        if hparams is not None:
            with self.writer.as_default():
                summaries.write_hparams(*hparams)

    def __call__(self, evaluation):
        if evaluation.samples <= self.written:
            return
        with self.writer.as_default():
            summaries.write_scalars(self.mode, evaluation.samples, {
                metric: getattr(evaluation, field) for metric, field in self.FIELDS.items()})
        self.writer.flush()
        self.written = evaluation.samples

    def close(self):
        self.writer.close()


class Checkpoints:
    """Saves what `checkpoint` holds after an evaluation once `seconds` have passed since the
    last save (0: after every evaluation); `save` saves at once."""

    def __init__(self, checkpoint, directory, seconds):
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)
        self.seconds = seconds
        self.saved_at, self.saved = None, time.perf_counter()

    def restore(self):
        """Loads the latest checkpoint; RunError if it cannot be read."""
        try:
            # expect_partial: the manager's save counter is in the file, not in `checkpoint`.
            status = self.checkpoint.read(self.manager.latest_checkpoint).expect_partial()
            status.assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, OSError) as e:
            raise RunError(f"the checkpoint in {self.manager.directory} is unreadable "
                           f"({type(e).__name__}); delete that run directory to train the run "
                           "from the start") from e

    def save(self, samples):
        if self.saved_at != samples:
            self.manager.save(checkpoint_number=samples)
            self.saved_at, self.saved = samples, time.perf_counter()

    def __call__(self, evaluation):
        if time.perf_counter() - self.saved >= self.seconds:
            self.save(evaluation.samples)


class StopCheck:
    """Once `stop` (a threading.Event) is set, checkpoints at the next evaluation before the
    budget's end and raises Interrupted: the run resumes from there."""

    def __init__(self, stop, checkpoints, budget, name):
        self.stop, self.checkpoints, self.budget, self.name = stop, checkpoints, budget, name

    def __call__(self, evaluation):
        if self.stop.is_set() and evaluation.samples < self.budget:
            self.checkpoints.save(evaluation.samples)
            raise Interrupted(f"{self.name} stopped at {evaluation.samples} samples, after a "
                              "checkpoint")


class Curve:
    """The run's test curve: step, test_accuracy and test_loss lists, from `curve` on."""

    def __init__(self, curve=None):
        self.curve = curve or {"step": [], "test_accuracy": [], "test_loss": []}

    def __call__(self, evaluation):
        self.curve["step"].append(evaluation.samples)
        self.curve["test_accuracy"].append(evaluation.test_accuracy)
        self.curve["test_loss"].append(evaluation.test_loss)


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a run reports after each of its evaluations."""
    run: str              # config.name
    samples: int          # training samples done so far
    total: int            # the run's budget (config.samples)
    test_accuracy: float  # at this evaluation
    test_loss: float
    # Evaluation.train_seconds: no start-up, no summaries or checkpoints. Tracing is not in it
    # either: a Trainer traces when it is built, before the first window. (The first call of a
    # new graph still pays TensorFlow's one-off graph optimisation, which cannot be told apart.)
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


class Reporter:
    """Makes each Evaluation a Progress of run `name`: every one goes to `progress` when given;
    without it, a progress line goes to `log` every `every` samples and at the end."""

    def __init__(self, name, budget, start_samples, every, progress=None, log=print,
                 extract_seconds=0.0):
        self.name, self.budget, self.start_samples = name, budget, start_samples
        self.every, self.progress, self.log = every, progress, log
        self.extract_seconds, self.next_line = extract_seconds, 0

    def __call__(self, evaluation):
        event = Progress(self.name, evaluation.samples, self.budget, evaluation.test_accuracy,
                         evaluation.test_loss, evaluation.train_seconds, self.start_samples,
                         self.extract_seconds)
        if self.progress is not None:
            self.progress(event)
        elif evaluation.samples >= self.next_line or evaluation.samples == self.budget:
            self.log(progress_line(event))
            self.next_line = evaluation.samples + self.every
