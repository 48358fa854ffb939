"""The study's report, from the tidy CSV written by tools/export_csv.py.

    python tools/report.py --csv=results.csv --out=report

Writes into --out: report.md (final-accuracy tables per assignment, convergence, data
efficiency, Welch t-tests and a discussion generated from the numbers), the tables as CSV and
LaTeX, and the figures as PNG and PDF. The main tables use only the runs at the lab's standard
settings (STANDARD_SETTINGS); runs that vary transfer_layers or transferred_lr_scale get
sections of their own, and every other run is named near the top as left out. The report is
built in a temporary directory beside --out and renamed into place at the end, so a failed run
never leaves a complete-looking report behind.
"""

import csv
import dataclasses
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from absl import app, flags  # noqa: E402
from scipy import stats  # noqa: E402

from tltransfer.config import (IRRELEVANT, TRANSFER_MODES, Config, format_classes,  # noqa: E402
                               parse_classes)

REQUIRED_COLUMNS = ("run", "mode", "p", "n_train", "dropout", "seed", "lr", "lr_schedule",
                    "batch_size", "train_samples", "tag", "step", "value")
TEST_ACCURACY = "test/accuracy"
SOURCE = "source"
TARGET_MODES = ("scratch", "frozen", "finetune")
MODE_COLORS = {"source": "C7", "scratch": "C0", "frozen": "C1", "finetune": "C2"}
NO_DROPOUT = 0.0
LAB_DROPOUT = 0.5
SPEC_ACCURACY = 0.99  # the lab expects this for the 0-5 net and for 6-9 scratch at p = 1
ALPHA = 0.05
MIN_SEEDS_TO_TELL = 3
DEFAULT_THRESHOLDS = "0.9,0.95,0.98,0.99"
PAIRS = (("frozen", "scratch"), ("finetune", "scratch"), ("finetune", "frozen"))
MISSING = "n/a"
LEVEL = 1e-9  # accuracies (fractions) closer than this are equal

# Optional setting columns and the lab's value of each (Config's default): a CSV written before
# a column existed (or an empty cell) means that run had the lab's value.
STANDARD_SETTINGS = {name: Config.__dataclass_fields__[name].default
                     for name in ("precision", "source_classes", "target_classes", "subset",
                                  "transfer_layers", "transferred_lr_scale")}
# The settings each mode depends on: a source net never sees the target task or the transfer, a
# scratch net never sees the source, and a frozen net never trains its copied layers.
RELEVANT_SETTINGS = {mode: tuple(name for name in STANDARD_SETTINGS if name not in ignored)
                     for mode, ignored in IRRELEVANT.items()}
# What the first k layers a transfer run copies are (the lab copies 2).
TRANSFER_LAYER_NAMES = {1: "conv1", 2: "conv1+conv2", 3: "conv1+conv2+dense128"}


class ReportError(Exception):
    """The report cannot be made; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------------------------------------
# Reading the CSV

@dataclasses.dataclass
class Run:
    """One training run: its configuration and its curves (tag -> (steps, values), by step)."""
    name: str
    mode: str
    p: float
    n_train: int
    dropout: float
    seed: int
    lr: float
    lr_schedule: str
    batch_size: int
    train_samples: int
    curves: dict
    precision: str = STANDARD_SETTINGS["precision"]
    source_classes: str = STANDARD_SETTINGS["source_classes"]
    target_classes: str = STANDARD_SETTINGS["target_classes"]
    subset: str = STANDARD_SETTINGS["subset"]
    transfer_layers: int = STANDARD_SETTINGS["transfer_layers"]
    transferred_lr_scale: float = STANDARD_SETTINGS["transferred_lr_scale"]

    @property
    def test_curve(self):
        return self.curves.get(TEST_ACCURACY)

    @property
    def final_accuracy(self):
        """test/accuracy at the run's largest step, or None when it has no test accuracy."""
        curve = self.test_curve
        return None if curve is None else float(curve[1][-1])

    @property
    def settings(self):
        return (self.lr, self.lr_schedule, self.batch_size, self.train_samples)

    def differences(self, ignore=()):
        """((setting, value), ...) of the settings this run's mode depends on that are not
        the lab's standard ones, in STANDARD_SETTINGS order; () for a standard run."""
        relevant = RELEVANT_SETTINGS.get(self.mode, tuple(STANDARD_SETTINGS))
        return tuple((name, getattr(self, name)) for name in STANDARD_SETTINGS
                     if name in relevant and name not in ignore
                     and getattr(self, name) != STANDARD_SETTINGS[name])

    @property
    def standard(self):
        return not self.differences()


def _to_int(text):
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _classes(text):
    """A class spec in the canonical form the training code writes ('0,1,2,3,4,5' -> '0-5');
    a spec it cannot read is kept as written."""
    try:
        return format_classes(parse_classes(text))
    except ValueError:
        return text


COLUMN_TYPES = {"run": str, "mode": str, "p": float, "n_train": _to_int, "dropout": float,
                "seed": _to_int, "lr": float, "lr_schedule": str, "batch_size": _to_int,
                "train_samples": _to_int, "tag": str, "step": _to_int, "value": float}
OPTIONAL_COLUMN_TYPES = {"precision": str, "source_classes": _classes,
                         "target_classes": _classes, "subset": str, "transfer_layers": _to_int,
                         "transferred_lr_scale": float}
RUN_COLUMNS = ("mode", "p", "n_train", "dropout", "seed", "lr", "lr_schedule", "batch_size",
               "train_samples") + tuple(OPTIONAL_COLUMN_TYPES)
EXPORT_HINT = ("write it with `python tools/export_csv.py --logdir=logs --out=results.csv` "
               "or pass the right file with --csv=PATH")


def _parse_row(row, index, width, line_no, path):
    if len(row) != width:
        raise ReportError(f"{path} line {line_no} has {len(row)} fields but the header has "
                          f"{width}; re-export it with tools/export_csv.py")
    fields = {}
    for column, convert in {**COLUMN_TYPES, **OPTIONAL_COLUMN_TYPES}.items():
        raw = row[index[column]].strip() if column in index else ""
        if column in OPTIONAL_COLUMN_TYPES and not raw:
            fields[column] = STANDARD_SETTINGS[column]  # absent or empty: the lab's setting
            continue
        try:
            fields[column] = convert(raw)
        except ValueError:
            raise ReportError(f"{path} line {line_no}: {column}={raw!r} is not a valid "
                              f"{'integer' if convert is _to_int else 'number'}; re-export it "
                              f"with tools/export_csv.py") from None
    return fields


def _read_rows(path):
    if not os.path.exists(path):
        raise ReportError(f"{path} does not exist; {EXPORT_HINT}")
    if os.path.isdir(path):
        raise ReportError(f"{path} is a directory, not a CSV file; {EXPORT_HINT}")
    try:
        # utf-8-sig: a CSV saved by a spreadsheet may start with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise ReportError(f"{path} is empty; {EXPORT_HINT}")
            header = [cell.strip() for cell in header]
            missing = [column for column in REQUIRED_COLUMNS if column not in header]
            if missing:
                raise ReportError(f"{path} lacks the column(s) {', '.join(missing)}; the header "
                                  f"must be {','.join(REQUIRED_COLUMNS)} ({EXPORT_HINT})")
            index = {column: header.index(column)
                     for column in REQUIRED_COLUMNS + tuple(OPTIONAL_COLUMN_TYPES)
                     if column in header}
            return [_parse_row(row, index, len(header), line_no, path)
                    for line_no, row in enumerate(reader, start=2) if any(row)]
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read {path}: {error}; {EXPORT_HINT}") from None


def load_results(path):
    """The runs in the CSV at `path`, sorted by (mode, p, dropout, seed, name).

    Raises ReportError for a missing, empty or malformed file.
    """
    rows = _read_rows(path)
    if not rows:
        raise ReportError(f"{path} has a header but no data rows; {EXPORT_HINT}")
    attributes, points = {}, {}
    for row in rows:
        name = row["run"]
        config = tuple(row[column] for column in RUN_COLUMNS)
        if attributes.setdefault(name, config) != config:
            raise ReportError(f"{path}: run {name} has rows with different configurations; "
                              f"re-export it with tools/export_csv.py")
        curve = points.setdefault(name, {}).setdefault(row["tag"], {})
        if row["step"] in curve:
            raise ReportError(f"{path}: run {name} has two {row['tag']} rows at step "
                              f"{row['step']}; re-export it with tools/export_csv.py")
        curve[row["step"]] = row["value"]
    if not any(TEST_ACCURACY in curves for curves in points.values()):
        raise ReportError(f"{path} has no {TEST_ACCURACY} rows, which every table and figure "
                          f"needs; {EXPORT_HINT}")
    runs = []
    for name, config in attributes.items():
        curves = {}
        for tag, by_step in points[name].items():
            steps = np.array(sorted(by_step), dtype=float)
            curves[tag] = (steps, np.array([by_step[s] for s in sorted(by_step)], dtype=float))
        runs.append(Run(name, **dict(zip(RUN_COLUMNS, config)), curves=curves))
    return sorted(runs, key=lambda r: (_mode_rank(r.mode), r.p, r.dropout, r.seed, r.name))


