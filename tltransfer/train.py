"""How a net trains: which variables, Adam's learning rate, and the compiled training window and
evaluation, traced once per process for each shape of run and reused by every run of it.

A run's own numbers (its initial weights, seed, learning rate and decay steps) reach the
compiled graphs as variables, never as constants baked into them, so the second run of a shape
traces nothing: the process's Session (session.py) keeps a Trainer per shape and
`Trainer.start` loads the run into it.
"""

import copy
import math

import tensorflow as tf

from tltransfer.config import LR_SCHEDULES, MODE_TABLE, MODES
from tltransfer.model import unit_range

EVAL_CHUNK = 512  # test images per forward pass: as fast as 2048, and far less memory


def trainable_variables(model, mode, transfer_layers=2):
    """The variables the optimizer sees, chosen from the module structure, never by name.

    frozen: only the layers after the first `transfer_layers` (copied) ones; with the lab's 2,
    exactly the classifier's variables.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if MODE_TABLE[mode].copies and not MODE_TABLE[mode].trains_copied:
        return tuple(v for layer in model.layers[transfer_layers:]
                     for v in layer.trainable_variables)
    return model.trainable_variables


def copied_variables(model, transfer_layers=2):
    """The variables of the layers a transfer run copies from its source net (its first
    `transfer_layers` layers, see CNN.layers)."""
    return tuple(v for layer in model.layers[:transfer_layers] for v in layer.trainable_variables)


def copy_layers(target, source_weights, count=2):
    """Restores the first `count` layers of `target` (see CNN.layers) from a saved source CNN.

    The checkpoint is matched by the path of each layer in the module tree, so only those
    layers are read; the rest of `target` keeps its own initialisation. Raises ValueError if
    the file cannot be read as such.
    """
    convs = {name: getattr(target.features, name) for name in ("conv1", "conv2")[:count]}
    parts = {"features": tf.train.Checkpoint(**convs)}
    if count >= 3:
        parts["classifier"] = tf.train.Checkpoint(hidden=target.classifier.hidden)
    ckpt = tf.train.Checkpoint(model=tf.train.Checkpoint(**parts))
    try:
        ckpt.read(source_weights).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, OSError) as e:
        raise ValueError(type(e).__name__) from e


def schedule_steps(samples, batch_size):
    """Adam steps of a run: what a cosine schedule decays over."""
    return samples // batch_size


class CosineToZero(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Keras's CosineDecay (alpha 0), with its rate and decay steps in variables, so that a
    graph traced for one run serves another with other values.

    The same ops, but for one: CosineDecay divides the step by its decay steps, a constant,
    which TensorFlow's graph optimiser (constant folding) turns into a multiplication by the
    constant's reciprocal. With a variable there is nothing to fold, so this multiplies by the
    reciprocal itself, and gives the bits the constant gave (checked step by step).
    """

    def __init__(self):
        super().__init__()
        self.rate = tf.Variable(1e-3, dtype=tf.float32, trainable=False, name="lr")
        self.decay_steps = tf.Variable(1.0, dtype=tf.float32, trainable=False,
                                       name="decay_steps")

    def set(self, rate, decay_steps):
        # Assigned from Python numbers, they round to float32 as the constants they replace did.
        self.rate.assign(rate)
        self.decay_steps.assign(decay_steps)

    def __call__(self, step):
        step = tf.minimum(tf.cast(step, tf.float32), self.decay_steps)
        completed = step * tf.math.reciprocal(self.decay_steps)
        decayed = 0.5 * (1.0 + tf.cos(tf.constant(math.pi, tf.float32) * completed))
        return self.rate * decayed


