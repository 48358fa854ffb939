"""Statistics over seeds, NumPy and SciPy only: arrays in, named results out.

Accuracies are fractions here; the tables turn them into percent. One interval estimator
(`interval`, Student's t) serves every metric, and one test (`welch`) every difference: with
3 seeds a side a bootstrap has 10 distinct resamples and gives intervals that are too narrow.
"""

import dataclasses
import math
import warnings

import numpy as np
from scipy import optimize, stats

ALPHA, POWER = 0.05, 0.8
MAX_SEEDS = 1000  # the most seeds per side the power search considers
LEVEL = 1e-9  # accuracies closer than this are equal


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Mean over seeds, its 95% t interval, the sample std (ddof 1); NaN where n < 2."""
    mean: float
    low: float
    high: float
    std: float
    n: int


def interval(values):
    """The report's one interval estimator: mean and 95% t interval of the mean."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return Estimate(float(values.mean()) if n else math.nan, math.nan, math.nan, math.nan, n)
    mean, std = float(values.mean()), float(values.std(ddof=1))
    if std == 0:
        return Estimate(mean, mean, mean, 0.0, n)
    low, high = stats.t.interval(1 - ALPHA, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Estimate(mean, float(low), float(high), std, n)


@dataclasses.dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(a) - mean(b) with its 95% CI; NaN where it is undefined.
    `detectable`: the smallest difference these runs detect with probability POWER at ALPHA.
    `seeds`: seeds per side that detect `target` so, an estimate from the pooled spread."""
    diff: float
    low: float
    high: float
    df: float
    pvalue: float
    n_a: int
    n_b: int
    detectable: float = math.nan
    seeds: float = math.nan
    why_undefined: str = ""


def welch(a, b, target):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n_a, n_b, diff = len(a), len(b), float(a.mean() - b.mean())
    var_a, var_b = (0.0 if np.ptp(x) == 0 else float(x.var(ddof=1)) for x in (a, b))
    if min(n_a, n_b) < 2:
        return Welch(diff, *(math.nan,) * 4, n_a, n_b, why_undefined="fewer than 2 seeds a side")
    if var_a + var_b == 0:
        return Welch(diff, *(math.nan,) * 4, n_a, n_b, why_undefined="no spread in either group")
    with warnings.catch_warnings():
        # SciPy warns when one group's values are identical; the other's variance carries
        # the test, so the result is sound.
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        test = stats.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(1 - ALPHA)
    pooled = ((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2)
    return Welch(diff, float(ci.low), float(ci.high), float(test.df), float(test.pvalue), n_a,
                 n_b, detectable(var_a, var_b, n_a, n_b), seeds_to_detect(target, pooled))


def probability_of_improvement(a, b):
    """The share of seed pairs (one of a, one of b) in which a beats b, ties counting half:
    Mann-Whitney's U over n_a * n_b, as rliable defines it."""
    return float(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)))


def holm(pvalues):
    """Holm's step-down adjusted p-values (NaN stays NaN, and is not counted in the family)."""
    p = np.asarray(pvalues, dtype=float)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    steps = p[order] * (len(order) - np.arange(len(order)))
    adjusted = np.full(len(p), math.nan)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


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


def seeds_to_detect(diff, variance):
    """Seeds per side that detect `diff` with probability POWER if both sides have this
    variance; inf beyond MAX_SEEDS, NaN for no difference or no spread."""
    if abs(diff) < LEVEL or variance <= 0:
        return math.nan
    n = np.arange(2, MAX_SEEDS + 1)
    enough = np.flatnonzero(power(diff, variance, variance, n, n) >= POWER)
    return float(n[enough[0]]) if enough.size else math.inf


def test_images(accuracies, most=20_000):
    """The size of the test set these accuracies were measured on: the smallest count of
    images that makes every one of them a whole number of images (float32 rounding allowed);
    None if no count up to `most` does."""
    values = np.asarray(accuracies, dtype=float)[None, :]
    n = np.arange(1, most + 1)[:, None]
    whole = np.all(np.abs(values * n - np.round(values * n)) < 1e-3, axis=1)
    return int(n[whole.argmax(), 0]) if whole.any() else None


def images_to_match(n_trains, accuracies, target):
    """(relation, n): the smallest n_train at which accuracy reaches `target`, interpolated
    linearly in log(n_train): '<=' already at the smallest size, '~' between two sizes, '>' not
    even at the largest."""
    order = np.argsort(n_trains)
    ns, accs = np.asarray(n_trains, dtype=float)[order], np.asarray(accuracies)[order]
    if accs[0] >= target:
        return "<=", float(ns[0])
    for i in range(len(ns) - 1):
        if accs[i] < target <= accs[i + 1]:
            return "~", float(np.exp(np.interp(target, accs[i:i + 2], np.log(ns[i:i + 2]))))
    return ">", float(ns[-1])