def _mode_rank(mode):
    order = (SOURCE,) + TARGET_MODES
    return (order.index(mode), mode) if mode in order else (len(order), mode)


def meta_path(csv_path):
    """results.csv -> results_meta.json, beside it."""
    return os.path.splitext(csv_path)[0] + "_meta.json"


def load_meta(csv_path):
    """(meta dict or None, a note saying why it is None)."""
    path = meta_path(csv_path)
    if not os.path.exists(path):
        return None, f"`{path}` is absent: commands, flagfiles, versions and data hash unknown."
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as error:
        return None, f"`{path}` could not be read ({error}); provenance unknown."
    if not isinstance(meta, dict):
        return None, f"`{path}` is not a JSON object; provenance unknown."
    return meta, ""


# ---------------------------------------------------------------------------------------------
# Grouping and statistics

@dataclasses.dataclass
class Group:
    """The runs (one per seed) of one (mode, p, dropout) configuration."""
    mode: str
    p: float
    dropout: float
    runs: list

    @property
    def key(self):
        return (self.mode, self.p, self.dropout)

    @property
    def n_train(self):
        return self.runs[0].n_train

    @property
    def finals(self):
        return np.array([run.final_accuracy for run in self.runs])

    @property
    def seeds(self):
        return [run.seed for run in self.runs]

    def mean_curve(self):
        """(steps, mean, min, max) of test accuracy over seeds at the steps all runs share."""
        steps = _common_steps([run.test_curve[0] for run in self.runs])
        values = np.array([_values_at(run.test_curve, steps) for run in self.runs])
        return steps, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _common_steps(step_arrays):
    common = step_arrays[0]
    for steps in step_arrays[1:]:
        common = np.intersect1d(common, steps)
    return common


def _values_at(curve, steps):
    return curve[1][np.searchsorted(curve[0], steps)]


def group_runs(runs):
    """{(mode, p, dropout): Group} of the runs that have test accuracy, seeds in order."""
    groups = {}
    for run in runs:
        if run.test_curve is not None:
            key = (run.mode, run.p, run.dropout)
            groups.setdefault(key, Group(*key, runs=[])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.seed, r.name))
    return dict(sorted(groups.items(), key=lambda item: (_mode_rank(item[0][0]),) + item[0][1:]))


@dataclasses.dataclass
class Variation:
    """Transfer runs at the lab's settings but for one setting, which they vary.

    groups: {(p, dropout, mode, value of the setting): Group}, sorted, holding only the
    (p, dropout) cells where some run has a value other than the lab's; the lab's value's
    groups there are the standard runs, for reference.
    """
    setting: str
    groups: dict

    @property
    def cells(self):
        return sorted({key[:2] for key in self.groups})

    def at(self, p, dropout, mode):
        """{value: Group} of one mode in one (p, dropout) cell, by value."""
        return {key[3]: group for key, group in self.groups.items()
                if key[:3] == (p, dropout, mode)}

    @property
    def run_names(self):
        return {run.name for group in self.groups.values() for run in group.runs}


def vary(runs, setting, modes):
    """The Variation of `setting` over the runs of `modes` whose other settings are the lab's;
    None unless those runs take more than one value of it."""
    picked = [run for run in runs if run.mode in modes and run.test_curve is not None
              and not run.differences(ignore=(setting,))]
    if len({getattr(run, setting) for run in picked}) < 2:
        return None
    cells = {(run.p, run.dropout) for run in picked
             if getattr(run, setting) != STANDARD_SETTINGS[setting]}
    groups = {}
    for run in picked:
        if (run.p, run.dropout) in cells:
            key = (run.p, run.dropout, run.mode, getattr(run, setting))
            groups.setdefault(key, Group(run.mode, run.p, run.dropout, runs=[])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.seed, r.name))
    return Variation(setting, dict(sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], _mode_rank(item[0][2]),
                                          item[0][3]))))


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and 95% t confidence interval of the mean; NaN where n < 2."""
    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int


def summarize(values):
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return Summary(mean, math.nan, math.nan, math.nan, n)
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, mean - half, mean + half, n)


@dataclasses.dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(a) - mean(b) with its 95% CI (Welch-Satterthwaite df)."""
    diff: float
    ci_low: float
    ci_high: float
    df: float
    pvalue: float
    n_a: int
    n_b: int
    verdict: str

    @property
    def significant(self):
        return self.verdict == "significant"


def _sample_variance(values):
    # Identical values must give exactly 0, not float rounding noise, to spot the degenerate test.
    return 0.0 if np.ptp(values) == 0 else float(values.var(ddof=1))


def welch_test(a, b):
    """Welch's t-test; the verdict says 'too few seeds to tell' below 3 runs per group and
    names the degenerate case (zero variance in both groups) instead of letting NaNs through."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n_a, n_b = len(a), len(b)
    diff = float(a.mean() - b.mean()) if n_a and n_b else math.nan
    too_few = min(n_a, n_b) < MIN_SEEDS_TO_TELL
    if min(n_a, n_b) < 2:
        return Welch(diff, math.nan, math.nan, math.nan, math.nan, n_a, n_b,
                     "too few seeds to tell")
    var_a, var_b = _sample_variance(a) / n_a, _sample_variance(b) / n_b
    if var_a + var_b == 0:
        return Welch(diff, math.nan, math.nan, math.nan, math.nan, n_a, n_b,
                     "too few seeds to tell" if too_few
                     else "test undefined: zero variance in both groups")
    df = float((var_a + var_b) ** 2 / (var_a ** 2 / (n_a - 1) + var_b ** 2 / (n_b - 1)))
    half = float(stats.t.ppf(1 - ALPHA / 2, df)) * math.sqrt(var_a + var_b)
    with warnings.catch_warnings():
        # scipy warns when one group's values are identical (its variance is rounding noise);
        # the other group's variance dominates and the p-value is sound, so say nothing.
        warnings.filterwarnings("ignore", message="Precision loss occurred",
                                category=RuntimeWarning)
        pvalue = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    if too_few:
        verdict = "too few seeds to tell"
    else:
        verdict = "significant" if pvalue < ALPHA else "not significant"
    return Welch(diff, diff - half, diff + half, df, pvalue, n_a, n_b, verdict)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """a vs b: two modes at one (p, dropout), or two dropouts of one (mode, p)."""
    a: Group
    b: Group
    test: Welch

    @property
    def label(self):
        if self.a.mode == self.b.mode:
            return f"{self.a.mode}: dropout {self.a.dropout:g} vs {self.b.dropout:g}"
        return f"{self.a.mode} vs {self.b.mode}"


def compare_groups(groups):
    """Every mode pair of PAIRS per (p, dropout), then dropout 0.5 vs 0 per (mode, p)."""
    comparisons = []
    for (mode, p, dropout), group in groups.items():
        for first, second in PAIRS:
            if mode == first and (second, p, dropout) in groups:
                other = groups[(second, p, dropout)]
                comparisons.append(Comparison(group, other, welch_test(group.finals,
                                                                        other.finals)))
    for (mode, p, dropout), group in groups.items():
        if mode in TARGET_MODES and dropout == LAB_DROPOUT and (mode, p, NO_DROPOUT) in groups:
            other = groups[(mode, p, NO_DROPOUT)]
            comparisons.append(Comparison(group, other, welch_test(group.finals, other.finals)))
    return sorted(comparisons, key=lambda c: (c.a.mode == c.b.mode, c.a.p, c.a.dropout,
                                              _mode_rank(c.a.mode), _mode_rank(c.b.mode)))


def find_comparison(comparisons, a_key, b_key):
    for comparison in comparisons:
        if comparison.a.key == a_key and comparison.b.key == b_key:
            return comparison
    return None


# ---------------------------------------------------------------------------------------------
# Convergence

def first_reach(steps, values, threshold):
    """The first step at which values >= threshold, or None when never."""
    hits = np.flatnonzero(np.asarray(values) >= threshold)
    return int(steps[hits[0]]) if hits.size else None


def curve_area(steps, values):
    """Area under the learning curve over its step range: the mean accuracy along training."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if len(steps) < 2:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


