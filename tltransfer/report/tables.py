"""Each table defined once, as columns over rows, and rendered from that one definition to
markdown, CSV and LaTeX. A column's `get` gives the value in the table's units (percent,
percentage points, images); `fmt` turns it into display text for markdown and LaTeX, while the
CSV keeps the value itself (6 decimals). A missing value (None, NaN) is 'n/a', '--' or empty.
"""

import csv
import dataclasses
import io
import math
import re

from tltransfer.report.analysis import SPEC_ACCURACY

MISSING = "n/a"
LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
         "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
         "^": r"\textasciicircum{}"}


def latex_escape(text):
    """All ten of LaTeX's special characters, escaped in one pass."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: LATEX[m.group()], str(text))


def missing(value):
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(fraction):
    return None if missing(fraction) else 100 * fraction


def signed(x):
    """Signed to 2 decimals, never '-0.00'."""
    return f"{round(x, 2) + 0.0:+.2f}"


def pvalue(p):
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def seeds(n):
    return "> 1000" if math.isinf(n) else f"{n:.0f}"


two, count = "{:.2f}".format, "{:,.0f}".format


def value_text(x):
    return f"{x:g}" if isinstance(x, float) else str(x)


@dataclasses.dataclass(frozen=True)
class Column:
    header: str  # markdown and LaTeX
    key: str  # CSV
    get: object  # row -> value
    fmt: object = str  # value -> display text


@dataclasses.dataclass(frozen=True)
class Table:
    stem: str  # files <stem>.csv and <stem>.tex
    title: str
    columns: tuple
    rows: tuple
    text_columns: int = 1  # left-aligned in LaTeX; the rest are numbers

    def values(self):
        return [[c.get(row) for c in self.columns] for row in self.rows]

    def display(self, gap=MISSING):
        return [[gap if missing(v) else c.fmt(v) for c, v in zip(self.columns, row)]
                for row in self.values()]

    def markdown(self):
        return [f"**Table: {self.title}** ([CSV]({self.stem}.csv), [LaTeX]({self.stem}.tex))",
                "", "| " + " | ".join(c.header for c in self.columns) + " |",
                "|" + "---|" * len(self.columns),
                *("| " + " | ".join(row) + " |" for row in self.display()), ""]

    def csv(self):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(c.key for c in self.columns)
        writer.writerows(["" if missing(v) else round(v, 6) if isinstance(v, float) else v
                          for v in row] for row in self.values())
        return text.getvalue()

    def latex(self):
        align = "l" * self.text_columns + "r" * (len(self.columns) - self.text_columns)
        lines = [r"\begin{table}[ht]", r"\centering",
                 f"\\caption{{{latex_escape(self.title)}}}", f"\\begin{{tabular}}{{{align}}}",
                 r"\toprule", " & ".join(latex_escape(c.header) for c in self.columns) + r" \\",
                 r"\midrule", *(" & ".join(latex_escape(cell) for cell in row) + r" \\"
                                for row in self.display("--")),
                 r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        return "\n".join(lines)


def setting_column(setting):
    """The swept setting's value (a group's or a comparison's); 'any' for a mode that does not
    use the setting."""
    return (Column(setting, setting, lambda row: "any" if row.value is None
                   else value_text(row.value)),) if setting else ()


GROUP_COLUMNS = (Column("p", "p", lambda g: value_text(g.p)),
                 Column("n_train", "n_train", lambda g: g.n_train, count),
                 Column("mode", "mode", lambda g: g.mode),
                 Column("dropout", "dropout", lambda g: value_text(g.dropout)))


def accuracy(stem, title, groups, setting=None):
    """Final accuracy per group: mean, std, 95% CI, runs."""
    return Table(stem, title, setting_column(setting) + GROUP_COLUMNS + (
        Column("mean (%)", "mean_pct", lambda g: pct(g.summary.mean), two),
        Column("std (pp)", "std_pp", lambda g: pct(g.summary.std), two),
        Column("95% CI low (%)", "ci_low_pct", lambda g: pct(g.summary.ci_low), two),
        Column("95% CI high (%)", "ci_high_pct", lambda g: pct(g.summary.ci_high), two),
        Column("runs", "n_runs", lambda g: g.summary.n)), tuple(groups), 4 + bool(setting))


def statistics(stem, title, comparisons, setting=None):
    """Welch's tests (first minus second) with their power."""
    return Table(stem, title, setting_column(setting) + (
        Column("comparison", "comparison", lambda c: c.label),
        Column("p", "p", lambda c: value_text(c.a.p)),
        Column("dropout", "dropout", lambda c: " vs ".join(  # two where they differ
            dict.fromkeys(value_text(g.dropout) for g in (c.a, c.b)))),
        Column("difference (pp)", "diff_pp", lambda c: pct(c.test.diff), signed),
        Column("95% CI low (pp)", "ci_low_pp", lambda c: pct(c.test.ci_low), signed),
        Column("95% CI high (pp)", "ci_high_pp", lambda c: pct(c.test.ci_high), signed),
        Column("df", "df", lambda c: c.test.df, lambda x: f"{x:.1f}"),
        Column("p-value", "pvalue", lambda c: c.test.pvalue, pvalue),
        Column("runs", "runs", lambda c: f"{c.test.n_a} vs {c.test.n_b}"),
        Column("verdict", "verdict", lambda c: c.test.verdict),
        Column("detectable (pp)", "detectable_pp", lambda c: pct(c.test.detectable), two),
        Column("seeds per side to decide", "seeds_to_decide", lambda c: c.test.seeds, seeds)),
        tuple(comparisons), 3 + bool(setting))


