"""Everything the report states, computed once into named objects that tables, figures and
prose only read.

The interface is rliable's score shape: `Scores` holds, per configuration (a `Cell`), the
seeds' runs, their test-accuracy curves as one array (seeds x steps) and every metric of
metrics.METRICS as an array over seeds, with its interval estimate. Runs are never pooled
across settings: the main tables hold the runs at the baseline; a run off it in one swept
setting (beyond mode, P, dropout, seed) is in that setting's sensitivity analysis; one off it
in more is listed as left out. Every test of the report is one family for Holm's correction.
"""

import collections
import dataclasses
import math

import numpy as np

from tltransfer.config import LAB_AXES, TARGET_MODES
from tltransfer.report import stats
from tltransfer.report.metrics import METRICS
from tltransfer.report.results import DEFAULTS, mode_rank

PAIRS = (("frozen", "scratch"), ("finetune", "scratch"), ("finetune", "frozen"))
GAINS = PAIRS[:2]  # transfer against scratch
NO_DROPOUT, LAB_DROPOUT = 0.0, 0.5
SPEC_ACCURACY = 0.99  # the lab expects this of the 0-5 net and of 6-9 scratch at P = 1
TARGET = 0.005  # the default difference of interest: seeds per side to detect it
LEVEL = 1e-4  # differences below this (0.01 pp, under half an image of 3,969) are level
NOTABLE = 1e-3  # a fall of the curve below 0.1 pp (4 images of 3,969) is not worth a line


@dataclasses.dataclass(frozen=True)
class Question:
    """One of the lab's assignments: it tests the pairs among its modes at its dropouts that
    no earlier one tests, and with two dropouts also dropout LAB_DROPOUT against none."""
    number: int
    title: str
    modes: tuple
    dropouts: tuple


QUESTIONS = (
    Question(1, "frozen transfer against training from scratch", ("scratch", "frozen"),
             (NO_DROPOUT,)),
    Question(2, "fine-tuned transfer added", TARGET_MODES, (NO_DROPOUT,)),
    Question(3, f"dropout {LAB_DROPOUT:g} on layers 4 and 5", TARGET_MODES,
             (NO_DROPOUT, LAB_DROPOUT)))


class Cell(collections.namedtuple("Cell", "mode p dropout value", defaults=(None,))):
    """A configuration: mode, P, dropout, and in a sensitivity analysis the swept setting's
    value (None where the mode does not use the setting)."""


def cell_order(cell):
    return mode_rank(cell.mode), cell.p, cell.dropout, cell.value is not None, str(cell.value)


@dataclasses.dataclass
class Scores:
    """Per Cell: its runs (by seed), target training images, the steps all seeds share, the
    curves there (seeds x steps), each metric over seeds and its interval estimate."""
    runs: dict
    n_train: dict
    steps: dict
    curves: dict
    metrics: dict  # metric key -> {Cell: ndarray over seeds}
    estimates: dict  # metric key -> {Cell: stats.Estimate}

    @property
    def finals(self):
        return self.metrics["final"]

    def cells(self, *modes):
        return [c for c in self.runs if not modes or c.mode in modes]


def score(grouped):
    """{Cell: [Run]} -> Scores, cells in report order."""
    runs = {c: sorted(grouped[c], key=lambda r: (r.seed, r.name))
            for c in sorted(grouped, key=cell_order)}
    steps = {c: shared_steps(rs) for c, rs in runs.items()}
    curves = {c: np.array([at_steps(r, steps[c]) for r in rs]) for c, rs in runs.items()}
    metrics = {m.key: per_seed(m, runs) for m in METRICS}
    estimates = {key: {c: stats.interval(v) for c, v in by_cell.items()}
                 for key, by_cell in metrics.items()}
    return Scores(runs, {c: rs[0].n_train for c, rs in runs.items()}, steps, curves, metrics,
                  estimates)


def at_steps(run, steps):
    return run.test_curve[1][np.searchsorted(run.test_curve[0], steps)]


def per_seed(metric, runs):
    """{Cell: the metric of each seed's run}."""
    return {c: np.array([metric.of(*r.test_curve) for r in rs]) for c, rs in runs.items()}


def shared_steps(runs):
    steps = runs[0].test_curve[0]
    for run in runs[1:]:
        steps = np.intersect1d(steps, run.test_curve[0])
    return steps


