"""Everything the report states, computed once into plain objects that tables, figures and
prose only read. A group holds the seeds of one configuration: runs are never pooled across
settings. The main tables hold the runs at the baseline; a run off it in one swept setting
(beyond mode, p, dropout, seed) is in that setting's sensitivity analysis; one off it in more
is listed as left out.
"""

import collections
import dataclasses

import numpy as np

from tltransfer.config import LAB_AXES, TARGET_MODES, TRANSFER_MODES
from tltransfer.report import stats
from tltransfer.report.results import DEFAULTS, mode_rank

PAIRS = (("frozen", "scratch"), ("finetune", "scratch"), ("finetune", "frozen"))
GAINS = PAIRS[:2]  # transfer against scratch
NO_DROPOUT, LAB_DROPOUT = 0.0, 0.5
SPEC_ACCURACY = 0.99  # the lab expects this of the 0-5 net and of 6-9 scratch at p = 1
# The lab's assignments: title, and the modes and dropouts of its table. Each tests the PAIRS
# among its modes at its dropouts that no earlier one tests and, with two dropouts, dropout
# LAB_DROPOUT against none.
ASSIGNMENTS = (("scratch vs frozen transfer, no dropout", ("scratch", "frozen"), (NO_DROPOUT,)),
               ("fine-tuned transfer added, no dropout", TARGET_MODES, (NO_DROPOUT,)),
               (f"dropout {LAB_DROPOUT:g} on layers 4 and 5, compared with none", TARGET_MODES,
                (NO_DROPOUT, LAB_DROPOUT)))


class Group:
    """The runs (one per seed) of one configuration, and their summaries."""

    def __init__(self, runs, value=None):
        self.runs = sorted(runs, key=lambda r: (r.seed, r.name))
        self.value = value  # a swept setting's value; None where the mode does not use it
        self.mode, self.p, self.dropout = self.key = runs[0].mode, runs[0].p, runs[0].dropout
        self.n_train = runs[0].n_train
        self.finals = np.array([r.final for r in self.runs])
        self.summary = stats.summarize(self.finals)
        self.area = stats.summarize([stats.curve_area(*r.test_curve) for r in self.runs])

    def mean_curve(self):
        """(steps, mean, min, max) of test accuracy over seeds at the steps all runs share."""
        steps = self.runs[0].test_curve[0]
        for run in self.runs[1:]:
            steps = np.intersect1d(steps, run.test_curve[0])
        values = np.array([r.test_curve[1][np.searchsorted(r.test_curve[0], steps)]
                           for r in self.runs])
        return steps, values.mean(axis=0), values.min(axis=0), values.max(axis=0)

    def reach(self, threshold):
        """(mean samples to threshold over the runs that reached it or NaN, reached, runs)."""
        steps = [stats.first_reach(*r.test_curve, threshold) for r in self.runs]
        hit = [s for s in steps if s is not None]
        return float(np.mean(hit)) if hit else float("nan"), len(hit), len(steps)


def group_runs(runs, value=lambda run: None):
    """{(mode, p, dropout): Group} of runs that share every other setting, sorted."""
    by_config = collections.defaultdict(list)
    for run in runs:
        by_config[tuple(run.config[f] for f in run.relevant() if f != "seed")].append(run)
    groups = [Group(members, value(members[0])) for members in by_config.values()]
    return {g.key: g for g in sorted(groups, key=lambda g: (mode_rank(g.mode), g.p, g.dropout))}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """a vs b (two modes at one p and dropout, or two dropouts of one mode), tested; lead:
    (sign, step from which it holds, first step) of the mean curves, None if none shared."""
    a: Group
    b: Group
    test: stats.Welch
    lead: tuple
    value: object = None  # in a sensitivity analysis: the swept setting's value

    @property
    def sign(self):
        return stats.direction(self.test.diff)

    @property
    def label(self):
        if self.a.mode == self.b.mode:
            return f"{self.a.mode}: dropout {self.a.dropout:g} vs {self.b.dropout:g}"
        return f"{self.a.mode} vs {self.b.mode}"


def compare(a, b, value=None):
    (steps_a, mean_a, _, _), (steps_b, mean_b, _, _) = a.mean_curve(), b.mean_curve()
    steps = np.intersect1d(steps_a, steps_b)
    lead = (*stats.lasting_lead(steps, mean_a[np.searchsorted(steps_a, steps)],
                                mean_b[np.searchsorted(steps_b, steps)]), int(steps[0])) \
        if steps.size else None
    return Comparison(a, b, stats.welch(a.finals, b.finals), lead, value)