def source(groups):
    return Table("source_accuracy", "Final test accuracy of the 0-5 source nets", (
        Column("dropout", "dropout", lambda g: value_text(g.dropout)),
        Column("per seed (%)", "per_seed_pct", lambda g: ", ".join(
            f"seed {r.seed}: {100 * r.final:.2f}" for r in g.runs)),
        Column("mean (%)", "mean_pct", lambda g: pct(g.summary.mean), two),
        Column("std (pp)", "std_pp", lambda g: pct(g.summary.std), two),
        Column("runs", "n_runs", lambda g: g.summary.n),
        Column(f">= {100 * SPEC_ACCURACY:g}%", "meets_spec",
               lambda g: "yes" if g.summary.mean >= SPEC_ACCURACY else "no")),
        tuple(groups), 2)


def convergence(groups, thresholds):
    """Samples to each threshold (mean over the runs that reached it), and the area."""
    reach_columns = []
    for t in thresholds:
        reach_columns += [
            Column(f"to {100 * t:g}% (samples)", f"samples_mean_{t:g}",
                   lambda g, t=t: g.reach(t)[0], count),
            Column(f"{100 * t:g}% reached", f"reached_{t:g}",
                   lambda g, t=t: "{1}/{2}".format(*g.reach(t)))]
    return Table("convergence", "Convergence: training samples to each test accuracy, and "
                 "the area under the learning curve", GROUP_COLUMNS + tuple(reach_columns) + (
        Column("area (%)", "area_mean_pct", lambda g: pct(g.area.mean), two),
        Column("area std (pp)", "area_std_pp", lambda g: pct(g.area.std), two)),
        tuple(sorted(groups, key=lambda g: (g.dropout, g.p))), 4)


def efficiency(rows):
    relation = {"<=": "at most", "~": "about", ">": "more than"}
    return Table("data_efficiency", "Target images a scratch net needs to match each "
                 "transfer group's mean final accuracy", (
        Column("transfer mode", "mode", lambda e: e.group.mode),
        Column("dropout", "dropout", lambda e: value_text(e.group.dropout)),
        Column("p", "p", lambda e: value_text(e.group.p)),
        Column("n_train", "n_train", lambda e: e.group.n_train, count),
        Column("transfer mean (%)", "transfer_mean_pct", lambda e: pct(e.group.summary.mean),
               two),
        Column("scratch images", "relation", lambda e: relation[e.relation]),
        Column("to match", "scratch_images", lambda e: e.n, count),
        Column("ratio to n_train", "ratio", lambda e: e.ratio, lambda x: f"{x:.3g}x")),
        tuple(rows), 3)
