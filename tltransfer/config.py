"""What defines a run: the Config and the names of its settings, and nothing that needs
TensorFlow, so that tools which only read results (tools/report.py) share these definitions
without TensorFlow's start-up cost and noise.
"""

import dataclasses

MODES = ("source", "scratch", "frozen", "finetune")
TRANSFER_MODES = ("frozen", "finetune")
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("float32", "bfloat16")
SUBSETS = ("prefix", "random")
# Settings a mode does not depend on: a run made under other values of these is still valid.
IRRELEVANT = {"source": ("p", "train_samples", "target_classes", "subset", "transfer_layers",
                         "transferred_lr_scale"),
              "scratch": ("source_samples", "source_classes", "transfer_layers",
                          "transferred_lr_scale"),
              "frozen": ("transferred_lr_scale",)}
# Training seconds between checkpoints (each taken right after an evaluation): how a run is
# kept, not what it computes, so not a Config field. A checkpoint of the whole CNN costs ~22 ms,
# 4% of a 1000-sample window and a third of a frozen one; at one per 10 s a killed run loses at
# most 10 s.
CHECKPOINT_SECONDS = 10.0


def parse_classes(spec):
    """'0-5', '5-9', 'odd', 'even', '1,3,7' or mixtures like '0-2,7' -> sorted tuple of digits."""
    digits = []
    for part in str(spec).replace(" ", "").split(","):
        if part in ("odd", "even"):
            digits += range(1 if part == "odd" else 0, 10, 2)
        elif "-" in part:
            low, _, high = part.partition("-")
            if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
                raise ValueError(f"classes {spec!r}: {part!r} is not a range like 0-5")
            digits += range(int(low), int(high) + 1)
        elif part.isdigit():
            digits.append(int(part))
        else:
            raise ValueError(f"classes {spec!r}: {part!r} is not a digit, a range like 0-5, "
                             "'odd' or 'even'")
    if any(d > 9 for d in digits) or len(set(digits)) < 2:
        raise ValueError(f"classes {spec!r} must name at least two of the digits 0-9")
    return tuple(sorted(set(digits)))


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


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines one run. Defaults are the study's: they meet the spec's 99%."""
    mode: str = "finetune"
    p: float = 1.0
    dropout: float = 0.0
    seed: int = 0
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    batch_size: int = 100
    train_samples: int = 60_000
    source_samples: int = 60_000
    eval_every: int = 1000
    precision: str = "float32"
    source_classes: str = "0-5"
    target_classes: str = "6-9"
    subset: str = "prefix"
    data: str = ""  # '' = the shipped MNIST; else what data.load_data reads
    transfer_layers: int = 2  # frozen/finetune copy layers 1..N: 1 conv1, 2 + conv2, 3 + dense
    transferred_lr_scale: float = 1.0  # finetune: learning rate of the copied layers, relative

    def __post_init__(self):
        problems = []
        for name in ("source_classes", "target_classes"):
            try:  # canonical form, so that '0-4' and '0,1,2,3,4' are one config
                object.__setattr__(self, name, format_classes(
                    parse_classes(getattr(self, name))))
            except ValueError as e:
                problems.append(f"{name}: {e}")
        if self.transfer_layers not in (1, 2, 3):
            problems.append(f"transfer_layers={self.transfer_layers} must be 1 (conv1), 2 (both "
                            "conv layers) or 3 (conv layers and dense 128)")
        if self.transferred_lr_scale <= 0:
            problems.append(f"transferred_lr_scale={self.transferred_lr_scale} must be positive")
        if self.subset not in SUBSETS:
            problems.append(f"subset {self.subset!r} is unknown; choose from {', '.join(SUBSETS)}")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} is unknown; choose from {', '.join(MODES)}")
        if not 0 < self.p <= 1:
            problems.append(f"p={self.p} is outside (0, 1]; it is the proportion of 6-9 images "
                            "used")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} is not a rate in [0, 1) (0 = off, 0.5 = "
                            "the lab's)")
        if self.lr <= 0:
            problems.append(f"lr={self.lr} must be positive")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} is unknown; choose from "
                            f"{', '.join(PRECISIONS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule {self.lr_schedule!r} is unknown; choose from "
                            f"{', '.join(LR_SCHEDULES)}")
        if self.batch_size <= 0:
            problems.append(f"batch_size={self.batch_size} must be positive")
        for name in ("train_samples", "source_samples", "eval_every"):
            value = getattr(self, name)
            if self.batch_size > 0 and (value <= 0 or value % self.batch_size):
                problems.append(f"{name}={value} must be a positive multiple of "
                                f"batch_size={self.batch_size}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def samples(self):
        """This run's budget of training samples."""
        return self.source_samples if self.mode == "source" else self.train_samples

    @property
    def name(self):
        """Run directory name; `source` runs do not depend on p."""
        tail = f"drop{self.dropout:g}_seed{self.seed}"
        default = Config.__dataclass_fields__
        if self.mode != "scratch" and self.source_classes != default["source_classes"].default:
            tail += f"_from{self.source_classes}"
        if self.mode != "source" and self.target_classes != default["target_classes"].default:
            tail += f"_to{self.target_classes}"
        if self.mode != "source" and self.subset != default["subset"].default:
            tail += f"_{self.subset}"
        if self.mode in TRANSFER_MODES:
            if self.transfer_layers != default["transfer_layers"].default:
                tail += f"_depth{self.transfer_layers}"
            if self.transferred_lr_scale != default["transferred_lr_scale"].default:
                tail += f"_lrx{self.transferred_lr_scale:g}"
        if self.precision != "float32":
            tail += f"_{self.precision}"
        return f"source_{tail}" if self.mode == "source" else f"{self.mode}_p{self.p:g}_{tail}"

    def canonical(self):
        """This config with the settings its mode does not use at their defaults, so that
        configs making the same run compare equal."""
        default = Config.__dataclass_fields__
        return dataclasses.replace(self, **{name: default[name].default
                                            for name in IRRELEVANT.get(self.mode, ())})

    @property
    def variant(self):
        """The name's suffix after the seed: what sets this run apart from the lab's."""
        return self.name.split(f"_seed{self.seed}", 1)[1].lstrip("_")

    def source(self):
        """The config of the 0-5 net this run transfers from (same seed, dropout, settings)."""
        return dataclasses.replace(self, mode="source", p=1.0).canonical()