def comparisons(groups, pairs=PAIRS, dropout_effect=True, value=None):
    """The mode pairs per (p, dropout), then dropout 0.5 vs 0 per (mode, p)."""
    found = [compare(g, groups[(second, g.p, g.dropout)], value) for g in groups.values()
             for first, second in pairs if g.mode == first and (second, *g.key[1:]) in groups]
    found.sort(key=lambda c: (c.a.p, c.a.dropout, PAIRS.index((c.a.mode, c.b.mode))))
    return found + [compare(g, groups[(g.mode, g.p, NO_DROPOUT)]) for g in sorted(
        groups.values(), key=lambda g: (g.p, mode_rank(g.mode)))
        if dropout_effect and g.mode in TARGET_MODES and g.dropout == LAB_DROPOUT
        and (g.mode, g.p, NO_DROPOUT) in groups]


def split(items):
    """How comparisons split: ahead, behind (each also: significantly), level, the largest."""
    count = collections.Counter((c.sign, c.test.significant) for c in items)
    return dict(n=len(items), up=count[1, True] + count[1, False], up_sig=count[1, True],
                down=count[-1, True] + count[-1, False], down_sig=count[-1, True],
                level=count[0, True] + count[0, False],
                largest=max(items, key=lambda c: abs(c.test.diff)) if items else None)


@dataclasses.dataclass
class Assignment:
    number: int
    title: str
    absent: list  # (mode, dropout) of its table without runs
    groups: list  # its accuracy table's rows
    comparisons: list  # its statistics table's rows, in the order of the main comparisons
    pairs: list  # (mode a, mode b, dropout, [Comparisons], split) of each pair it tests
    dropout_effect: list  # dropout LAB_DROPOUT vs none, same mode and p (its third assignment)


def assignments(groups, main):
    tested, found = set(), []
    for number, (title, modes, dropouts) in enumerate(ASSIGNMENTS, start=1):
        pairs = [(a, b, d) for d in dropouts for a, b in PAIRS
                 if {a, b} <= set(modes) and (a, b, d) not in tested]
        tested.update(pairs)
        effect = [c for c in main if c.a.mode == c.b.mode] if len(dropouts) > 1 else []
        of = {pair: [c for c in main if (c.a.mode, c.b.mode, c.a.dropout) == pair]
              for pair in pairs}
        found.append(Assignment(
            number, title, [(m, d) for m in modes for d in dropouts if (m, d) not in
                            {(g.mode, g.dropout) for g in groups.values()}],
            sorted((g for g in groups.values() if g.mode in modes and g.dropout in dropouts),
                   key=lambda g: (g.p, mode_rank(g.mode), g.dropout)),
            [c for c in main if (c.a.mode, c.b.mode, c.a.dropout) in of or c in effect],
            [(*pair, items, split(items)) for pair, items in of.items()], effect))
    return found


# Scratch images (same dropout) needed to match a transfer group's mean: stats.Match's
# relation and n, and n over the group's own images.
Efficiency = collections.namedtuple("Efficiency", "group relation n ratio")


def efficiencies(groups):
    rows = []
    for g in groups.values():
        scratch = [s for s in groups.values() if s.mode == "scratch" and s.dropout == g.dropout]
        if g.mode in TRANSFER_MODES and scratch:
            match = stats.images_to_match([s.n_train for s in scratch],
                                          [s.summary.mean for s in scratch], g.summary.mean)
            rows.append(Efficiency(g, *match, match.n / g.n_train))
    return sorted(rows, key=lambda e: (mode_rank(e.group.mode), e.group.p, e.group.dropout))


@dataclasses.dataclass
class Sensitivity:
    setting: str
    values: list
    groups: dict  # (value, mode, p, dropout) -> Group; value None: the mode does not use it
    gains: list  # Comparisons of GAINS at each value, p and dropout
    conclusions: list  # (significant main gain, {value: outcome}, holds at every value)


def outcome(main, test):
    if test is None:
        return "not run"
    if stats.direction(test.diff) != main.sign:
        return "reversed" if stats.direction(test.diff) else "level"
    return "holds" if test.significant else "same direction, not significant"


