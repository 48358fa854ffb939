"""What the report measures on one run's test-accuracy curve: each metric a function of
(steps, accuracies), named once here. Analysis scores every metric for every run, estimates it
with the one interval estimator, and the curve-measures table gets a column block per metric,
so a new metric is one function and one entry in METRICS.
"""

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str  # CSV columns <key>_mean ... and the scores' key
    name: str  # the table's words
    of: Callable  # (steps, accuracies) -> float
    accuracy: bool = True  # a fraction shown in percent; else a count shown as is


def final(steps, accuracies):
    """The test accuracy at the last recorded step."""
    return float(accuracies[-1])


def area(steps, accuracies):
    """The area under the curve over its step range: the mean accuracy during training."""
    if len(steps) < 2:
        return float(accuracies[0])
    return float(np.trapezoid(accuracies, steps) / (steps[-1] - steps[0]))


def best(steps, accuracies):
    """The highest test accuracy the run reached at any evaluation."""
    return float(np.max(accuracies))


def to_99_of_final(steps, accuracies):
    """Examples seen until the run first reaches 99% of its own final accuracy: a speed of
    convergence that every run has (the first evaluation is its floor)."""
    return float(steps[np.flatnonzero(accuracies >= 0.99 * accuracies[-1])[0]])


METRICS = (
    Metric("final", "final accuracy (%)", final),
    Metric("area", "mean accuracy during training (%)", area),
    Metric("best", "best accuracy (%)", best),
    Metric("to99", "examples seen to 99% of the final accuracy", to_99_of_final, False),
)
BY_KEY = {m.key: m for m in METRICS}