@dataclasses.dataclass(frozen=True)
class Reach:
    """Samples to a threshold over a group's runs: mean over the runs that reached it."""
    mean_steps: float  # NaN when no run reached it
    reached: int
    n: int


@dataclasses.dataclass(frozen=True)
class Convergence:
    group: Group
    reaches: dict  # threshold -> Reach
    area: Summary


def convergence(group, thresholds):
    reaches = {}
    for threshold in thresholds:
        steps = [first_reach(*run.test_curve, threshold) for run in group.runs]
        reached = [s for s in steps if s is not None]
        reaches[threshold] = Reach(float(np.mean(reached)) if reached else math.nan,
                                   len(reached), len(steps))
    area = summarize([curve_area(*run.test_curve) for run in group.runs])
    return Convergence(group, reaches, area)


def direction(diff):
    """+1, -1 or 0 (level): differences below LEVEL are float rounding, not a lead."""
    return 0 if abs(diff) < LEVEL else (1 if diff > 0 else -1)


def lasting_lead(steps, a, b):
    """(sign of a - b at the last step, first step from which that sign holds for good)."""
    sign = np.array([direction(d) for d in np.asarray(a) - np.asarray(b)])
    final = int(sign[-1])
    if final == 0:
        return 0, None
    other = np.flatnonzero(sign != final)
    return final, int(steps[other[-1] + 1] if other.size else steps[0])


def mean_curve_lead(a, b):
    """lasting_lead of two groups' mean test curves on their shared steps (None if none)."""
    steps_a, mean_a, _, _ = a.mean_curve()
    steps_b, mean_b, _, _ = b.mean_curve()
    steps = np.intersect1d(steps_a, steps_b)
    if not steps.size:
        return None
    sign, step = lasting_lead(steps, _values_at((steps_a, mean_a), steps),
                              _values_at((steps_b, mean_b), steps))
    return sign, step, int(steps[0])


# ---------------------------------------------------------------------------------------------
# Data efficiency

@dataclasses.dataclass(frozen=True)
class Match:
    """Target images scratch needs to reach an accuracy. relation: '<=' (already at the
    smallest size measured), '~' (interpolated) or '>' (not even at the largest)."""
    relation: str
    n: float

    def text(self):
        if self.relation == "<=":
            return f"<= {self.n:,.0f}"
        if self.relation == ">":
            return f"more than {self.n:,.0f}"
        return f"~{self.n:,.0f}"


def scratch_images_to_match(n_trains, accuracies, target):
    """Interpolate scratch's mean final accuracy linearly in log(n_train) and return the
    smallest n at which it reaches `target`."""
    order = np.argsort(n_trains)
    ns = np.asarray(n_trains, dtype=float)[order]
    accs = np.asarray(accuracies, dtype=float)[order]
    if accs[0] >= target:
        return Match("<=", float(ns[0]))
    for i in range(len(ns) - 1):
        if accs[i] < target <= accs[i + 1]:
            fraction = (target - accs[i]) / (accs[i + 1] - accs[i])
            log_n = math.log(ns[i]) + fraction * (math.log(ns[i + 1]) - math.log(ns[i]))
            return Match("~", float(math.exp(log_n)))
    return Match(">", float(ns[-1]))


@dataclasses.dataclass(frozen=True)
class Efficiency:
    group: Group  # the transfer group
    target: float
    match: Match

    @property
    def ratio(self):
        return self.match.n / self.group.n_train


def data_efficiency(groups):
    """For every frozen/finetune group: scratch images (same dropout) to match its mean."""
    rows = []
    for (mode, p, dropout), group in groups.items():
        scratch = [g for (m, _, d), g in groups.items() if m == "scratch" and d == dropout]
        if mode in TRANSFER_MODES and scratch:
            target = float(group.finals.mean())
            match = scratch_images_to_match([g.n_train for g in scratch],
                                            [g.finals.mean() for g in scratch], target)
            rows.append(Efficiency(group, target, match))
    return rows


def ratio_text(efficiency):
    relation = {"<=": "<= ", ">": "> ", "~": ""}[efficiency.match.relation]
    return f"{relation}{efficiency.ratio:.3g}x"


# ---------------------------------------------------------------------------------------------
# Formatting

def pct(x):
    return MISSING if math.isnan(x) else f"{100 * x:.2f}"


def p_clause(p):
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def signed(x):
    """x as signed percentage points, never '-0.00'."""
    return f"{round(100 * x, 2) + 0.0:+.2f}"


def pp(x):
    return MISSING if math.isnan(x) else f"{signed(x)} pp"


def pvalue_text(p):
    return MISSING if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def p_label(group):
    return f"p = {group.p:g} ({group.n_train:,} images)"


def setting_text(name, value):
    return f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"


def depth_name(layers):
    """What a transfer run copies from the source net, e.g. 'conv1+conv2' for 2 layers."""
    return TRANSFER_LAYER_NAMES.get(layers, f"the first {layers} layers")


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def latex_escape(text):
    return str(text).replace("\\", r"\textbackslash{}").replace("%", r"\%").replace(
        "_", r"\_").replace("&", r"\&").replace("#", r"\#")


def latex_table(header, rows, caption, text_columns):
    """A booktabs table; the first `text_columns` columns left-aligned, numbers right."""
    lines = [r"\begin{table}[ht]", r"\centering", f"\\caption{{{latex_escape(caption)}}}",
             r"\begin{tabular}{" + "l" * text_columns + "r" * (len(header) - text_columns) + "}",
             r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c).replace(MISSING, "--") for c in row) + r" \\"
              for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def csv_number(x, digits=6):
    return "" if x is None or math.isnan(x) else f"{x:.{digits}f}"


ACCURACY_HEADER = ("p", "n_train", "mode", "dropout", "mean (%)", "std (pp)", "95% CI (%)",
                   "runs")
ACCURACY_CSV_HEADER = ("p", "n_train", "mode", "dropout", "mean_pct", "std_pp", "ci_low_pct",
                       "ci_high_pct", "n_runs")


def accuracy_rows(groups, modes, dropouts):
    """[(group, summary)] for the given modes and dropouts, sorted by (p, mode, dropout)."""
    rows = [(g, summarize(g.finals)) for g in groups.values()
            if g.mode in modes and g.dropout in dropouts]
    return sorted(rows, key=lambda r: (r[0].p, _mode_rank(r[0].mode), r[0].dropout))


def accuracy_cells(group, summary):
    ci = MISSING if math.isnan(summary.ci_low) else \
        f"[{pct(summary.ci_low)}, {pct(summary.ci_high)}]"
    return (f"{group.p:g}", f"{group.n_train:,}", group.mode, f"{group.dropout:g}",
            pct(summary.mean), pct(summary.std), ci, str(summary.n))


def accuracy_csv_cells(group, summary):
    return (f"{group.p:g}", group.n_train, group.mode, f"{group.dropout:g}",
            f"{100 * summary.mean:.2f}", _pct_or_blank(summary.std),
            _pct_or_blank(summary.ci_low), _pct_or_blank(summary.ci_high), summary.n)


def _pct_or_blank(x):
    return "" if math.isnan(x) else f"{100 * x:.2f}"


# ---------------------------------------------------------------------------------------------
# Figures

def save_figure(fig, out_dir, stem):
    """PNG and PDF of `fig`, without timestamps so that the same data gives the same files."""
    names = []
    for extension, metadata in (("png", {"Software": None}),
                                ("pdf", {"CreationDate": None, "Producer": None})):
        name = f"{stem}.{extension}"
        fig.savefig(os.path.join(out_dir, name), dpi=150, metadata=metadata,
                    bbox_inches="tight")
        names.append(name)
    plt.close(fig)
    return names


def _mode_handles(modes):
    return [matplotlib.patches.Patch(color=MODE_COLORS[m], label=m) for m in modes]