def group_runs(runs, value=lambda run: None):
    """{Cell: [Run]} of runs that share every setting but the seed."""
    by_config, cells = collections.defaultdict(list), {}
    for run in runs:
        key = tuple(run.config[f] for f in run.relevant() if f != "seed")
        by_config[key].append(run)
        cells[key] = Cell(run.mode, run.config["p"], run.config["dropout"], value(run))
    return {cells[key]: members for key, members in by_config.items()}


@dataclasses.dataclass
class Comparison:
    """a - b in final accuracy: two modes at one P and dropout, or two dropouts of one mode."""
    a: Cell
    b: Cell
    question: int  # the lab's assignment it answers; 0 for none
    test: stats.Welch
    improvement: float  # probability that a run of a beats one of b
    adjusted: float = math.nan  # Holm's p over the report's family

    @property
    def kind(self):
        return "dropout" if self.a.mode == self.b.mode else "modes"

    @property
    def sides(self):
        if self.kind == "dropout":
            return f"dropout {self.a.dropout:g}", f"dropout {self.b.dropout:g}"
        return self.a.mode, self.b.mode

    @property
    def label(self):
        return (f"{self.a.mode}: " if self.kind == "dropout" else "") + " - ".join(self.sides)

    @property
    def significant(self):
        return self.adjusted < stats.ALPHA

    @property
    def sign(self):
        return 0 if abs(self.test.diff) < LEVEL else int(np.sign(self.test.diff))


def question_of(a, b):
    for q in QUESTIONS:
        if {a.mode, b.mode} <= set(q.modes) and {a.dropout, b.dropout} <= set(q.dropouts):
            return q.number
    return 0


def compare(scores, a, b, target):
    finals_a, finals_b = scores.finals[a], scores.finals[b]
    return Comparison(a, b, question_of(a, b), stats.welch(finals_a, finals_b, target),
                      stats.probability_of_improvement(finals_a, finals_b))


def comparisons(scores, target, pairs=PAIRS, dropout_effect=True):
    """The mode pairs at each P and dropout, then dropout LAB_DROPOUT against none per mode
    and P; ordered by question, pair and P."""
    found = []
    for c in scores.cells(*TARGET_MODES):
        for first, second in pairs:
            other = c._replace(mode=second)
            if c.mode == first and other in scores.runs:
                found.append(compare(scores, c, other, target))
        without = c._replace(dropout=NO_DROPOUT)
        if dropout_effect and c.dropout == LAB_DROPOUT and without in scores.runs:
            found.append(compare(scores, c, without, target))
    return sorted(found, key=lambda x: (x.question, x.kind, x.a.dropout, pair_rank(x),
                                        x.a.p, str(x.a.value)))


def pair_rank(comparison):
    pair = (comparison.a.mode, comparison.b.mode)
    return PAIRS.index(pair) if pair in PAIRS else mode_rank(comparison.a.mode)[0]


@dataclasses.dataclass(frozen=True)
class Efficiency:
    """Target images a scratch net (same dropout) needs to match a transfer cell whose
    difference from scratch is significant: relation '<=', '~' or '>' (not reached)."""
    gain: Comparison
    relation: str
    images: float
    n_train: int

    @property
    def ratio(self):
        return math.nan if self.relation == ">" else self.images / self.n_train


def efficiencies(scores, tests):
    found = []
    for gain in tests:
        scratch = [c for c in scores.cells("scratch") if c.dropout == gain.a.dropout]
        if gain.kind == "modes" and gain.b.mode == "scratch" and gain.significant \
                and len(scratch) > 1:
            relation, images = stats.images_to_match(
                [scores.n_train[c] for c in scratch],
                [scores.estimates["final"][c].mean for c in scratch],
                scores.estimates["final"][gain.a].mean)
            found.append(Efficiency(gain, relation, images, scores.n_train[gain.a]))
    return found


@dataclasses.dataclass(frozen=True)
class Shape:
    """What a cell's final accuracy hides: a 'peak before the end' (the mean curve's highest
    point, above its end) or a 'drop after the start' (its lowest point after the first
    evaluation, below that evaluation). The steps and mean accuracies at the high and the low,
    and the fall per seed (accuracy at high_step minus at low_step) estimated."""
    cell: Cell
    kind: str
    high_step: int
    high: float
    low_step: int
    low: float
    end: float
    fall: stats.Estimate

    @property
    def beyond_spread(self):
        """The fall is larger than the seeds' spread: its 95% interval excludes zero."""
        return self.fall.low > 0

    @property
    def notable(self):
        """Beyond the spread and at least NOTABLE: worth a line in report.md."""
        return self.beyond_spread and self.fall.mean >= NOTABLE


