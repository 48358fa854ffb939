"""The report's figures, the only module that imports matplotlib. Each function draws on the
`ax` it is given and returns it; the document lays out the panels and saves the files.

Conventions: colour = mode, line style = dropout; the one uncertainty shown is the 95% CI of
the mean over seeds (the report's one interval estimator); a panel with nothing to show says
so; text is at least 9 pt at the size the figure is saved.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from tltransfer.report import stats  # noqa: E402
from tltransfer.report.analysis import SPEC_ACCURACY  # noqa: E402

MODE_COLORS = {"source": "C7", "scratch": "C0", "frozen": "C1", "finetune": "C2"}
STYLES = ("-", "--", ":", "-.")
FONT = 9
plt.rcParams.update({"font.size": FONT, "legend.fontsize": FONT, "axes.titlesize": FONT + 1})


def grid(count, ncols=2, width=4.2, height=3.2, title=""):
    """A figure of `count` panels, `ncols` across; the unused ones hidden."""
    ncols = min(ncols, count)
    rows = -(-count // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(width * ncols, height * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    return fig, list(axes.ravel()[:count])


def legend(fig, axes):
    """One legend below the panels, each label once, in the order first drawn."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), frameon=False, loc="outside lower center",
                   ncol=min(3, len(entries)))
    return fig


def nothing(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def band(curves):
    """(mean, low, high) in percent at each step of curves (seeds x steps): the mean and its
    95% CI, which is the mean itself where there is one seed."""
    estimates = [stats.interval(column) for column in np.asarray(curves).T]
    mean = 100 * np.array([e.mean for e in estimates])
    low, high = (100 * np.array([getattr(e, side) for e in estimates]) for side in ("low", "high"))
    return mean, np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high)


def curve(ax, steps, curves, label, color, style="-"):
    """Mean test accuracy over seeds with its 95% CI band; returns the band."""
    mean, low, high = band(curves)
    ax.plot(steps, mean, color=color, linestyle=style, label=label, linewidth=1.4)
    ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    return low, high


def zoom(ax, bands):
    """Leaves out the first tenth of training's low accuracies, so later differences show."""
    lows = np.concatenate([low[len(low) // 10:] for low, _ in bands])
    highs = np.concatenate([high[len(high) // 10:] for _, high in bands])
    ax.set_ylim(max(0.0, lows.min() - 0.5), min(100.5, highs.max() + 0.5))
    return ax


def learning_curves(ax, scores, cells, title, styles=None):
    """The mean curves of `cells` on one panel: colour = mode, style from `styles`
    (cell -> line style)."""
    zoom(ax, [curve(ax, scores.steps[c], scores.curves[c], label_of(c, styles),
                    MODE_COLORS.get(c.mode, "k"), (styles or {}).get(c, "-")) for c in cells])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set(title=title, xlabel="training examples seen", ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
    return ax


def label_of(cell, styles):
    return f"{cell.mode}, dropout {cell.dropout:g}" if styles else cell.mode


def spec_line(ax):
    """The lab's 99%, where it falls on the axes."""
    low, high = ax.get_ylim()
    if low <= 100 * SPEC_ACCURACY <= high:
        ax.axhline(100 * SPEC_ACCURACY, color="k", linestyle=":", linewidth=1,
                   label=f"lab's {100 * SPEC_ACCURACY:g}%")
    return ax


def forest(ax, rows, title):
    """Differences with their 95% CIs against a zero line. rows: (label, difference,
    low, high, significant, colour), fractions; a filled marker is significant."""
    if not rows:
        return nothing(ax, "no comparison")
    for y, (label, diff, low, high, significant, color) in enumerate(rows):
        if not np.isnan(low):
            ax.plot([100 * low, 100 * high], [y, y], color=color, linewidth=1.6)
        ax.plot([100 * diff], [y], "o", color=color, markersize=6,
                markerfacecolor=color if significant else "white")
    ax.axvline(0, color="k", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [row[0] for row in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set(title=title, xlabel="difference in final accuracy (pp), 95% CI")
    ax.grid(axis="x", alpha=0.3)
    return ax


def accuracy_points(ax, scores, cells, x_of, style_of):
    """Final accuracy: each seed a dot, the mean with its 95% CI as a bar, a line per
    (mode, dropout) through its x positions (x_of: cell -> x)."""
    lines = {}
    for cell in cells:
        lines.setdefault((cell.mode, cell.dropout), []).append(cell)
    for (mode, dropout), members in lines.items():
        members.sort(key=x_of)
        xs = np.array([x_of(c) for c in members], dtype=float)
        est = [scores.estimates["final"][c] for c in members]
        mean = 100 * np.array([e.mean for e in est])
        err = 100 * np.nan_to_num(np.array([[e.mean - e.low, e.high - e.mean] for e in est]).T)
        color = MODE_COLORS.get(mode, "k")
        ax.plot(xs, mean, color=color, linestyle=style_of(dropout),
                label=f"{mode}, dropout {dropout:g}")
        ax.errorbar(xs, mean, yerr=err, fmt="none", capsize=3, color=color)
        for x, cell in zip(xs, members):
            seeds = 100 * scores.finals[cell]
            ax.plot(np.full(len(seeds), x), seeds, ".", color=color, alpha=0.5, markersize=4)
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3)
    return ax


def log_sizes(ax, sizes):
    """A log x axis ticked at exactly the measured sizes."""
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 1.5)
    return ax