def adam(schedule):
    """(Keras Adam, its CosineToZero or None): Adam's learning rate constant (a variable of
    Adam's own, as when it is given a number) or cosine-decayed to 0 over the run."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"learning-rate schedule {schedule!r} is unknown; choose from "
                         f"{', '.join(LR_SCHEDULES)}")
    if schedule == "cosine":
        cosine = CosineToZero()
        return tf.keras.optimizers.Adam(cosine), cosine
    return tf.keras.optimizers.Adam(1e-3), None


def cross_entropy(logits, labels):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(logits, tf.float32)))


def count_correct(logits, labels):
    predicted = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.reduce_sum(tf.cast(predicted == labels, tf.int32))


class Trainer:
    """Adam on an explicit variable list of `net`, one compiled call per evaluation window.

    `net(inputs, training, seed)` returns logits (in `compute_dtype`); `net.input_shape` and
    `net.input_dtype` describe one input. It is the whole CNN on uint8 images, or only its
    classifier on precomputed float32 features when the features are frozen. Dropout masks are
    a stateless function of (seed, step), so the step counter is all the data position a
    resume needs.

    `slow_variables` (some of `variables`) get an Adam of their own, whose rate `start` sets
    apart: scaling their gradients instead would do nothing, as Adam normalises the scale away.

    The compiled functions are written without AutoGraph and take any number of images: the
    evaluation (in chunks of `eval_chunk` images) is traced once, when the Trainer is built,
    and the training window once per shape of window (steps x batch size; `compile`), so that
    the next run of that shape traces nothing (`traces` counts them). `start` readies the
    Trainer for a new run.

    The window's shape stays static in its graph because TensorFlow's graph optimiser turns
    divisions by a constant (the loss's mean over the batch, in its gradient) into
    multiplications by the constant's reciprocal, which round differently from a division by
    a number known only at run time: static, they give the bits runs gave before this cache.
    """

    def __init__(self, net, variables, schedule="constant", compute_dtype=tf.float32,
                 slow_variables=(), eval_chunk=EVAL_CHUNK):
        self.net = net
        self.eval_chunk = int(eval_chunk)
        # bfloat16 compute keeps float32 variables and optimizer: only activations are cast.
        self.compute_dtype = tf.as_dtype(compute_dtype)
        self.variables = tuple(variables)
        slow = {id(v) for v in slow_variables}
        groups = [[i for i, v in enumerate(self.variables) if id(v) not in slow]]
        if slow:
            groups.append([i for i, v in enumerate(self.variables) if id(v) in slow])
        self._groups = []
        for indices in groups:
            optimizer, cosine = adam(schedule)
            # Slots must exist before a checkpoint restore and outside the compiled function.
            optimizer.build([self.variables[i] for i in indices])
            self._groups.append((optimizer, indices, cosine))
        self.optimizers = tuple(optimizer for optimizer, _, _ in self._groups)
        self.seed = tf.Variable(0, dtype=tf.int64, trainable=False, name="seed")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._inputs = (tf.TensorSpec([None, *net.input_shape], net.input_dtype),
                        tf.TensorSpec([None], tf.int32))
        self._windows = {}  # (steps, batch size) -> compiled training window
        self.evaluate = tf.function(self._evaluate, autograph=False,
                                    input_signature=self._inputs)
        self.evaluate.get_concrete_function()  # traced now: no run's first evaluation pays

    def traces(self):
        """How many times this Trainer's functions were traced."""
        return sum(f.experimental_get_tracing_count()
                   for f in (self.evaluate, *self._windows.values()))

    def compile(self, steps, batch_size):
        """The training window for windows of `steps` batches of `batch_size`, traced on the
        first call for that shape."""
        shape = (int(steps), int(batch_size))
        if shape not in self._windows:
            window = tf.function(self._train_window, autograph=False, input_signature=[
                *self._inputs, tf.TensorSpec(shape, tf.int32)])
            window.get_concrete_function()
            self._windows[shape] = window
        return self._windows[shape]

    def train_window(self, inputs, labels, windows):
        """One step per row of `windows` (int32 [steps, batch] indices into inputs); returns
        the window's mean training loss and accuracy."""
        return self.compile(*windows.shape)(inputs, labels, windows)

    def start(self, seed, learning_rate, decay_steps=None, slow_learning_rate=None,
              weights=None):
        """Readies the Trainer for a new run: Adam starts from zero, the step from 0, at these
        rates (a cosine decays to 0 over `decay_steps` steps), and `net` takes the values of
        `weights` when given (a module of the same structure: the run's freshly initialised or
        copied net)."""
        if decay_steps is None and any(cosine for _, _, cosine in self._groups):
            raise ValueError("a cosine schedule needs decay_steps")
        if weights is not None:
            for target, value in zip(self.net.variables, weights.variables, strict=True):
                target.assign(value)
        rates = (learning_rate, slow_learning_rate)
        for (optimizer, _, cosine), rate in zip(self._groups, rates):
            for variable in optimizer.variables:
                variable.assign(tf.zeros_like(variable))
            if cosine is None:
                optimizer.learning_rate = rate
            else:
                cosine.set(rate, decay_steps)
        self.seed.assign(int(seed))
        self.step.assign(0)

    def export(self, weights):
        """Copies the trained values into `weights` (a module of `net`'s structure)."""
        for target, value in zip(weights.variables, self.net.variables, strict=True):
            target.assign(value)

    def checkpoint(self):
        """What a resume needs: the trained module, Adam's state and the step. (Seed, rate and
        decay steps follow from the run's config.) The layout is the one earlier versions
        wrote, so their checkpoints still resume."""
        slow = {"copied_optimizer": self.optimizers[1]} if len(self.optimizers) > 1 else {}
        return tf.train.Checkpoint(trained=self.net, optimizer=self.optimizers[0],
                                   step=self.step, **slow)

    def _compute(self, inputs):
        # Pixels are scaled in float32 first: bfloat16 activations start from the same values.
        return tf.cast(unit_range(inputs), self.compute_dtype)

    def _train_window(self, inputs, labels, windows):

        def step(i, loss_sum, correct):
            x = tf.gather(inputs, windows[i])
            y = tf.gather(labels, windows[i])
            seed = tf.stack([self.seed, self.step])
            with tf.GradientTape() as tape:
                logits = self.net(self._compute(x), training=True, seed=seed)
                loss = cross_entropy(logits, y)
            grads = tape.gradient(loss, self.variables)
            for optimizer, indices, _ in self._groups:
                optimizer.apply_gradients([(grads[i], self.variables[i]) for i in indices])
            self.step.assign_add(1)
            return i + 1, loss_sum + loss, correct + count_correct(logits, y)

        steps = tf.shape(windows)[0]
        _, loss_sum, correct = tf.while_loop(
            lambda i, loss_sum, correct: i < steps, step,
            (tf.constant(0), tf.constant(0.0), tf.constant(0)))
        return (loss_sum / tf.cast(steps, tf.float32),
                tf.cast(correct, tf.float32) / tf.cast(tf.size(windows), tf.float32))

    def _evaluate(self, inputs, labels):
        """Accuracy and mean loss of the net on all of `inputs`, in chunks."""
        n = tf.shape(inputs)[0]
        chunk_size = self.eval_chunk

        def chunk(start, loss_sum, correct):
            logits = self.net(self._compute(inputs[start:start + chunk_size]), training=False)
            y = labels[start:start + chunk_size]
            loss_sum += tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=tf.cast(logits, tf.float32)))
            return start + chunk_size, loss_sum, correct + count_correct(logits, y)

        _, loss_sum, correct = tf.while_loop(
            lambda start, loss_sum, correct: start < n, chunk,
            (tf.constant(0), tf.constant(0.0), tf.constant(0)))
        # Times the reciprocal, as the graph optimiser made of a division by a static size.
        scale = tf.math.reciprocal(tf.cast(n, tf.float32))
        return tf.cast(correct, tf.float32) * scale, loss_sum * scale


