"""Each table defined once, as columns over rows, and rendered from that one definition to
markdown, CSV and LaTeX; and the number formats every other module uses. A column's `get`
gives the value in the table's units (percent, percentage points, images); `fmt` turns it into
display text for markdown and LaTeX, while the CSV keeps the value itself (6 decimals). A
missing value (None, NaN) is 'n/a', '--' or empty.
"""

import csv
import dataclasses
import io
import math
import re

from tltransfer.config import TARGET_MODES
from tltransfer.report import stats
from tltransfer.report.analysis import SPEC_ACCURACY, Cell
from tltransfer.report.metrics import METRICS

MISSING = "n/a"
LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
         "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
         "^": r"\textasciicircum{}"}
RELATION = {"<=": "at most", "~": "about", ">": "not reached beyond"}


def latex_escape(text):
    """All ten of LaTeX's special characters, escaped in one pass."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: LATEX[m.group()], str(text))


def missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(fraction):
    """A fraction in percent (None stays None)."""
    return None if missing(fraction) else 100 * fraction


def two(x):
    return f"{x:.2f}"


def signed(x):
    """Signed to 2 decimals, never '-0.00'."""
    return f"{round(x, 2) + 0.0:+.2f}"


def pvalue(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def count(n):
    return f"{n:,.0f}"


def significant_digits(n, digits=2):
    """A count to `digits` significant digits: 176 -> '180', 4,190 -> '4,200'."""
    return count(float(f"{n:.{digits}g}"))


def seeds(n):
    return f"> {stats.MAX_SEEDS}" if math.isinf(n) else f"{n:.0f}"


def value_text(x):
    """A setting's value as typed; the empty text (e.g. --data's shipped MNIST) as ''."""
    return f"{x:g}" if isinstance(x, float) else str(x) or "''"


def interval_text(low, high, fmt=two):
    return f"{fmt(low)} to {fmt(high)}"


@dataclasses.dataclass(frozen=True)
class Column:
    header: str  # markdown and LaTeX
    key: str  # CSV
    get: object  # row -> value
    fmt: object = str  # value -> display text
    shown: bool = True  # in markdown and LaTeX; the CSV has every column


def csv_value(value):
    if missing(value):
        return ""
    return round(value, 6) if isinstance(value, float) else value


@dataclasses.dataclass(frozen=True)
class Table:
    stem: str  # files <stem>.csv and <stem>.tex
    title: str
    columns: tuple
    rows: tuple
    text_columns: int = 1  # left-aligned in LaTeX; the rest are numbers

    def display(self, gap=MISSING):
        shown = [c for c in self.columns if c.shown]
        return [self.texts(row, shown, gap) for row in self.rows]

    def texts(self, row, columns, gap):
        return [gap if missing(v) else c.fmt(v) for c, v in zip(columns, self.values(row, columns))]

    def values(self, row, columns):
        return [c.get(row) for c in columns]

    def headers(self):
        return [c.header for c in self.columns if c.shown]

    def markdown(self):
        return [f"**Table: {self.title}** ([CSV]({self.stem}.csv), [LaTeX]({self.stem}.tex))",
                "", "| " + " | ".join(self.headers()) + " |", "|" + "---|" * len(self.headers()),
                *("| " + " | ".join(row) + " |" for row in self.display()), ""]

    def csv(self):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(c.key for c in self.columns)
        for row in self.rows:
            writer.writerow(map(csv_value, self.values(row, self.columns)))
        return text.getvalue()

    def latex(self):
        count_ = len(self.headers())
        align = "l" * self.text_columns + "r" * (count_ - self.text_columns)
        lines = [r"\begin{table}[ht]", r"\centering",
                 f"\\caption{{{latex_escape(self.title)}}}", f"\\begin{{tabular}}{{{align}}}",
                 r"\toprule", " & ".join(map(latex_escape, self.headers())) + r" \\", r"\midrule",
                 *(" & ".join(map(latex_escape, row)) + r" \\" for row in self.display("--")),
                 r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        return "\n".join(lines)


def estimate_columns(header, key, estimate, accuracy=True, shown=True):
    """Mean and 95% CI of an Estimate (row -> Estimate): one cell in markdown and LaTeX (if
    `shown`), three CSV columns."""
    scale = pct if accuracy else (lambda x: x)
    fmt = two if accuracy else count

    def cell(row):
        e = estimate(row)
        if e is None or missing(e.mean):
            return None
        return fmt(scale(e.mean)) + ("" if missing(e.low) else
                                     f" ({interval_text(scale(e.low), scale(e.high), fmt)})")
    return (Column(header, f"{key}_cell", cell, shown=shown),
            Column("", f"{key}_mean", lambda r: scale(getattr(estimate(r), "mean", None)),
                   shown=False),
            Column("", f"{key}_ci_low", lambda r: scale(getattr(estimate(r), "low", None)),
                   shown=False),
            Column("", f"{key}_ci_high", lambda r: scale(getattr(estimate(r), "high", None)),
                   shown=False))


def accuracy(scores):
    """The main table: P and dropout down, the target modes across, mean final accuracy and
    its 95% CI."""
    rows = sorted({(c.p, c.dropout) for c in scores.cells(*TARGET_MODES)})
    modes = [m for m in TARGET_MODES if scores.cells(m)]
    n_train = {(c.p, c.dropout): scores.n_train[c] for c in scores.cells(*TARGET_MODES)}
    finals = scores.estimates["final"]

    def seeds_of(row):  # one number where every mode has as many seeds
        return "/".join(dict.fromkeys(str(finals[Cell(m, *row)].n) for m in modes
                                      if Cell(m, *row) in finals))
    columns = (Column("P", "p", lambda r: value_text(r[0])),
               Column("images", "n_train", lambda r: n_train[r], count),
               Column("dropout", "dropout", lambda r: value_text(r[1])))
    for mode in modes:
        columns += estimate_columns(f"{mode} (%)", mode,
                                    lambda r, m=mode: finals.get(Cell(m, *r)))
    return Table("accuracy", "Final test accuracy (%), mean over seeds (95% CI)",
                 columns + (Column("seeds", "seeds", seeds_of),), tuple(rows), 3)


def source(scores):
    cells = scores.cells("source")
    finals = scores.estimates["final"]
    return Table("source_accuracy", "0-5 source nets: final test accuracy on digits 0-5 (%)", (
        Column("dropout", "dropout", lambda c: value_text(c.dropout)),
        *estimate_columns("mean (95% CI)", "final", lambda c: finals[c]),
        Column("seeds", "seeds", lambda c: finals[c].n),
        Column(f">= {100 * SPEC_ACCURACY:g}%", "meets_spec",
               lambda c: "yes" if finals[c].mean >= SPEC_ACCURACY else "no")), tuple(cells), 1)


def setting_column(setting):
    return (Column(setting, setting, lambda row: value_text(row.a.value)),) if setting else ()


def difference_cell(c):
    if missing(c.test.low):
        return f"{signed(100 * c.test.diff)} ({c.test.why_undefined})"
    ci = interval_text(100 * c.test.low, 100 * c.test.high, signed)
    return f"{signed(100 * c.test.diff)} ({ci})"


def comparisons(stem, title, tests, target, setting=None):
    """Welch's tests of a - b with Holm's adjusted p, the probability of improvement and the
    power figures."""
    return Table(stem, title, setting_column(setting) + (
        Column("A", "assignment", lambda c: c.question or "", str, shown=not setting),
        Column("a - b", "comparison", lambda c: c.label),
        Column("P", "p", lambda c: value_text(c.a.p)),
        Column("dropout", "dropout", lambda c: value_text(c.a.dropout) if c.kind == "modes"
               else f"{c.a.dropout:g} - {c.b.dropout:g}"),
        Column("difference (pp), 95% CI", "diff_cell", difference_cell),
        Column("", "diff_pp", lambda c: pct(c.test.diff), shown=False),
        Column("", "ci_low_pp", lambda c: pct(c.test.low), shown=False),
        Column("", "ci_high_pp", lambda c: pct(c.test.high), shown=False),
        Column("", "df", lambda c: c.test.df, shown=False),
        Column("p", "pvalue", lambda c: c.test.pvalue, pvalue),
        Column("Holm p", "holm_pvalue", lambda c: c.adjusted, pvalue),
        Column("P(a > b)", "prob_improvement", lambda c: c.improvement, two),
        Column("detectable (pp)", "detectable_pp", lambda c: pct(c.test.detectable), two),
        Column(f"seeds for {100 * target:g} pp (est.)", "seeds_for_target",
               lambda c: c.test.seeds, seeds)), tuple(tests), 3 + bool(setting))


def efficiency(rows):
    return Table("data_efficiency", "Target images a scratch net needs to match a transfer "
                 "mode whose difference from scratch is significant after correction", (
        Column("mode", "mode", lambda e: e.gain.a.mode),
        Column("P", "p", lambda e: value_text(e.gain.a.p)),
        Column("dropout", "dropout", lambda e: value_text(e.gain.a.dropout)),
        Column("images", "n_train", lambda e: e.n_train, count),
        Column("scratch needs", "relation", lambda e: RELATION[e.relation]),
        Column("images", "scratch_images", lambda e: e.images, significant_digits),
        Column("ratio", "ratio", lambda e: e.ratio, lambda x: f"{x:.2g}x")), tuple(rows), 3)


def shapes(rows):
    return Table("curve_shapes", "Peaks before the end and drops after the start of the mean "
                 "learning curves", (
        Column("mode", "mode", lambda s: s.cell.mode),
        Column("P", "p", lambda s: value_text(s.cell.p)),
        Column("dropout", "dropout", lambda s: value_text(s.cell.dropout)),
        Column("shape", "shape", lambda s: s.kind),
        Column("high at (examples)", "high_step", lambda s: s.high_step, count),
        Column("high (%)", "high_pct", lambda s: pct(s.high), lambda x: f"{x:.1f}"),
        Column("low at (examples)", "low_step", lambda s: s.low_step, count),
        Column("fall (pp), 95% CI over seeds", "fall_cell", lambda s: f"{100 * s.fall.mean:.2f}"
               + ("" if missing(s.fall.low) else
                  f" ({interval_text(100 * s.fall.low, 100 * s.fall.high)})")),
        Column("", "fall_pp", lambda s: pct(s.fall.mean), shown=False),
        Column("", "fall_ci_low_pp", lambda s: pct(s.fall.low), shown=False),
        Column("", "fall_ci_high_pp", lambda s: pct(s.fall.high), shown=False),
        Column("back by the end (pp)", "recovery_pp", lambda s: pct(s.end - s.low), two),
        Column("beyond seed spread", "beyond_spread",
               lambda s: "yes" if s.beyond_spread else "no", shown=False)), tuple(rows), 4)


def curve_measures(scores, setting=None, shown=None,
                   title="Measures of the test-accuracy curves, mean over seeds (95% CI)"):
    """Every metric of metrics.METRICS for every cell: mean and 95% CI over seeds; markdown
    and LaTeX show the metrics whose keys are in `shown` (all by default)."""
    columns = (*((Column(setting, setting, lambda c: value_text(c.value)),) if setting else ()),
               Column("mode", "mode", lambda c: c.mode),
               Column("P", "p", lambda c: value_text(c.p) if c.mode != "source" else ""),
               Column("dropout", "dropout", lambda c: value_text(c.dropout)),
               Column("images", "n_train", lambda c: scores.n_train[c], count))
    for metric in METRICS:
        columns += estimate_columns(metric.name, metric.key,
                                    lambda c, k=metric.key: scores.estimates[k][c],
                                    metric.accuracy, shown is None or metric.key in shown)
    return Table(f"curve_measures{'_' + setting if setting else ''}", title,
                 columns + (Column("seeds", "seeds", lambda c: len(scores.runs[c])),),
                 tuple(scores.cells()), 4 + bool(setting))