def shapes_of(scores, cell):
    steps, curves = scores.steps[cell], scores.curves[cell]
    mean, found = curves.mean(axis=0), []
    if len(steps) < 3:
        return found
    peak, trough = int(mean.argmax()), 1 + int(mean[1:].argmin())
    candidates = [("drop after the start", 0, trough)]
    if peak > 0:  # a peak at the first evaluation is a drop after the start never made good
        candidates.insert(0, ("peak before the end", peak, len(steps) - 1))
    for kind, high, low in candidates:
        if mean[high] - mean[low] >= LEVEL:
            found.append(Shape(cell, kind, int(steps[high]), float(mean[high]), int(steps[low]),
                               float(mean[low]), float(mean[-1]),
                               stats.interval(curves[:, high] - curves[:, low])))
    return found


@dataclasses.dataclass(frozen=True)
class Stretch:
    """Consecutive P at which one kind of difference keeps its direction (+1, -1, or 0 for
    mixed or level): the range of its differences, and which of them are significant."""
    ps: tuple
    direction: int
    low: float
    high: float
    comparisons: tuple
    significant: tuple


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One question's comparisons of one pair (e.g. frozen - scratch), read across P."""
    question: int
    sides: tuple
    dropout: float  # the pair's dropout; None for the dropout comparisons
    comparisons: tuple
    stretches: tuple


def direction(items):
    signs = {c.sign for c in items}
    return signs.pop() if len(signs) == 1 else 0


def pattern(question, sides, dropout, items):
    by_p = collections.defaultdict(list)
    for c in items:
        by_p[c.a.p].append(c)
    stretches = []
    for p in sorted(by_p):
        here, sign = by_p[p], direction(by_p[p])
        if stretches and stretches[-1]["direction"] == sign:
            stretches[-1]["items"] += here
            stretches[-1]["ps"] += (p,)
        else:
            stretches.append({"direction": sign, "items": list(here), "ps": (p,)})
    return Pattern(question, sides, dropout, tuple(items), tuple(map(stretch, stretches)))


def stretch(found):
    diffs = [c.test.diff for c in found["items"]]
    return Stretch(found["ps"], found["direction"], min(diffs), max(diffs),
                   tuple(found["items"]), tuple(c for c in found["items"] if c.significant))


def patterns(tests):
    """One Pattern per (question, pair, dropout of a mode pair), in the comparisons' order."""
    grouped = collections.defaultdict(list)
    for c in tests:
        dropout = c.a.dropout if c.kind == "modes" else None
        grouped[(c.question, c.sides, dropout)].append(c)
    return [pattern(*key, items) for key, items in grouped.items()]


@dataclasses.dataclass(frozen=True)
class Conclusion:
    """A significant gain of the main tables, and what becomes of it at each other value of a
    swept setting: 'holds', 'same direction, not significant', 'level', 'reversed', 'not run'."""
    gain: Comparison
    outcomes: dict

    @property
    def holds(self):
        return all(o == "holds" for o in self.outcomes.values())


def outcome(main, test):
    if test is None:
        return "not run"
    if test.sign != main.sign:
        return "reversed" if test.sign else "level"
    return "holds" if test.significant else "same direction, not significant"


@dataclasses.dataclass
class Sensitivity:
    """Runs at the baseline but for one setting, in the (P, dropout) cells where it takes
    another value than the baseline's."""
    setting: str
    values: list  # the values other than the baseline's
    scores: Scores  # cells with `value` set; None for a mode that does not use the setting
    gains: list  # Comparisons of GAINS at each value
    conclusions: list = dataclasses.field(default_factory=list)


def sensitivity(setting, runs, baseline, target):
    """`runs`: those at the baseline but for `setting`."""
    uses = [r for r in runs if setting in r.relevant()]
    values = sorted({r.config[setting] for r in uses} - {baseline.values[setting]})
    cells = {(r.config["p"], r.config["dropout"]) for r in uses
             if r.config[setting] != baseline.values[setting]}
    grouped, gains = {}, []
    value_of = lambda r: r.config[setting] if setting in r.relevant() else None  # noqa: E731
    for value in values:
        here = [r for r in runs if (r.config["p"], r.config["dropout"]) in cells]
        at = group_runs([r for r in here if value_of(r) in (None, value)], value_of)
        # A mode that does not use the setting is the main tables' runs again: left out.
        grouped.update({c: rs for c, rs in at.items()
                        if c.mode in TARGET_MODES and c.value is not None})
        here = score(at)
        gains += [c for c in comparisons(here, target, GAINS, False) if c.a.value is not None]
    return Sensitivity(setting, values, score(grouped), gains)


