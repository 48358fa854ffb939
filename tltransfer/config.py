"""What defines a run: the Config, the one schema of a run. Run names, flags, CSV columns,
HParams and the report's groupings all derive from its fields. Nothing here needs TensorFlow,
so tools that only read results share it without TensorFlow's start-up cost and noise.
"""

import dataclasses
import hashlib
import math
import os


@dataclasses.dataclass(frozen=True)
class Mode:
    """What a mode means for a run: every module asks this table, never the mode's name."""
    task: str            # the task it learns: "source" (the source net) or "target"
    copies: bool         # its first transfer_layers layers start as the source net's
    trains_copied: bool  # the optimizer sees the copied layers (at transferred_lr_scale x lr)
    # Whether the copied layers' outputs are computed once and the rest trains on them follows:
    # a run that copies and does not train exactly the conv layers caches their features.


MODE_TABLE = {
    "source": Mode(task="source", copies=False, trains_copied=False),
    "scratch": Mode(task="target", copies=False, trains_copied=False),
    "frozen": Mode(task="target", copies=True, trains_copied=False),
    "finetune": Mode(task="target", copies=True, trains_copied=True),
}
MODES = tuple(MODE_TABLE)
TRANSFER_MODES = tuple(m for m in MODES if MODE_TABLE[m].copies)
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("float32", "bfloat16")
SUBSETS = ("prefix", "random")
# Training seconds between checkpoints (each taken right after an evaluation): how a run is
# kept, not what it computes, so not a Config field. A checkpoint of the whole CNN costs ~22 ms,
# 4% of a 1000-sample window and a third of a frozen one; at one per 10 s a killed run loses at
# most 10 s.
CHECKPOINT_SECONDS = 10.0
# The lab's axes: every run's name spells them out; every other setting shows in the name only
# when it differs from its default, so the lab's runs keep their names whatever is added.
LAB_AXES = ("mode", "p", "dropout", "seed")
TARGET_MODES = tuple(m for m in MODES if MODE_TABLE[m].task == "target")
# The settings that take one of a few values.
CHOICES = {"mode": MODES, "subset": SUBSETS, "precision": PRECISIONS,
           "lr_schedule": LR_SCHEDULES, "source_lr_schedule": LR_SCHEDULES}
# A transfer run's source net is trained with these settings of its own; a source net itself
# uses the plain ones (mode=source with lr=0.002 is a source net trained at 0.002).
SOURCE_SETTINGS = {"source_lr": "lr", "source_lr_schedule": "lr_schedule",
                   "source_batch_size": "batch_size"}
# A list flag of one of these settings separates its values with '/', since a class list such
# as '1,3,7' holds commas itself.
CLASS_SETTINGS = ("source_classes", "target_classes")
# What each run writes to TensorBoard after every evaluation, with what it means. A source net
# writes them under SOURCE_TAGS: it is tested on other classes (0-5), so its test accuracy under
# the same tag would share the 6-9 nets' charts and top TensorBoard's sort by test accuracy.
STEP = "x axis (Step): training samples seen so far, not batches"
METRICS = {
    "test/accuracy": f"accuracy on the whole test set of the run's classes; {STEP}",
    "test/loss": f"mean cross-entropy on the whole test set of the run's classes; {STEP}",
    "train/accuracy": f"accuracy on the training batches since the last evaluation (with "
                      f"dropout, if any); {STEP}",
    "train/loss": f"mean cross-entropy on the training batches since the last evaluation; "
                  f"{STEP}",
}
SOURCE_TAGS = "source/"


def scalar_tag(mode, metric):
    """The tag under which a run of `mode` writes `metric` (a key of METRICS)."""
    return SOURCE_TAGS + metric if mode == "source" else metric


def metric_of(tag):
    """The METRICS key of a run's tag, whatever the run's mode."""
    return tag.removeprefix(SOURCE_TAGS)


# Seeds go to TensorFlow's stateless ops as int64 and to NumPy's generators, which take no
# negative seed.
MAX_SEED = 2**63 - 1


