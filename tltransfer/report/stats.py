"""Statistics over seeds and measures of a learning curve: NumPy and SciPy only.

Accuracies are fractions here; the tables turn them into percent.
"""

import collections
import dataclasses
import math
import warnings

import numpy as np
from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.8
MIN_SEEDS = 3  # fewer runs a side: "too few seeds to tell"
MAX_SEEDS = 1000  # the most seeds per side the power search considers
LEVEL = 1e-9  # accuracies closer than this are equal


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and 95% t interval of the mean; NaN where n < 2."""
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
    low, high = stats.t.interval(1 - ALPHA, n - 1, loc=mean, scale=std / math.sqrt(n)) \
        if std > 0 else (mean, mean)
    return Summary(mean, std, float(low), float(high), n)


@dataclasses.dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(a) - mean(b), with its power: `detectable` is the smallest
    difference these runs detect with probability POWER at ALPHA; `seeds` how many seeds per
    side would detect the observed difference (for a comparison left open; NaN otherwise)."""
    diff: float
    ci_low: float
    ci_high: float
    df: float
    pvalue: float
    n_a: int
    n_b: int
    verdict: str
    detectable: float = math.nan
    seeds: float = math.nan

    @property
    def significant(self):
        return self.verdict == "significant"


def welch(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n_a, n_b, diff = len(a), len(b), float(a.mean() - b.mean())
    var_a, var_b = (0.0 if np.ptp(x) == 0 else float(x.var(ddof=1)) for x in (a, b))
    too_few = "too few seeds to tell" if min(n_a, n_b) < MIN_SEEDS else ""
    if min(n_a, n_b) < 2 or var_a + var_b == 0:
        return Welch(diff, *(math.nan,) * 4, n_a, n_b,
                     too_few or "test undefined: zero variance in both groups")
    with warnings.catch_warnings():
        # SciPy warns when one group's values are identical; the other's variance carries
        # the test, so the result is sound.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        test = stats.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(1 - ALPHA)
    verdict = too_few or ("significant" if test.pvalue < ALPHA else "not significant")
    seeds = seeds_to_detect(diff, var_a, var_b) if verdict != "significant" else math.nan
    return Welch(diff, float(ci.low), float(ci.high), float(test.df), float(test.pvalue), n_a,
                 n_b, verdict, detectable(var_a, var_b, n_a, n_b), seeds)


def power(diff, var_a, var_b, n_a, n_b):
    """Power of the two-sided Welch test at ALPHA against a true difference `diff`: the
    statistic follows a noncentral t with Welch's df and noncentrality diff / its SE."""
    se_a, se_b = var_a / n_a, var_b / n_b
    df = (se_a + se_b) ** 2 / (se_a ** 2 / (n_a - 1) + se_b ** 2 / (n_b - 1))
    critical = stats.t.ppf(1 - ALPHA / 2, df)
    noncentrality = abs(diff) / np.sqrt(se_a + se_b)
    lower = stats.nct.cdf(-critical, df, noncentrality)  # NaN where it underflows to 0
    return stats.nct.sf(critical, df, noncentrality) + np.nan_to_num(lower)


def detectable(var_a, var_b, n_a, n_b):
    """The smallest difference detected with probability POWER by n_a vs n_b runs."""
    se = math.sqrt(var_a / n_a + var_b / n_b)
    return float(optimize.brentq(lambda d: power(d, var_a, var_b, n_a, n_b) - POWER, 0, 20 * se))


def seeds_to_detect(diff, var_a, var_b):
    """Seeds per side that detect `diff` with probability POWER (the spreads as measured);
    NaN for no difference, inf beyond MAX_SEEDS."""
    if abs(diff) < LEVEL:
        return math.nan
    n = np.arange(2, MAX_SEEDS + 1)
    enough = np.flatnonzero(power(diff, var_a, var_b, n, n) >= POWER)
    return float(n[enough[0]]) if enough.size else math.inf


def direction(diff):
    """+1, -1 or 0 (level): differences below LEVEL are float rounding, not a lead."""
    return 0 if abs(diff) < LEVEL else (1 if diff > 0 else -1)


def first_reach(steps, values, threshold):
    """The first step at which values >= threshold, or None when never."""
    hits = np.flatnonzero(np.asarray(values) >= threshold)
    return int(steps[hits[0]]) if hits.size else None


def curve_area(steps, values):
    """Area under the learning curve over its step range: the mean accuracy along training."""
    if len(steps) < 2:
        return float(values[0])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def lasting_lead(steps, a, b):
    """(sign of a - b at the last step, first step from which that sign holds for good)."""
    sign = np.array([direction(d) for d in np.asarray(a) - np.asarray(b)])
    if sign[-1] == 0:
        return 0, None
    other = np.flatnonzero(sign != sign[-1])
    return int(sign[-1]), int(steps[other[-1] + 1] if other.size else steps[0])


# Images a scratch net needs to reach an accuracy: relation '<=' (already at the smallest size
# measured), '~' (interpolated) or '>' (not even at the largest).
Match = collections.namedtuple("Match", "relation n")


def images_to_match(n_trains, accuracies, target):
    """Interpolates accuracy linearly in log(n_train): the smallest n reaching `target`."""
    order = np.argsort(n_trains)
    ns, accs = np.asarray(n_trains, dtype=float)[order], np.asarray(accuracies)[order]
    if accs[0] >= target:
        return Match("<=", float(ns[0]))
    for i in range(len(ns) - 1):
        if accs[i] < target <= accs[i + 1]:
            return Match("~", float(np.exp(np.interp(target, accs[i:i + 2],
                                                      np.log(ns[i:i + 2])))))
    return Match(">", float(ns[-1]))