def sensitivity(setting, runs, baseline, main):
    """`runs`: those at the baseline but for `setting`."""
    uses = [r for r in runs if setting in r.relevant()]
    values = sorted({r.config[setting] for r in uses})
    cells = {(r.p, r.dropout) for r in uses if r.config[setting] != baseline[setting]}
    groups, gains = {}, []
    for value in values:
        at = group_runs([r for r in runs if (r.p, r.dropout) in cells and (
            setting not in r.relevant() or r.config[setting] == value)],
                        lambda r: r.config[setting] if setting in r.relevant() else None)
        groups.update({(g.value, *key): g for key, g in at.items() if g.mode in TARGET_MODES})
        gains += [c for c in comparisons(at, GAINS, False, value) if c.a.value is not None]
    tests = {(c.value, c.a.key, c.b.key): c.test for c in gains}
    conclusions = []
    for c in main:
        if (c.a.mode, c.b.mode) in GAINS and c.test.significant and c.a.key[1:] in cells \
                and (None, *c.a.key) not in groups:
            at = {v: outcome(c, tests.get((v, c.a.key, c.b.key))) for v in values}
            conclusions.append((c, at, all(o == "holds" for o in at.values())))
    order = lambda item: (*item[0][2:], mode_rank(item[0][1]), item[0][0] is not None,  # noqa
                          str(item[0][0]))
    return Sensitivity(setting, values, dict(sorted(groups.items(), key=order)), gains,
                       conclusions)


def baseline_of(runs):
    """Each field's value in the main tables: its default if any run has it, else its most
    common value."""
    baseline = {}
    for field, default in DEFAULTS.items():
        seen = collections.Counter(r.config[field] for r in runs if field in r.relevant())
        baseline[field] = default if default in seen or not seen else seen.most_common(1)[0][0]
    return baseline


def differences(run, baseline):
    """((field, value), ...) where this run leaves the baseline, beyond the lab's axes."""
    return tuple((f, run.config[f]) for f in run.relevant()
                 if f not in LAB_AXES and run.config[f] != baseline[f])


@dataclasses.dataclass
class Findings:
    """What the key findings rest on, picked from the main comparisons."""
    best: Comparison = None  # the largest significant gain of transfer over scratch
    efficiency: Efficiency = None  # the scratch images that would match it
    stops: tuple = None  # (p, gains there): from p on no gain is significant, best's dropout
    hurts: list = ()  # gains significantly below zero
    finetune_frozen: list = ()  # finetune vs frozen at best's dropout, smallest and largest p
    open: list = ()  # comparisons left open ("not significant")
    detectable: tuple = ()  # (smallest, largest) difference the open ones could detect
    seeds: tuple = ()  # (fewest, most) seeds per side that would decide them
    dropout: dict = None  # split() of dropout 0.5 vs 0


def findings(main, efficiencies_):
    left = [c for c in main if c.test.verdict == "not significant"]
    seeds = [c.test.seeds for c in left if not np.isnan(c.test.seeds)] or [np.nan]
    detectable = [c.test.detectable for c in left] or [np.nan]
    found = Findings(open=left, detectable=(min(detectable), max(detectable)),
                     seeds=(min(seeds), max(seeds)),
                     dropout=split([c for c in main if c.a.mode == c.b.mode]))
    gains = [c for c in main if (c.a.mode, c.b.mode) in GAINS]
    won = [c for c in gains if c.test.significant and c.sign > 0]
    if won:
        found.best = best = max(won, key=lambda c: c.test.diff)
        found.efficiency = next((e for e in efficiencies_ if e.group is best.a), None)
        same = [c for c in gains if c.a.dropout == best.a.dropout]
        later = [p for p in sorted({c.a.p for c in same})
                 if not any(c in won for c in same if c.a.p >= p)]
        found.stops = (later[0], [c for c in same if c.a.p == later[0]]) if later else None
        found.hurts = [c for c in gains if c.test.significant and c.sign < 0]
        pair = [c for c in main if (c.a.mode, c.b.mode) == PAIRS[2]
                and c.a.dropout == best.a.dropout]
        found.finetune_frozen = pair[:1] + pair[1:][-1:]
    return found


@dataclasses.dataclass
class Analysis:
    runs: list
    baseline: dict
    groups: dict  # the main tables' groups, (mode, p, dropout) -> Group
    comparisons: list
    assignments: list
    efficiencies: list
    thresholds: list
    sensitivities: list  # one per swept setting
    left_out: dict  # differences from the baseline -> names of the runs in no table
    findings: Findings


def analyze(runs, thresholds):
    tested = [r for r in runs if r.test_curve is not None]
    baseline = baseline_of(tested)
    swept = [f for f in DEFAULTS if f not in LAB_AXES
             and len({r.config[f] for r in tested if f in r.relevant()}) > 1]
    off = collections.defaultdict(list)
    for run in tested:
        off[differences(run, baseline)].append(run)
    groups = group_runs(off.pop((), []))
    main, found = comparisons(groups), efficiencies(groups)
    sensitivities = [sensitivity(f, [r for r in tested if set(differences(r, baseline)) <=
                                     {(f, r.config[f])}], baseline, main) for f in swept]
    return Analysis(runs, baseline, groups, main, assignments(groups, main), found, thresholds,
                    sensitivities, {d: [r.name for r in rs] for d, rs in off.items()
                                    if len(d) > 1}, findings(main, found))