def plot_final_boxplots(groups, out_dir):
    """Final accuracy over seeds: a row per dropout, a panel per p (each with its own y range,
    since the accuracies at p = 1 and p = 0.005 differ by far more than the spread)."""
    targets = [g for g in groups.values() if g.mode in TARGET_MODES]
    dropouts = sorted({g.dropout for g in targets})
    ps = sorted({g.p for g in targets})
    modes = [m for m in TARGET_MODES if any(g.mode == m for g in targets)]
    fig, axes = plt.subplots(len(dropouts), len(ps), figsize=(3.2 * len(ps), 3 * len(dropouts)),
                             squeeze=False, sharex=True)
    for row, dropout in enumerate(dropouts):
        for col, p in enumerate(ps):
            ax = axes[row][col]
            for position, mode in enumerate(modes):
                group = groups.get((mode, p, dropout))
                if group is None:
                    continue
                values = 100 * group.finals
                box = ax.boxplot(values, positions=[position], widths=0.6, patch_artist=True,
                                 medianprops={"color": "black"})
                box["boxes"][0].set(facecolor=MODE_COLORS[mode], alpha=0.45)
                ax.scatter(np.full(len(values), position), values, color=MODE_COLORS[mode],
                           s=12, zorder=3)
            n_train = next(g.n_train for g in targets if g.p == p)
            ax.set_title(f"p = {p:g} (n = {n_train:,}), dropout {dropout:g}", fontsize=9)
            ax.set_xticks(range(len(modes)), modes, fontsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[row][0].set_ylabel("final test accuracy (%)")
    fig.legend(handles=_mode_handles(modes), loc="upper center", ncol=len(modes),
               bbox_to_anchor=(0.5, 1.02), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save_figure(fig, out_dir, "final_accuracy_boxplot")


def _plot_curve(ax, group, color, label):
    """Mean test accuracy over seeds with a min-max band; returns the band (low, high)."""
    steps, mean, low, high = group.mean_curve()
    ax.plot(steps, 100 * mean, color=color, label=label, linewidth=1.4)
    ax.fill_between(steps, 100 * low, 100 * high, color=color, alpha=0.18, linewidth=0)
    return low, high


def _zoom(ax, bands):
    """Cut off the first tenth of training's low accuracies so later differences stay visible."""
    lows = np.concatenate([low[len(low) // 10:] for low, _ in bands])
    highs = np.concatenate([high for _, high in bands])
    if lows.size:
        ax.set_ylim(max(0.0, 100 * float(lows.min()) - 1),
                    min(100.5, 100 * float(highs.max()) + 0.5))


def plot_learning_curves(groups, dropout, out_dir):
    """Mean test accuracy over seeds (band: min-max) vs training samples, a panel per p."""
    targets = [g for g in groups.values() if g.mode in TARGET_MODES and g.dropout == dropout]
    ps = sorted({g.p for g in targets})
    fig, axes = plt.subplots(1, len(ps), figsize=(3.6 * len(ps), 3.3), squeeze=False)
    for ax, p in zip(axes[0], ps):
        _zoom(ax, [_plot_curve(ax, g, MODE_COLORS[g.mode], g.mode)
                   for g in targets if g.p == p])
        n_train = next(g.n_train for g in targets if g.p == p)
        ax.set_title(f"p = {p:g} (n = {n_train:,})", fontsize=9)
        ax.set_xlabel("training samples", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"6-9 nets, dropout {dropout:g}: mean over seeds, band = min-max", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_dir, f"learning_curves_drop{dropout:g}")


def plot_source_curves(groups, out_dir):
    sources = [g for g in groups.values() if g.mode == SOURCE]
    fig, ax = plt.subplots(figsize=(5, 3.3))
    _zoom(ax, [_plot_curve(ax, g, f"C{i}", f"dropout {g.dropout:g} ({len(g.runs)} seeds)")
               for i, g in enumerate(sources)])
    ax.axhline(100 * SPEC_ACCURACY, color="k", linestyle=":", linewidth=1, label="99%")
    ax.set_xlabel("training samples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("0-5 source nets: mean over seeds, band = min-max", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, out_dir, "source_learning_curve")


DROPOUT_STYLES = ("-", "--", ":", "-.")


def _dropout_style(dropouts, dropout):
    return DROPOUT_STYLES[dropouts.index(dropout) % len(DROPOUT_STYLES)]


def _lines_by_mode_and_dropout(ax, points, dropouts):
    """One line per (mode, dropout) through points (group, y, yerr), against n_train."""
    for mode in TARGET_MODES:
        for dropout in dropouts:
            line = sorted((g.n_train, y, e) for g, y, e in points
                          if g.mode == mode and g.dropout == dropout and not math.isnan(y))
            if line:
                x, y, e = zip(*line)
                ax.errorbar(x, y, yerr=np.nan_to_num(e), color=MODE_COLORS[mode],
                            linestyle=_dropout_style(dropouts, dropout), marker="o",
                            markersize=3, capsize=2, label=f"{mode}, dropout {dropout:g}")
    # Tick exactly the measured sizes, so every panel has the same readable x axis.
    sizes = sorted({g.n_train for g, _, _ in points})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 1.5)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def plot_convergence(rows, thresholds, out_dir):
    """Area under the curve and samples to each threshold (only where every seed got there)."""
    dropouts = sorted({r.group.dropout for r in rows})
    panels = 1 + len(thresholds)
    ncols = min(3, panels)
    nrows = math.ceil(panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.3 * nrows), squeeze=False)
    flat = axes.ravel()
    _lines_by_mode_and_dropout(
        flat[0], [(r.group, 100 * r.area.mean, 100 * r.area.std) for r in rows], dropouts)
    flat[0].set_title("area under the learning curve (mean acc., %)", fontsize=9)
    for ax, threshold in zip(flat[1:], thresholds):
        _lines_by_mode_and_dropout(
            ax, [(r.group, _all_reached_mean(r.reaches[threshold]), 0.0) for r in rows],
            dropouts)
        ax.set_title(f"samples to reach {100 * threshold:g}% (all seeds reached)", fontsize=9)
        ax.set_ylabel("training samples", fontsize=8)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.set_xlabel("target training images (n_train)", fontsize=8)
    flat[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, "convergence")


def _all_reached_mean(reach):
    return reach.mean_steps if reach.reached == reach.n else math.nan


def plot_data_efficiency(groups, out_dir):
    targets = [g for g in groups.values() if g.mode in TARGET_MODES]
    dropouts = sorted({g.dropout for g in targets})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    points = [(g, 100 * g.finals.mean(), 100 * summarize(g.finals).std) for g in targets]
    _lines_by_mode_and_dropout(ax, points, dropouts)
    ax.set_xlabel("target training images (n_train, log scale)")
    ax.set_ylabel("final test accuracy (%), mean ± std")
    ax.set_title("data efficiency: final accuracy vs training-set size", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, "data_efficiency")


def _depth_style(dropout):
    """The lab's two dropouts: 0 solid, 0.5 dashed; any other dotted."""
    return {NO_DROPOUT: "-", LAB_DROPOUT: "--"}.get(dropout, ":")


def plot_transfer_depth(depth, groups, out_dir):
    """Final accuracy (mean, error bar = std over seeds) vs transfer_layers, a panel per p, a
    line per (transfer mode, dropout); the standard scratch mean as a horizontal line."""
    ps = sorted({p for p, _ in depth.cells})
    layers = sorted(set(TRANSFER_LAYER_NAMES) | {key[3] for key in depth.groups})
    fig, axes = plt.subplots(1, len(ps), figsize=(4.2 * len(ps), 3.6), squeeze=False)
    handles = {}
    for ax, p in zip(axes[0], ps):
        dropouts = [d for cell_p, d in depth.cells if cell_p == p]
        for dropout in dropouts:
            style = _depth_style(dropout)
            for offset, mode in zip((-0.04, 0.04), TRANSFER_MODES):
                by_layers = depth.at(p, dropout, mode)
                if not by_layers:
                    continue
                x = sorted(by_layers)
                means = [100 * by_layers[k].finals.mean() for k in x]
                stds = [100 * summarize(by_layers[k].finals).std for k in x]
                line = ax.errorbar(np.array(x, dtype=float) + offset, means,
                                   yerr=np.nan_to_num(stds), color=MODE_COLORS[mode],
                                   linestyle=style, marker="o", markersize=4, capsize=3)
                handles.setdefault((False, _mode_rank(mode), dropout,
                                    f"{mode}, dropout {dropout:g}"), line)
            scratch = groups.get(("scratch", p, dropout))
            if scratch is not None:
                line = ax.axhline(100 * scratch.finals.mean(), color=MODE_COLORS["scratch"],
                                  linestyle=style, linewidth=1.2)
                handles.setdefault((True, _mode_rank("scratch"), dropout,
                                    f"scratch (mean), dropout {dropout:g}"), line)
        n_train = next(g.n_train for key, g in depth.groups.items() if key[0] == p)
        ax.set_title(f"p = {p:g} (n = {n_train:,})", fontsize=9)
        ax.set_xticks(layers, [depth_name(k) for k in layers], fontsize=7)
        ax.set_xlim(layers[0] - 0.4, layers[-1] + 0.4)
        ax.set_xlabel("layers copied from the 0-5 net (transfer_layers)", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final test accuracy (%), mean ± std")
    keys = sorted(handles)  # frozen, finetune, then scratch; dropout 0 first
    fig.legend([handles[key] for key in keys], [key[-1] for key in keys], loc="upper center",
               ncol=min(3, len(keys)), bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.05 * math.ceil(len(keys) / 3)))
    return save_figure(fig, out_dir, "transfer_depth")


# ---------------------------------------------------------------------------------------------
# Report sections

@dataclasses.dataclass(frozen=True)
class Assignment:
    """What one assignment reports: its table's modes and dropouts, the mode pairs it tests
    and discusses at `pair_dropout`, and whether it also tests dropout against none."""
    number: int
    title: str
    modes: tuple
    dropouts: tuple
    pairs: tuple
    pair_dropout: float
    dropout_effect: bool = False

    def comparisons(self, comparisons):
        mode_pairs = [c for c in comparisons if (c.a.mode, c.b.mode) in self.pairs
                      and c.a.dropout == self.pair_dropout]
        dropout_pairs = [c for c in comparisons if c.a.mode == c.b.mode]
        return mode_pairs + (dropout_pairs if self.dropout_effect else [])


ASSIGNMENTS = (
    Assignment(1, "scratch vs frozen transfer, no dropout", ("scratch", "frozen"),
               (NO_DROPOUT,), PAIRS[:1], NO_DROPOUT),
    Assignment(2, "fine-tuned transfer added, no dropout", TARGET_MODES, (NO_DROPOUT,),
               PAIRS[1:], NO_DROPOUT),
    Assignment(3, f"dropout {LAB_DROPOUT:g} on layers 4 and 5, compared with none", TARGET_MODES,
               (NO_DROPOUT, LAB_DROPOUT), PAIRS, LAB_DROPOUT, dropout_effect=True),
)


class Report:
    """Accumulates report.md's lines and the files written beside it."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.lines = []
        self.files = []
        self.skipped = []

    def add(self, *lines):
        self.lines.extend(lines)

    def skip(self, text):
        self.skipped.append(text)
        self.add(f"*Skipped: {text}*", "")

    def path(self, name):
        self.files.append(name)
        return os.path.join(self.out_dir, name)

    def figure(self, names, caption):
        self.files.extend(names)
        png = next(n for n in names if n.endswith(".png"))
        pdf = next(n for n in names if n.endswith(".pdf"))
        self.add(f"![{caption}]({png})", "", f"*{caption}* ([PDF]({pdf}))", "")


def _as_list(value):
    """A meta field as a list, whether written as a list, a single string or not at all."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _code_list(value):
    return ", ".join(f"`{item}`" for item in _as_list(value)) or "none recorded"


def header_section(report, command, csv_path, runs, meta, meta_note, elsewhere):
    report.add("# Transfer learning on MNIST: results report", "",
               f"Generated by `{command}`", "",
               f"Input: `{csv_path}`: {len(runs)} runs, "
               f"{sum(len(c[0]) for r in runs for c in r.curves.values()):,} data points.", "")
    report.add("## Provenance", "")
    if meta is None:
        report.add(f"- Export metadata: {meta_note}")
    else:
        report.add(f"- Export metadata: `{meta_path(csv_path)}`")
        report.add(*(f"  - training command: `{c}`" for c in _as_list(meta.get("commands"))))
        report.add(f"  - flagfiles: {_code_list(meta.get('flagfiles'))}")
        versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
        report.add("  - training versions: " + (", ".join(
            f"{name} {versions[name]}" for name in sorted(versions)) or "none recorded"))
        report.add(f"  - data sha256: {_code_list(meta.get('data_sha256'))}",
                   f"  - logdir: {_code_list(meta.get('logdir'))}")
        for key, label in (("failed_runs", "failed runs, left out"),
                           ("incomplete_runs", "incomplete runs, left out")):
            if meta.get(key):
                report.add(f"  - {label}: {_code_list(meta.get(key))}")
    report.add(f"- Report made with Python {sys.version.split()[0]}, numpy {np.__version__}, "
               f"scipy {scipy.__version__}, matplotlib {matplotlib.__version__}.")
    for mode in (SOURCE,) + TARGET_MODES:
        settings = sorted({r.settings for r in runs if r.mode == mode})
        if settings:
            report.add(f"- {mode} training settings: " + "; ".join(
                f"lr {lr:g} ({schedule}), batch {batch}, {samples:,} training samples"
                for lr, schedule, batch, samples in settings))
    unknown = sorted({r.mode for r in runs} - {SOURCE, *TARGET_MODES})
    if unknown:
        report.add(f"- Ignored runs of unknown mode(s): {', '.join(unknown)}.")
    no_test = [r.name for r in runs if r.test_curve is None]
    if no_test:
        report.add(f"- Ignored runs without {TEST_ACCURACY}: {', '.join(no_test)}.")
    report.add(*left_out_lines(runs, elsewhere))
    report.add("", "Final accuracy = a run's test accuracy at its last recorded step. "
               "Statistics are over seeds: std with ddof = 1, 95% CI from the t distribution; "
               "tests are Welch's t-tests (two-sided, alpha = 0.05).", "")


def standard_text():
    """The lab's settings, and which of them each mode depends on."""
    settings = ", ".join(setting_text(name, value) for name, value in STANDARD_SETTINGS.items())
    relevant = ", ".join(f"a {mode} net only its {', '.join(names[:-1])} and {names[-1]}"
                         for mode, names in RELEVANT_SETTINGS.items())
    return f"{settings}; of these {relevant} need be the lab's"


def left_out_lines(runs, elsewhere):
    """The runs whose settings differ from the lab's, grouped by what differs.

    elsewhere: {run name: the section that reports it}.
    """
    by_difference = {}
    for run in runs:
        if not run.standard:
            by_difference.setdefault(run.differences(), []).append(run.name)
    if not by_difference:
        return []
    order = list(STANDARD_SETTINGS)
    count = sum(len(names) for names in by_difference.values())
    lines = [f"- {count} runs with other settings are not in the main tables, which use only "
             f"runs at the lab's settings ({standard_text()}):"]
    for difference in sorted(by_difference,
                              key=lambda d: tuple((order.index(n), v) for n, v in d)):
        names = sorted(by_difference[difference])
        sections = sorted({elsewhere[name] for name in names if name in elsewhere})
        where = f"; reported in {', '.join(sections)}" if sections else ""
        lines.append(f"  - {', '.join(setting_text(*item) for item in difference)} "
                     f"({plural(len(names), 'run')}{where}): {', '.join(names)}")
    return lines


def source_section(report, groups):
    report.add("## 0-5 source nets", "")
    sources = [g for g in groups.values() if g.mode == SOURCE]
    if not sources:
        report.skip("no source runs in the CSV, so no 0-5 accuracies and no source curve.")
        return
    header = ("dropout", "per seed (%)", "mean (%)", "std (pp)", "runs", ">= 99%")
    rows = []
    for group in sources:
        summary = summarize(group.finals)
        per_seed = ", ".join(f"seed {s}: {pct(a)}" for s, a in zip(group.seeds, group.finals))
        rows.append((f"{group.dropout:g}", per_seed, pct(summary.mean), pct(summary.std),
                     str(summary.n), "yes" if summary.mean >= SPEC_ACCURACY else "no"))
    report.add(*markdown_table(header, rows), "")
    write_csv(report.path("source_accuracy.csv"), header, rows)
    with open(report.path("source_accuracy.tex"), "w", encoding="utf-8") as handle:
        handle.write(latex_table(header, rows, "Final test accuracy of the 0-5 source nets.",
                                 text_columns=2))
    report.figure(plot_source_curves(groups, report.out_dir),
                  "0-5 source nets: test accuracy during training")


def spec_check_lines(groups):
    """The spec's '>= 99%' remark, checked for the source nets and scratch at p = 1."""
    lines = []
    for group in groups.values():
        if group.mode == SOURCE or (group.mode == "scratch" and group.p == 1.0):
            mean = float(group.finals.mean())
            label = "0-5 source net" if group.mode == SOURCE else "6-9 scratch net at p = 1"
            verdict = "meets" if mean >= SPEC_ACCURACY else "misses"
            lines.append(f"- {label}, dropout {group.dropout:g}: mean {pct(mean)}% over "
                         f"{len(group.runs)} run(s) {verdict} the spec's >= 99%.")
    return lines


def assignment_section(report, assignment, groups, comparisons):
    report.add(f"## Assignment {assignment.number}: {assignment.title}", "")
    rows = accuracy_rows(groups, assignment.modes, assignment.dropouts)
    absent = [f"{m} at dropout {d:g}" for m in assignment.modes for d in assignment.dropouts
              if not any(g.mode == m and g.dropout == d for g in groups.values())]
    if absent:
        report.skip(f"no runs for {', '.join(absent)}.")
    if not rows:
        return
    stem = f"assignment{assignment.number}_accuracy"
    report.add("Final test accuracy over seeds:", "",
               *markdown_table(ACCURACY_HEADER, [accuracy_cells(*r) for r in rows]), "",
               f"Also as [{stem}.csv]({stem}.csv) and [{stem}.tex]({stem}.tex).", "")
    write_csv(report.path(f"{stem}.csv"), ACCURACY_CSV_HEADER,
              [accuracy_csv_cells(*r) for r in rows])
    with open(report.path(f"{stem}.tex"), "w", encoding="utf-8") as handle:
        handle.write(latex_table(ACCURACY_HEADER, [accuracy_cells(*r) for r in rows],
                                 f"Assignment {assignment.number}: final test accuracy "
                                 f"of the 6-9 nets over seeds ({assignment.title}).",
                                 text_columns=4))
    picked = assignment.comparisons(comparisons)
    if picked:
        report.add("Welch's t-tests on final accuracy (difference = first minus second):", "",
                   *statistics_table(picked), "")
    else:
        report.skip(f"no pair of configurations to test in assignment {assignment.number}.")


STATISTICS_HEADER = ("comparison", "p", "dropout", "difference", "95% CI (pp)", "p-value",
                     "runs", "verdict")


def statistics_table(comparisons):
    rows = []
    for c in comparisons:
        t = c.test
        ci = MISSING if math.isnan(t.ci_low) else \
            f"[{signed(t.ci_low)}, {signed(t.ci_high)}]"
        dropout = f"{c.a.dropout:g}" if c.a.mode != c.b.mode else \
            f"{c.a.dropout:g} vs {c.b.dropout:g}"
        rows.append((c.label, f"{c.a.p:g}", dropout, pp(t.diff), ci, pvalue_text(t.pvalue),
                     f"{t.n_a} vs {t.n_b}", t.verdict))
    return markdown_table(STATISTICS_HEADER, rows)


def write_statistics_csv(report, comparisons):
    header = ("a_mode", "a_dropout", "b_mode", "b_dropout", "p", "n_train", "diff_pp",
              "ci_low_pp", "ci_high_pp", "df", "pvalue", "n_a", "n_b", "verdict")
    rows = [(c.a.mode, f"{c.a.dropout:g}", c.b.mode, f"{c.b.dropout:g}", f"{c.a.p:g}",
             c.a.n_train, csv_number(100 * c.test.diff, 4), csv_number(100 * c.test.ci_low, 4),
             csv_number(100 * c.test.ci_high, 4), csv_number(c.test.df, 4),
             "" if math.isnan(c.test.pvalue) else f"{c.test.pvalue:.6g}", c.test.n_a,
             c.test.n_b, c.test.verdict) for c in comparisons]
    write_csv(report.path("statistics.csv"), header, rows)


def reach_text(reach):
    if reach.reached == 0:
        return f"not reached (0/{reach.n})"
    text = f"{reach.mean_steps:,.0f}"
    return text if reach.reached == reach.n else f"{text} ({reach.reached}/{reach.n} reached)"


def convergence_section(report, groups, thresholds):
    report.add("## Convergence", "",
               "Training samples until the test accuracy first reaches each threshold (mean "
               "over the runs that reached it; 'k/n reached' when not all did) and the area "
               "under the learning curve (trapezoid over steps / step range, i.e. the mean "
               "test accuracy along training, in %).", "")
    rows = [convergence(g, thresholds) for g in groups.values() if g.mode in TARGET_MODES]
    rows.sort(key=lambda r: (r.group.dropout, r.group.p, _mode_rank(r.group.mode)))
    if not rows:
        report.skip("no 6-9 runs, so no convergence table.")
        return
    header = ("p", "n_train", "mode", "dropout") + tuple(
        f"to {100 * t:g}%" for t in thresholds) + ("area (%)",)
    table = [(f"{r.group.p:g}", f"{r.group.n_train:,}", r.group.mode, f"{r.group.dropout:g}",
              *(reach_text(r.reaches[t]) for t in thresholds),
              f"{pct(r.area.mean)} ± {pct(r.area.std)}" if r.area.n > 1 else pct(r.area.mean))
             for r in rows]
    report.add(*markdown_table(header, table), "")
    csv_header = ("p", "n_train", "mode", "dropout", "n_runs") + tuple(
        f"{kind}_{t:g}" for t in thresholds for kind in ("samples_mean", "reached")) + (
        "area_mean_pct", "area_std_pct")
    write_csv(report.path("convergence.csv"), csv_header, [
        (f"{r.group.p:g}", r.group.n_train, r.group.mode, f"{r.group.dropout:g}", r.area.n,
         *(cell for t in thresholds for cell in (csv_number(r.reaches[t].mean_steps, 1),
                                                 r.reaches[t].reached)),
         _pct_or_blank(r.area.mean), _pct_or_blank(r.area.std)) for r in rows])
    report.figure(plot_convergence(rows, thresholds, report.out_dir),
                  "Convergence: area under the learning curve and samples to each threshold "
                  "(a point only where every seed reached it), vs target training images")


def efficiency_section(report, groups, efficiencies):
    report.add("## Data efficiency", "")
    if any(g.mode in TARGET_MODES for g in groups.values()):
        report.figure(plot_data_efficiency(groups, report.out_dir),
                      "Final test accuracy vs number of target training images")
    if not efficiencies:
        report.skip("needs scratch runs and frozen or finetune runs at the same dropout.")
        return
    report.add("Target images a scratch net would need to match each transfer mode's mean final "
               "accuracy (scratch's mean final accuracy interpolated linearly in log n_train "
               "between the measured sizes):", "")
    header = ("transfer mode", "dropout", "p", "n_train", "transfer mean (%)",
              "scratch images to match", "ratio to n_train")
    rows = [(e.group.mode, f"{e.group.dropout:g}", f"{e.group.p:g}", f"{e.group.n_train:,}",
             pct(e.target), e.match.text(), ratio_text(e)) for e in efficiencies]
    report.add(*markdown_table(header, rows), "")
    write_csv(report.path("data_efficiency.csv"),
              ("mode", "dropout", "p", "n_train", "transfer_mean_pct", "relation",
               "scratch_images", "ratio"),
              [(e.group.mode, f"{e.group.dropout:g}", f"{e.group.p:g}", e.group.n_train,
                f"{100 * e.target:.2f}", e.match.relation, f"{e.match.n:.1f}",
                f"{e.ratio:.4f}") for e in efficiencies])


DEPTH_SECTION = "Transfer depth"
LR_SCALE_SECTION = "Learning rate of the transferred layers"


def _spread_cells(group):
    summary = summarize(group.finals)
    return pct(summary.mean), pct(summary.std), str(summary.n)


def _spread_csv_cells(group):
    summary = summarize(group.finals)
    return f"{100 * summary.mean:.2f}", _pct_or_blank(summary.std), summary.n


def scratch_reference_lines(cells, groups):
    lines = []
    for p, dropout in cells:
        scratch = groups.get(("scratch", p, dropout))
        if scratch is None:
            lines.append(f"- p = {p:g}, dropout {dropout:g}: no standard scratch runs.")
        else:
            mean, std, n = _spread_cells(scratch)
            lines.append(f"- {p_label(scratch)}, dropout {dropout:g}: scratch {mean}% "
                         f"(std {std} pp, {plural(int(n), 'run')}).")
    return lines


def transfer_depth_section(report, depth, groups):
    report.add(f"## {DEPTH_SECTION}", "",
               "Final test accuracy of frozen and finetune runs by how many of the 0-5 net's "
               "first layers they copy (transfer_layers: 1 = conv1, 2 = conv1+conv2 as in the "
               "lab, 3 = conv1+conv2+dense128), all other settings the lab's. Only the "
               "(p, dropout) cells that hold runs at another depth than 2 are shown.", "")
    header = ("p", "dropout", "mode", "transfer_layers", "mean (%)", "std (pp)", "n")
    rows = [(f"{p:g}", f"{dropout:g}", mode, f"{layers} ({depth_name(layers)})",
             *_spread_cells(group))
            for (p, dropout, mode, layers), group in depth.groups.items()]
    report.add(*markdown_table(header, rows), "",
               "Standard scratch runs at the same p and dropout, for reference:", "",
               *scratch_reference_lines(depth.cells, groups), "",
               "Also as [transfer_depth.csv](transfer_depth.csv).", "")
    write_csv(report.path("transfer_depth.csv"),
              ("p", "n_train", "dropout", "mode", "transfer_layers", "mean_pct", "std_pp",
               "n_runs"),
              [(f"{p:g}", group.n_train, f"{dropout:g}", mode, layers,
                *_spread_csv_cells(group))
               for (p, dropout, mode, layers), group in depth.groups.items()])
    report.figure(plot_transfer_depth(depth, groups, report.out_dir),
                  "Final test accuracy (mean, error bar = std over seeds) vs layers copied "
                  "from the 0-5 net; horizontal line = standard scratch mean")


def lr_scale_section(report, scales, groups):
    report.add(f"## {LR_SCALE_SECTION}", "",
               "Final test accuracy of finetune runs whose copied layers (conv1+conv2) train at "
               "transferred_lr_scale times the learning rate of the other layers (1 = one "
               "learning rate, the lab's), all other settings the lab's. Only the "
               "(p, dropout) cells that hold runs at another scale than 1 are shown.", "")
    header = ("p", "dropout", "transferred_lr_scale", "mean (%)", "std (pp)", "n")
    rows = [(f"{p:g}", f"{dropout:g}", f"{scale:g}", *_spread_cells(group))
            for (p, dropout, _, scale), group in scales.groups.items()]
    report.add(*markdown_table(header, rows), "",
               "Standard scratch runs at the same p and dropout, for reference:", "",
               *scratch_reference_lines(scales.cells, groups), "",
               "Also as [transferred_lr_scale.csv](transferred_lr_scale.csv).", "")
    write_csv(report.path("transferred_lr_scale.csv"),
              ("p", "n_train", "dropout", "mode", "transferred_lr_scale", "mean_pct", "std_pp",
               "n_runs"),
              [(f"{p:g}", group.n_train, f"{dropout:g}", mode, f"{scale:g}",
                *_spread_csv_cells(group))
               for (p, dropout, mode, scale), group in scales.groups.items()])


# ---------------------------------------------------------------------------------------------
# Discussion: every sentence is a measured comparison

def lead_text(a, b):
    lead = mean_curve_lead(a, b)
    if lead is None:
        return "the mean curves share no steps"
    sign, step, first = lead
    if sign == 0:
        return "the mean curves end level"
    leader, trailer = (a.mode, b.mode) if sign > 0 else (b.mode, a.mode)
    if step == first:
        return f"{leader}'s mean curve is above {trailer}'s from the first evaluation " \
               f"({first:,} samples) on"
    return f"{leader}'s mean curve overtakes {trailer}'s for good at {step:,} samples"


def welch_text(test):
    if math.isnan(test.ci_low):
        return test.verdict
    ci = f"95% CI {signed(test.ci_low)} to {signed(test.ci_high)} pp"
    if math.isnan(test.pvalue):
        return f"{ci}, {test.verdict}"
    return f"{ci}, {p_clause(test.pvalue)}, {test.verdict}"


def winner_text(a_mode, b_mode, diff):
    if direction(diff) == 0:
        return f"{a_mode} and {b_mode} are level"
    leader, trailer = (a_mode, b_mode) if diff > 0 else (b_mode, a_mode)
    return f"{leader} is ahead of {trailer} by {abs(100 * diff):.2f} pp"


def pair_bullet(comparison, efficiency, areas):
    a, b, test = comparison.a, comparison.b, comparison.test
    text = (f"- {p_label(a)}: {a.mode} {pct(a.finals.mean())}% vs {b.mode} "
            f"{pct(b.finals.mean())}%, {winner_text(a.mode, b.mode, test.diff)} "
            f"({welch_text(test)}); {lead_text(a, b)}; area under the curve "
            f"{pct(areas[a.key])}% vs {pct(areas[b.key])}%")
    if efficiency is not None:
        text += (f"; scratch would need {efficiency.match.text()} images to match {a.mode} "
                 f"({ratio_text(efficiency)} its {a.n_train:,})")
    return text + "."


def pair_summary(mode_a, mode_b, picked):
    ahead = [c for c in picked if direction(c.test.diff) > 0]
    behind = [c for c in picked if direction(c.test.diff) < 0]
    level = len(picked) - len(ahead) - len(behind)
    largest = max(picked, key=lambda c: abs(c.test.diff))
    text = (f"- Overall {mode_a} is ahead of {mode_b} at {len(ahead)} of {len(picked)} "
            f"proportion(s) ({sum(c.test.significant for c in ahead)} significantly) and behind "
            f"at {len(behind)} ({sum(c.test.significant for c in behind)} significantly)")
    if level:
        text += f", level at {level}"
    if direction(largest.test.diff) == 0:
        return text + "."
    return (text + f"; the largest gap is at p = {largest.a.p:g}, where "
            f"{winner_text(mode_a, mode_b, largest.test.diff)}.")


def pair_discussion(mode_a, mode_b, dropout, comparisons, efficiencies, areas):
    picked = [c for c in comparisons if c.a.mode == mode_a and c.b.mode == mode_b
              and c.a.dropout == dropout]
    if not picked:
        return [f"- {mode_a} vs {mode_b} at dropout {dropout:g}: not compared (runs missing).",
                ""]
    by_group = {e.group.key: e for e in efficiencies}
    lines = [f"**{mode_a} vs {mode_b}, dropout {dropout:g}**", ""]
    lines += [pair_bullet(c, by_group.get(c.a.key) if mode_b == "scratch" else None, areas)
              for c in picked]
    return lines + [pair_summary(mode_a, mode_b, picked), ""]


def dropout_discussion(comparisons, areas):
    picked = [c for c in comparisons if c.a.mode == c.b.mode]
    if not picked:
        return [f"- Dropout {LAB_DROPOUT:g} vs 0: not compared (runs at one of the two "
                f"dropouts missing).", ""]
    lines = [f"**What dropout {LAB_DROPOUT:g} changes (same mode and p)**", ""]
    for c in picked:
        lines.append(f"- {c.a.mode}, {p_label(c.a)}: final accuracy {pct(c.b.finals.mean())}% "
                     f"-> {pct(c.a.finals.mean())}% ({pp(c.test.diff)}; {welch_text(c.test)}); "
                     f"area under the curve {pct(areas[c.b.key])}% -> {pct(areas[c.a.key])}%.")
    up = [c for c in picked if direction(c.test.diff) > 0]
    down = [c for c in picked if direction(c.test.diff) < 0]
    lines.append(f"- Dropout raises the mean final accuracy in {len(up)} of {len(picked)} "
                 f"(mode, p) cells ({sum(c.test.significant for c in up)} significantly) and "
                 f"lowers it in {len(down)} ({sum(c.test.significant for c in down)} "
                 f"significantly).")
    return lines + ordering_changes(comparisons) + [""]


def ordering_changes(comparisons):
    """Mode pairs whose order (ahead, behind or level) differs between dropout 0 and 0.5."""
    pairs = [c for c in comparisons if c.a.mode != c.b.mode]
    changed, kept = [], 0
    for c in pairs:
        base = find_comparison(pairs, (c.a.mode, c.a.p, NO_DROPOUT),
                               (c.b.mode, c.b.p, NO_DROPOUT))
        if c.a.dropout != LAB_DROPOUT or base is None:
            continue
        if direction(base.test.diff) != direction(c.test.diff):
            changed.append(f"{c.label} at p = {c.a.p:g} ({pp(base.test.diff)} without dropout, "
                           f"{pp(c.test.diff)} with)")
        else:
            kept += 1
    if not changed and not kept:
        return []
    if not changed:
        return [f"- Dropout keeps the order of every mode pair at every p ({kept} (pair, p) "
                f"cells compared)."]
    return [f"- Dropout changes the order of {len(changed)} of {len(changed) + kept} (pair, p) "
            f"cells: " + "; ".join(changed) + "."]


def depth_clause(mode, by_layers, scratch):
    """Which depth gave `mode` its best mean final accuracy, and how it compares to scratch."""
    means = {layers: float(group.finals.mean()) for layers, group in by_layers.items()}
    top = max(means.values())
    best = min(layers for layers, mean in means.items() if mean >= top - LEVEL)
    level = [layers for layers, mean in means.items() if layers != best and mean >= top - LEVEL]
    if len(means) == 1:
        text = (f"{mode} was run at transfer_layers {best} ({depth_name(best)}) only, "
                f"{pct(top)}%")
    else:
        text = (f"{mode} is best at transfer_layers {best} ({depth_name(best)}) with "
                f"{pct(top)}% (" + ", ".join(f"{layers}: {pct(means[layers])}%"
                                             for layers in sorted(means)) + ")")
        if level:
            text += f", level with transfer_layers {', '.join(str(k) for k in sorted(level))}"
    if scratch is None:
        return text + ", no standard scratch runs to compare with"
    test = welch_test(by_layers[best].finals, scratch.finals)
    scratch_mean = pct(scratch.finals.mean())
    if direction(test.diff) == 0:
        return text + f", level with scratch's {scratch_mean}% ({welch_text(test)})"
    relation = "ahead of" if test.diff > 0 else "behind"
    return (text + f", {relation} scratch's {scratch_mean}% by {abs(100 * test.diff):.2f} pp "
            f"({welch_text(test)})")


def depth_discussion(depth, groups):
    lines = [f"### {DEPTH_SECTION}", "",
             "Best number of copied layers (highest mean final accuracy; the fewer layers on a "
             "tie) per mode, against the standard scratch runs at the same p and dropout. The "
             "best depth is picked from these same runs, so its test against scratch is "
             "optimistic.", ""]
    for p, dropout in depth.cells:
        clauses, n_train = [], None
        for mode in TRANSFER_MODES:
            by_layers = depth.at(p, dropout, mode)
            if by_layers:
                n_train = next(iter(by_layers.values())).n_train
                clauses.append(depth_clause(mode, by_layers, groups.get(("scratch", p,
                                                                         dropout))))
        lines.append(f"- p = {p:g} ({n_train:,} images), dropout {dropout:g}: "
                     + "; ".join(clauses) + ".")
    return lines + [""]


def discussion_section(report, comparisons, efficiencies, areas, depth=None, groups=None):
    report.add("## Discussion", "", "Differences are first minus second, in percentage points "
               "(pp) of mean final test accuracy.", "")
    for assignment in ASSIGNMENTS:
        report.add(f"### Assignment {assignment.number}", "")
        for mode_a, mode_b in assignment.pairs:
            report.add(*pair_discussion(mode_a, mode_b, assignment.pair_dropout, comparisons,
                                        efficiencies, areas))
        if assignment.dropout_effect:
            report.add(*dropout_discussion(comparisons, areas))
    if depth is not None:
        report.add(*depth_discussion(depth, groups or {}))


def build_report(csv_path, out_dir, thresholds, command):
    """Read the CSV, write the whole report into out_dir; return the names of the files written.

    Raises ReportError (bad input, or an out_dir that is not an earlier report).
    """
    runs = load_results(csv_path)
    meta, meta_note = load_meta(csv_path)
    _check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".report-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp's 0700 would make the published report private
    try:
        files = _write_report(work, csv_path, runs, meta, meta_note, thresholds, command)
        _publish(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return files


def _write_report(out_dir, csv_path, runs, meta, meta_note, thresholds, command):
    report = Report(out_dir)
    # The main report: only runs at the lab's settings, so that no (mode, p, dropout) group
    # mixes, say, bfloat16 with float32 runs.
    groups = group_runs([run for run in runs if run.standard])
    comparisons = compare_groups(groups)
    efficiencies = data_efficiency(groups)
    areas = {key: summarize([curve_area(*r.test_curve) for r in g.runs]).mean
             for key, g in groups.items()}
    depth = vary(runs, "transfer_layers", TRANSFER_MODES)
    scales = vary(runs, "transferred_lr_scale", ("finetune",))
    elsewhere = {}
    for variation, section in ((scales, LR_SCALE_SECTION), (depth, DEPTH_SECTION)):
        if variation is not None:
            elsewhere.update(dict.fromkeys(variation.run_names, f"'{section}'"))
    header_section(report, command, csv_path, runs, meta, meta_note, elsewhere)
    if not groups:
        report.skip("no run in the CSV has the lab's standard settings, so the source, "
                    "assignment, curve, convergence, data-efficiency and statistics sections "
                    "are empty (the runs are listed above).")
    source_section(report, groups)
    report.add("## Spec check: >= 99% test accuracy", "", *(spec_check_lines(groups) or [
        "- No source runs and no scratch runs at p = 1 in the CSV: nothing to check."]), "")
    for assignment in ASSIGNMENTS:
        assignment_section(report, assignment, groups, comparisons)
    dropouts = sorted({g.dropout for g in groups.values() if g.mode in TARGET_MODES})
    ignored = [d for d in dropouts if d not in (NO_DROPOUT, LAB_DROPOUT)]
    if ignored:
        report.skip(f"dropout rate(s) {', '.join(f'{d:g}' for d in ignored)} are outside the "
                    f"assignments (0 and {LAB_DROPOUT:g}); they are left out of the assignment "
                    f"sections and the discussion but appear in the figures and the other "
                    f"tables.")
    if dropouts:
        report.add("## Learning curves", "")
        for dropout in dropouts:
            report.figure(plot_learning_curves(groups, dropout, out_dir),
                          f"Test accuracy during training, dropout {dropout:g} (y axis cut "
                          f"below the accuracies reached after the first tenth of training)")
        report.add("## Final-accuracy distributions", "")
        report.figure(plot_final_boxplots(groups, out_dir),
                      "Final test accuracy over seeds per p and mode (points = seeds)")
    else:
        report.skip("no 6-9 runs: no learning curves, box plots or assignment tables.")
    convergence_section(report, groups, thresholds)
    efficiency_section(report, groups, efficiencies)
    if depth is not None:
        transfer_depth_section(report, depth, groups)
    if scales is not None:
        lr_scale_section(report, scales, groups)
    if comparisons:
        report.add("## All statistical tests", "", *statistics_table(comparisons), "")
        write_statistics_csv(report, comparisons)
    discussion_section(report, comparisons, efficiencies, areas, depth, groups)
    if report.skipped:
        report.add("## Not computed", "", *(f"- {text}" for text in report.skipped), "")
    # report.md last: its presence marks a complete report.
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(report.lines).rstrip() + "\n")
    return sorted(report.files) + ["report.md"]


def _check_out_dir(out_dir):
    """Refuse to replace a directory that holds something other than an earlier report."""
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or (
            os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, "report.md")))):
        raise ReportError(f"--out={out_dir} exists and is not an earlier report (no report.md "
                          f"in it); choose a new directory or remove it")


def _publish(work, out_dir):
    """Move the finished report into place, replacing an earlier report only at the end."""
    _check_out_dir(out_dir)
    if not os.path.exists(out_dir):
        os.rename(work, out_dir)
        return
    old = tempfile.mkdtemp(prefix=".report-old-", dir=os.path.dirname(os.path.abspath(out_dir)))
    os.rename(out_dir, os.path.join(old, "report"))
    try:
        os.rename(work, out_dir)
    except OSError:
        os.rename(os.path.join(old, "report"), out_dir)
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)