def parse_classes(spec):
    """'0-5', '5-9', 'odd', 'even', '1,3,7' or mixtures like '0-2,7' -> sorted tuple of digits.

    Parts that overlap are refused: '6-9,5-9' is a comma typed where '/' (two class lists of a
    sweep) was meant far more often than a set written twice."""
    digits, seen = [], {}
    for part in str(spec).replace(" ", "").split(","):
        if part in ("odd", "even"):
            part_digits = list(range(1 if part == "odd" else 0, 10, 2))
        elif "-" in part:
            low, _, high = part.partition("-")
            if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
                raise ValueError(f"classes {spec!r}: {part!r} is not a range like 0-5")
            part_digits = list(range(int(low), int(high) + 1))
        elif part.isdigit():
            part_digits = [int(part)]
        elif not part:
            raise ValueError(f"classes {spec!r}: an empty part; write the digits as 0-5, "
                             "1,3,7, odd or even")
        else:
            raise ValueError(f"classes {spec!r}: {part!r} is not a digit, a range like 0-5, "
                             "'odd' or 'even'")
        outside = [d for d in part_digits if d > 9]
        if outside:
            raise ValueError(f"classes {spec!r}: {', '.join(map(str, outside[:3]))}"
                             f"{'...' if len(outside) > 3 else ''} "
                             f"{'is not a digit' if len(outside) == 1 else 'are not digits'}; "
                             "MNIST's classes are 0-9")
        twice = sorted(set(part_digits) & set(digits))
        if twice:
            first = seen[twice[0]]
            sweep = (f"separate the class lists of a sweep with '/' ({first}/{part}), or "
                     if len(part_digits) > 1 and len(parse_classes(first)) > 1 else "")
            raise ValueError(f"classes {spec!r}: {part!r} repeats {format_classes(tuple(twice))}"
                             f" of {first!r}; {sweep}name each digit once")
        seen.update({d: part for d in part_digits})
        digits += part_digits
    if len(digits) < 2:
        raise ValueError(f"classes {spec!r} must name at least two of the digits 0-9: a task "
                         "of one class has nothing to tell apart")
    return tuple(sorted(digits))


def format_classes(classes):
    """The canonical spec of a set of digits: runs of 3 or more as ranges ('0-5', '1,3,5')."""
    parts, run = [], [classes[0]]
    for digit in classes[1:] + (None,):
        if digit is not None and digit == run[-1] + 1:
            run.append(digit)
            continue
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(d) for d in run]
        run = [digit]
    return ",".join(parts)


def setting(default, help, modes=MODES, tag="{name}{value}"):
    """A Config field. `help` documents it (main's --help shows it), `modes` are the modes whose
    runs depend on it, and `tag` (a format of name and value, or a function of the value) is
    how a non-default value shows in a run's name."""
    return dataclasses.field(default=default, metadata={"help": help, "modes": modes, "tag": tag})