def graph_key(net, variables, schedule, compute_dtype, slow_variables, eval_chunk):
    """Everything a Trainer's graphs bake in: the module's structure (its variables' shapes,
    dropout), which of them train and which are slow, the schedule's kind, the compute dtype
    and the evaluation's chunk. Runs with equal keys can share one Trainer."""
    position = {id(v): i for i, v in enumerate(net.variables)}
    return (type(net).__name__, tuple(tuple(v.shape) for v in net.variables), net.dropout,
            tuple(position[id(v)] for v in variables),
            tuple(sorted(position[id(v)] for v in slow_variables)), schedule,
            tf.as_dtype(compute_dtype).name, int(eval_chunk))


def trainer_of_shape(net, key):
    """A new Trainer for the graph `key` (graph_key) describes, owning a copy of `net`: a run's
    own module only lends its values, in `Trainer.start`, and takes the trained ones back with
    `Trainer.export`."""
    own = copy.deepcopy(net)
    chosen = [own.variables[i] for i in key[3]]
    slow = [own.variables[i] for i in key[4]]
    return Trainer(own, chosen, key[5], key[6], slow, key[7])


class Extractor:
    """`features(images)` for every module of one structure, compiled once: each call loads
    the module's values into the Extractor's own copy and runs it in chunks (memory stays
    bounded), giving float32 [n, d]."""

    def __init__(self, features):
        self.features = copy.deepcopy(features)
        self._compiled = tf.function(self._extract, autograph=False, input_signature=[
            tf.TensorSpec([None, *self.features.input_shape], self.features.input_dtype)])

    def _extract(self, images):
        return self.features(images)

    @staticmethod
    def key(features):
        return tuple(tuple(v.shape) for v in features.variables)

    def __call__(self, features, images, chunk=EVAL_CHUNK):
        for target, value in zip(self.features.variables, features.variables, strict=True):
            target.assign(value)
        n = int(images.shape[0])
        return tf.concat([self._compiled(images[i:i + chunk]) for i in range(0, n, chunk)],
                         axis=0)

    def traces(self):
        return self._compiled.experimental_get_tracing_count()


def trained_module(config, net):
    """What trains in `config`'s run of `net`: `net`, or only its classifier when exactly the
    features are frozen. Those never change, so a run computes them once and the classifier
    trains on them."""
    mode = MODE_TABLE[config.mode]
    if (mode.copies and not mode.trains_copied
            and config.transfer_layers == len(net.layers) - len(net.classifier.layers)):
        return net.classifier
    return net


def start(session, config, net, trained):
    """`session`'s Trainer for `config`'s run of `net`, loaded with that run; `trained` is
    trained_module(config, net). Uses of `config`: mode, transfer_layers,
    transferred_lr_scale, lr, lr_schedule, samples, batch_size, eval_every, precision and
    seed."""
    variables = trainable_variables(net, config.mode, config.transfer_layers)
    slow = ()
    if MODE_TABLE[config.mode].trains_copied and config.transferred_lr_scale != 1:
        slow = copied_variables(net, config.transfer_layers)
    trainer = session.trainer(trained, variables, config.lr_schedule, config.precision, slow)
    steps = config.eval_every // config.batch_size
    trainer.compile(steps, config.batch_size)
    if config.samples % config.eval_every:  # a shorter last window
        trainer.compile(config.samples % config.eval_every // config.batch_size,
                        config.batch_size)
    trainer.start(config.seed, config.lr, schedule_steps(config.samples, config.batch_size),
                  slow_learning_rate=config.lr * config.transferred_lr_scale, weights=trained)
    return trainer