def parse_thresholds(text):
    try:
        thresholds = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ReportError(f"--thresholds={text}: give accuracies as fractions separated by "
                          f"commas, e.g. {DEFAULT_THRESHOLDS}") from None
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        raise ReportError(f"--thresholds={text}: every threshold must be a fraction in (0, 1], "
                          f"e.g. {DEFAULT_THRESHOLDS}")
    return thresholds


def invoked_command(argv):
    return "python " + shlex.join(argv)


FLAGS = flags.FLAGS


def define_flags():
    # Defined only when run as a script: importing this module (tests, other tools that also
    # define --csv or --out) must not register duplicate absl flags.
    flags.DEFINE_string("csv", "results.csv", "Tidy results CSV from tools/export_csv.py.")
    flags.DEFINE_string("out", "report", "Directory to write the report into (replaced if it "
                        "holds an earlier report).")
    flags.DEFINE_string("thresholds", DEFAULT_THRESHOLDS,
                        "Test accuracies (fractions) for the samples-to-threshold table.")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {' '.join(argv[1:])}; use --csv=... --out=...",
              file=sys.stderr)
        return 1
    try:
        thresholds = parse_thresholds(FLAGS.thresholds)
        files = build_report(FLAGS.csv, FLAGS.out, thresholds, invoked_command(sys.argv))
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot write the report to {FLAGS.out}: {error}; check the path and "
              f"its permissions", file=sys.stderr)
        return 1
    print(f"wrote {os.path.join(FLAGS.out, 'report.md')} and {len(files) - 1} other files")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
