"""report.md and the files beside it, in the report's order: findings first, then the two
tables they cite, the figures, the curves, the student's discussion, methods and provenance
last. The figures module draws panels; this module lays them out and saves them. The report
is built in a temporary directory beside --out and renamed into place at the end, so a failed
run never leaves a complete-looking report behind.
"""

import os
import shutil
import tempfile

from tltransfer.cli import plural
from tltransfer.config import TARGET_MODES
from tltransfer.report import analysis, figures, prose, results, tables
from tltransfer.report.results import ReportError


class Document:
    """report.md's lines and the files written beside it."""

    def __init__(self, out_dir):
        self.out_dir, self.lines, self.files, self.skipped = out_dir, [], [], []

    def add(self, *lines):
        self.lines.extend(lines)

    def skip(self, text):
        self.skipped.append(text)

    def write(self, name, text):
        self.files.append(name)
        with open(os.path.join(self.out_dir, name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def table(self, table, inline=True):
        """Writes the table's CSV and LaTeX; in report.md the table itself, or a link."""
        self.write(f"{table.stem}.csv", table.csv())
        self.write(f"{table.stem}.tex", table.latex())
        if inline:
            self.add(*table.markdown())
        else:
            self.add(f"*{table.title}*: [CSV]({table.stem}.csv), [LaTeX]({table.stem}.tex).", "")

    def figure(self, fig, stem, caption):
        """Saves PNG and PDF without timestamps, and links them."""
        for extension, metadata in (("png", {"Software": None}),
                                    ("pdf", {"CreationDate": None, "Producer": None})):
            self.files.append(f"{stem}.{extension}")
            fig.savefig(os.path.join(self.out_dir, self.files[-1]), dpi=150, metadata=metadata,
                        bbox_inches="tight")
        figures.plt.close(fig)
        self.add(f"![{caption}]({stem}.png)", "", f"*{caption}* ([PDF]({stem}.pdf))", "")


def p_title(a, p):
    n_train = {a.scores.n_train[c] for c in a.scores.cells(*TARGET_MODES) if c.p == p}
    return f"P = {p:g} ({', '.join(f'{n:,}' for n in sorted(n_train))} images)"


def differences(doc, a):
    ps = sorted({c.a.p for c in a.comparisons})
    if not ps:
        return doc.skip("no two target configurations to compare: no differences figure.")
    most = max(sum(c.a.p == p for c in a.comparisons) for p in ps)
    fig, axes = figures.grid(len(ps), width=4.6, height=0.5 + 0.32 * most)
    for ax, p in zip(axes, ps):
        rows = [forest_row(c) for c in a.comparisons if c.a.p == p]
        figures.forest(ax, rows, p_title(a, p))
    doc.figure(fig, "differences", "Differences a - b in final accuracy with 95% CIs; a "
               "filled dot is significant after Holm's correction")


def forest_row(c):
    label = c.label + (f", dropout {c.a.dropout:g}" if c.kind == "modes" else "")
    return (label, c.test.diff, c.test.low, c.test.high, c.significant,
            figures.MODE_COLORS[c.a.mode])


def accuracy(doc, a):
    doc.add("## Final accuracy", "")
    targets = a.scores.cells(*TARGET_MODES)
    if targets:
        doc.table(tables.accuracy(a.scores))
        fig, (ax,) = figures.grid(1, width=6.2, height=4.4)
        dropouts = sorted({c.dropout for c in targets})
        lines = sorted({(c.mode, c.dropout) for c in targets}, key=lambda line: (
            TARGET_MODES.index(line[0]), line[1]))
        # Side by side around each size (a log axis: a factor), so the lines' bars show.
        figures.accuracy_points(ax, a.scores, targets, lambda c: a.scores.n_train[c] * 1.06 ** (
            lines.index((c.mode, c.dropout)) - (len(lines) - 1) / 2),
                                lambda d: figures.STYLES[dropouts.index(d) % 4])
        figures.log_sizes(ax, sorted({a.scores.n_train[c] for c in targets}))
        ax.set_xlabel("target training images (log scale)")
        ax.legend()
        doc.figure(fig, "final_accuracy", "Final test accuracy against training images: dots "
                   "are seeds, bars the 95% CI of the mean")
    else:
        doc.skip("no 6-9 runs: no accuracy table, comparisons or curves.")
    if a.scores.cells("source"):
        doc.table(tables.source(a.scores))


def comparisons(doc, a):
    if not a.comparisons:
        return
    doc.add("## Comparisons", "", "Column A names the lab's assignment each row answers. "
            "Holm p is the p-value adjusted over all the report's tests; P(a > b) the share "
            "of seed pairs in which a beats b.", "")
    doc.table(tables.comparisons("comparisons", prose.COMPARISONS, a.comparisons, a.target))


def curves(doc, a):
    targets = a.scores.cells(*TARGET_MODES)
    sources = a.scores.cells("source")
    if not targets and not sources:
        return
    doc.add("## Learning curves", "")
    for dropout in sorted({c.dropout for c in targets}):
        ps = sorted({c.p for c in targets if c.dropout == dropout})
        fig, axes = figures.grid(len(ps))
        for ax, p in zip(axes, ps):
            figures.learning_curves(ax, a.scores, [c for c in targets if (c.p, c.dropout) ==
                                                   (p, dropout)], p_title(a, p))
        figures.legend(fig, axes)
        doc.figure(fig, f"learning_curves_drop{dropout:g}", f"Test accuracy during training, "
                   f"dropout {dropout:g}: mean over seeds with its 95% CI (y axis cut below "
                   "the accuracies after the first tenth of training)")
    if sources:
        fig, (ax,) = figures.grid(1, width=5.4, height=3.8)
        styles = {c: figures.STYLES[i % 4] for i, c in enumerate(sources)}
        figures.spec_line(figures.learning_curves(ax, a.scores, sources, "0-5 source nets",
                                                  styles))
        ax.legend(loc="lower right")
        doc.figure(fig, "source_learning_curve", "0-5 source nets: test accuracy (digits 0-5) "
                   "during training, mean with its 95% CI")
    shapes(doc, a)


def shapes(doc, a):
    doc.add("## What the curves show", "", "The final accuracies hide what happens on the way: "
            "a peak well before the end (overfitting), or a drop after the start (with "
            "transfer: losing what the first evaluation had). Below, those larger than the "
            "seed spread: the fall's 95% CI over seeds excludes zero.", "")
    clear = [s for s in a.shapes if s.notable]
    table = tables.shapes(clear)
    doc.write("curve_shapes.csv", tables.shapes(a.shapes).csv())
    if clear:
        doc.add(*table.markdown()[2:-1], "", f"All {len(a.shapes)}, within the spread too: "
                "[CSV](curve_shapes.csv).", "")
    else:
        doc.add("None is larger than the seed spread: [CSV](curve_shapes.csv).", "")
    doc.table(tables.curve_measures(a.scores), inline=False)


def efficiency(doc, a):
    if not a.scores.cells("scratch"):
        return
    doc.add("## Data efficiency", "")
    if a.efficiencies:
        doc.table(tables.efficiency(a.efficiencies))
    else:
        doc.add("No difference between transfer and scratch is significant after correction, "
                "so no saving of images is claimed.", "")


def sensitivity(doc, a, s):
    doc.add(f"## Other {s.setting}", "", f"Runs at the main tables' settings but for "
            f"{s.setting} = {', '.join(map(tables.value_text, s.values))}, in the (P, dropout) "
            "cells where it takes those values.", "")
    if not s.scores.runs:
        return doc.add(f"No 6-9 run differs from the main tables in {s.setting} alone.", "")
    doc.table(tables.curve_measures(
        s.scores, s.setting, ("final",), f"Final test accuracy (%) at other {s.setting}, mean "
        "over seeds (95% CI); the CSV holds every curve measure"))
    if s.gains:
        doc.table(tables.comparisons(f"gains_{s.setting}", prose.gains_title(s.setting),
                                     s.gains, a.target, s.setting))
    doc.add(*prose.conclusion_lines(s))
    base = a.baseline.values[s.setting]
    values = [base, *s.values]
    where = {(c.p, c.dropout) for c in s.scores.cells()}
    main = [c for c in a.scores.cells(*TARGET_MODES) if (c.p, c.dropout) in where]
    merged = analysis.score({**s.scores.runs,
                             **{c._replace(value=base): a.scores.runs[c] for c in main}})
    ps = sorted({c.p for c in merged.cells()})
    fig, axes = figures.grid(len(ps))
    for ax, p in zip(axes, ps):
        figures.accuracy_points(ax, merged, [c for c in merged.cells() if c.p == p],
                                lambda c: values.index(c.value), lambda d: "-")
        ax.set_xticks(range(len(values)), [tables.value_text(v) for v in values])
        ax.set(title=p_title(a, p), xlabel=s.setting)
    figures.legend(fig, axes)
    doc.figure(fig, f"sensitivity_{s.setting}", f"Final test accuracy at each {s.setting} "
               f"(first: the main tables'); dots are seeds, bars 95% CIs")


def write(doc, a, csv_path, meta, note, command):
    doc.add("# Transfer learning on MNIST: results report", "",
            f"{plural(len(a.runs), 'run')} from `{prose.shown(csv_path)}`. P is the proportion "
            "of the 6-9 training images used; p is a p-value.", "", *prose.findings(a))
    differences(doc, a)
    accuracy(doc, a)
    comparisons(doc, a)
    curves(doc, a)
    efficiency(doc, a)
    for s in a.sensitivities:
        sensitivity(doc, a, s)
    doc.add(*prose.DISCUSSION, *prose.methods(a), "## Provenance and settings", "",
            f"- Made by `{prose.shown(command)}`.", *prose.provenance(csv_path, meta, note),
            *prose.settings_lines(a), "")
    if doc.skipped:
        doc.add("## Not computed", "", *(f"- {text}" for text in doc.skipped), "")


def build(csv_path, out_dir, target=analysis.TARGET, command="python -m tltransfer.report"):
    """Reads the CSV and writes the whole report into out_dir; returns the file names.
    Raises ReportError (bad input, or an out_dir that is not an earlier report)."""
    loaded = results.load(csv_path)
    meta, note = results.load_meta(csv_path)
    check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".report-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp's 0700 would make the published report private
    try:
        doc = Document(work)
        write(doc, analysis.analyze(loaded, target), csv_path, meta, note, command)
        doc.write("report.md", "\n".join(doc.lines).rstrip() + "\n")  # last: a whole report
        publish(work, out_dir, parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(doc.files)


def publish(work, out_dir, parent):
    """Renames the finished report into place; an earlier one is replaced only now, and put
    back if that fails."""
    check_out_dir(out_dir)
    old = tempfile.mkdtemp(prefix=".report-old-", dir=parent)
    kept = os.path.join(old, "report")
    try:
        if os.path.exists(out_dir):
            os.rename(out_dir, kept)
        os.rename(work, out_dir)
    except OSError:
        if os.path.exists(kept):
            os.rename(kept, out_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def check_out_dir(out_dir):
    """Refuses to replace a directory that holds something other than an earlier report, or a
    file."""
    if os.path.isfile(out_dir) or (os.path.exists(out_dir) and not os.path.isdir(out_dir)):
        raise ReportError(f"--out={out_dir} is a file, not a directory; give a directory for "
                          "the report, e.g. --out=report")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(
            os.path.join(out_dir, "report.md")):
        raise ReportError(f"--out={out_dir} exists and is not an earlier report (no report.md "
                          "in it); choose a new directory or remove it")