def conclude(s, main):
    tests = {(c.a.value, c.a._replace(value=None), c.b.mode): c for c in s.gains}
    where = {(c.p, c.dropout) for c in s.scores.cells()}
    gains = [c for c in main if (c.a.mode, c.b.mode) in GAINS and c.significant]
    outcomes = lambda c: {v: outcome(c, tests.get((v, c.a, c.b.mode))) for v in s.values}  # noqa
    s.conclusions = [Conclusion(c, outcomes(c)) for c in gains if (c.a.p, c.a.dropout) in where]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Each setting's value in the main tables, and for one not at its default, why."""
    values: dict
    reasons: dict


def baseline_of(runs):
    """A field's default if any run has it; else the value with the most runs, ties going to
    the one nearest the default (the first in order for text)."""
    values, reasons = {}, {}
    for field, default in DEFAULTS.items():
        seen = collections.Counter(r.config[field] for r in runs if field in r.relevant())
        if default in seen or not seen or field in LAB_AXES:
            values[field] = default
            continue
        most = max(seen.values())
        tied = sorted(v for v, n in seen.items() if n == most)
        values[field] = min(tied, key=lambda v: abs(v - default)) \
            if isinstance(default, (int, float)) else tied[0]
        reasons[field] = (most, tied)
    return Baseline(values, reasons)


def differences(run, baseline):
    """((field, value), ...) where this run leaves the baseline, beyond the lab's axes."""
    return tuple((f, run.config[f]) for f in run.relevant()
                 if f not in LAB_AXES and run.config[f] != baseline.values[f])


@dataclasses.dataclass
class Analysis:
    runs: list
    absent: list  # Config fields with no CSV column, read as their defaults
    ignored: list  # names of runs of an unknown mode or without test accuracy
    baseline: Baseline
    scores: Scores  # the main tables' cells
    target: float  # the difference of interest
    comparisons: list
    patterns: list
    efficiencies: list
    shapes: list  # every target cell's peak before the end and drop after the start

    @property
    def headline_shapes(self):
        """The largest notable shape of each kind."""
        first = {}
        for found in self.shapes:
            if found.notable:
                first.setdefault(found.kind, found)
        return list(first.values())
    sensitivities: list  # one per swept setting
    left_out: dict  # differences from the baseline -> names of the runs in no table
    test_images: int  # the 6-9 test set's size, inferred from the accuracies; None if unknown


def analyze(results, target=TARGET):
    known = [r for r in results.runs if r.mode in ("source", *TARGET_MODES)]
    tested = [r for r in known if r.test_curve is not None]
    baseline = baseline_of(tested)
    swept = [f for f in DEFAULTS if f not in LAB_AXES and len(values_of(f, tested)) > 1]
    off = collections.defaultdict(list)
    for run in tested:
        off[differences(run, baseline)].append(run)
    scores = score(group_runs(off.pop((), [])))
    main = comparisons(scores, target)
    sensitivities = [sensitivity(f, off_only_in(f, tested, baseline), baseline, target)
                     for f in swept]
    family = main + [c for s in sensitivities for c in s.gains]
    for c, adjusted in zip(family, stats.holm([c.test.pvalue for c in family])):
        c.adjusted = adjusted
    for s in sensitivities:
        conclude(s, main)
    shapes = sorted((x for c in scores.cells(*TARGET_MODES) for x in shapes_of(scores, c)),
                    key=lambda x: -x.fall.mean)
    targets = [scores.finals[c] for c in scores.cells(*TARGET_MODES)]
    left_out = {d: names(rs) for d, rs in off.items() if len(d) > 1}
    ignored = names(r for r in results.runs if r not in tested)
    return Analysis(
        results.runs, results.absent, ignored,
        baseline, scores, target, main, patterns(main), efficiencies(scores, main), shapes,
        sensitivities, left_out, stats.test_images(np.concatenate(targets)) if targets else None)


def names(runs):
    return [r.name for r in runs]


def values_of(field, runs):
    return {r.config[field] for r in runs if field in r.relevant()}


def off_only_in(field, runs, baseline):
    """The runs at the baseline in every setting but `field`."""
    return [r for r in runs if set(differences(r, baseline)) <= {(field, r.config[field])}]