def number(value):
    """`value` as short as it reads back exactly: 0.002, 60000, 1e-05."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def data_tag(path):
    """A data set in a run's name: its file or directory name and a hash of the whole path."""
    digest = hashlib.sha1(path.encode()).hexdigest()[:6]
    return f"data-{os.path.basename(os.path.normpath(path))}-{digest}"


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines one run. Defaults are the study's: they meet the spec's 99%.

    Field order is the order of the tags in a run's name.
    """
    mode: str = setting("finetune", "scratch (random init), frozen (conv layers copied from "
                        "the source net and not trained), finetune (copied and trained), or "
                        "source (the source net alone)")
    p: float = setting(1.0, "proportion of the target training images", TARGET_MODES)
    dropout: float = setting(0.0, "dropout rate on the inputs of layers 4 and 5 while "
                             "training; 0 = off, 0.5 = the lab's")
    seed: int = setting(0, "initialisation, batch order, dropout masks and source net")
    source_classes: str = setting(
        "0-5", "digits of the source task, e.g. 0-4, odd, 1,3,7; relabelled 0..k-1 in order",
        ("source",) + TRANSFER_MODES, "from{value}")
    target_classes: str = setting(
        "6-9", "digits of the target task, e.g. 5-9 or even; p subsets and output width follow",
        TARGET_MODES, "to{value}")
    subset: str = setting(
        "prefix", "prefix: the first target images in official order (the course's nested "
        "subsets); random: a stratified random draw per seed", TARGET_MODES, "{value}")
    transfer_layers: int = setting(
        2, "layers frozen and finetune runs copy from the source net: 1 = conv1, 2 = both conv "
        "layers (the lab's), 3 = conv layers and dense 128", TRANSFER_MODES, "depth{value}")
    transferred_lr_scale: float = setting(
        1.0, "finetune: the copied layers learn at this times --lr (their own Adam)",
        ("finetune",), "lrx{value}")
    precision: str = setting(
        "float32", "float32, or bfloat16: bfloat16 activations with float32 variables and "
        "optimizer, faster on CPUs with AVX512-BF16/AMX and on GPUs; on the command line, auto "
        "is bfloat16 where the CPU computes it natively and float32 elsewhere", tag="{value}")
    lr: float = setting(1e-3, "Adam's (initial) learning rate", tag="lr{value}")
    lr_schedule: str = setting(
        "cosine", "cosine: decay the learning rate to 0 over the run's budget (steadier final "
        "accuracy); constant: keep it", tag="{value}")
    batch_size: int = setting(100, "training batch size", tag="bs{value}")
    train_samples: int = setting(
        60_000, "training samples (not steps) of each target run, whatever p is, so that all "
        "curves share one axis", TARGET_MODES, "n{value}")
    eval_every: int = setting(1000, "evaluate on the whole test set every this many training "
                              "samples", tag="eval{value}")
    source_lr: float = setting(1e-3, "the source net's learning rate", TRANSFER_MODES,
                               "srclr{value}")
    source_lr_schedule: str = setting("cosine", "the source net's schedule", TRANSFER_MODES,
                                      "src-{value}")
    source_batch_size: int = setting(100, "the source net's batch size", TRANSFER_MODES,
                                     "srcbs{value}")
    source_samples: int = setting(60_000, "training samples of each source net",
                                  ("source",) + TRANSFER_MODES, "srcn{value}")
    data: str = setting("", "'' = the shipped MNIST; else a directory of MNIST-format IDX "
                        "files or the course's mnist.mat", tag=data_tag)

    def __post_init__(self):
        problems = []
        for name in CLASS_SETTINGS:
            try:  # canonical form, so that '0-4' and '0,1,2,3,4' are one config
                object.__setattr__(self, name, format_classes(
                    parse_classes(getattr(self, name))))
            except ValueError as e:
                problems.append(f"{name}: {e}")
        if self.transfer_layers not in (1, 2, 3):
            problems.append(f"transfer_layers={self.transfer_layers} must be 1 (conv1), 2 (both "
                            "conv layers) or 3 (conv layers and dense 128)")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                problems.append(f"{name} {getattr(self, name)!r} is unknown; choose from "
                                f"{', '.join(choices)}")
        if not 0 < self.p <= 1:
            problems.append(f"p={self.p} is outside (0, 1]; it is the proportion of 6-9 images "
                            "used")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} is not a rate in [0, 1) (0 = off, 0.5 = "
                            "the lab's)")
        for name in ("lr", "source_lr", "transferred_lr_scale"):
            value = getattr(self, name)
            if not 0 < value < math.inf:  # NaN fails it too
                problems.append(f"{name}={value} must be {'finite' if value > 0 else 'positive'}")
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(f"seed={self.seed} is outside 0..{MAX_SEED} (TensorFlow's and "
                            "NumPy's seeds are non-negative 64-bit integers)")
        # Each budget must be whole batches of the net that trains on it.
        budgets = {"batch_size": ("source_samples" if self.mode == "source" else
                                  "train_samples", "eval_every")}
        if self.mode in TRANSFER_MODES:
            budgets["source_batch_size"] = ("source_samples", "eval_every")
        for batch, names in budgets.items():
            size = getattr(self, batch)
            if size <= 0:
                problems.append(f"{batch}={size} must be positive")
                continue
            for name in names:
                value = getattr(self, name)
                if (value <= 0 or value % size) and not any(
                        problem.startswith(f"{name}=") for problem in problems):
                    nearest = sorted({max(size, value // size * size), (value // size + 1) * size})
                    problems.append(f"{name}={value} must be a positive multiple of "
                                    f"{batch}={size} (whole batches), e.g. "
                                    f"{' or '.join(map(str, nearest))}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def samples(self):
        """This run's budget of training samples."""
        return self.source_samples if self.mode == "source" else self.train_samples

    @property
    def name(self):
        """Run directory name: the lab's axes, then each setting this run depends on that is
        not at its default, so configs that compute different runs never share a name."""
        parts = [] if self.mode == "source" else [f"p{number(self.p)}"]
        parts += [f"drop{number(self.dropout)}", f"seed{self.seed}"]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if (field.name in LAB_AXES or self.mode not in field.metadata["modes"]
                    or value == field.default):
                continue
            tag = field.metadata["tag"]
            shown = number(value) if isinstance(value, (int, float)) else value
            parts.append(tag(value) if callable(tag) else
                         tag.format(name=field.name, value=shown))
        return "_".join([self.mode, *parts])

    def canonical(self):
        """This config with the settings its mode does not use at their defaults, so that
        configs making the same run compare equal."""
        return dataclasses.replace(self, **{f.name: f.default for f in dataclasses.fields(self)
                                            if self.mode not in f.metadata["modes"]})

    @property
    def variant(self):
        """The name's suffix after the seed: what sets this run apart from the lab's."""
        return self.name.split(f"_seed{self.seed}", 1)[1].lstrip("_")

    def source(self):
        """The config of the source net this run transfers from: the same seed, dropout,
        precision, evaluation interval and data, with the source_* training settings."""
        own = {plain: getattr(self, name) for name, plain in SOURCE_SETTINGS.items()}
        return dataclasses.replace(self, mode="source", p=1.0, **own).canonical()


# Settings a mode does not depend on: a run made under other values of these is still valid.
IRRELEVANT = {mode: tuple(f.name for f in dataclasses.fields(Config)
                          if mode not in f.metadata["modes"]) for mode in MODES}
