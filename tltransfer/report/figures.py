"""The report's figures: the only module that imports matplotlib.

Conventions: colour = mode, line style = dropout (in the legend too); a panel with nothing to
show says "not reached"; panels of one figure with their own y scales say so in the title;
a legend lists only what lies inside its axes; PNG and PDF carry no timestamps.
"""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from tltransfer.cli import plural  # noqa: E402
from tltransfer.report.analysis import SPEC_ACCURACY, TARGET_MODES  # noqa: E402
from tltransfer.report.tables import value_text  # noqa: E402

MODE_COLORS = {"source": "C7", "scratch": "C0", "frozen": "C1", "finetune": "C2"}
STYLES = ("-", "--", ":", "-.")
OWN_SCALES = "each panel has its own y scale"


def save(fig, out_dir, stem):
    """Writes <stem>.png and .pdf; returns (figure, file names) so tests can inspect it."""
    names = []
    for extension, metadata in (("png", {"Software": None}),
                                ("pdf", {"CreationDate": None, "Producer": None})):
        names.append(f"{stem}.{extension}")
        fig.savefig(os.path.join(out_dir, names[-1]), dpi=150, metadata=metadata,
                    bbox_inches="tight")
    plt.close(fig)
    return fig, names


def not_reached(ax, text="not reached"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def panels(count, title, width=3.8, height=3.3, ncols=4):
    ncols = min(ncols, count)
    rows = -(-count // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(width * ncols, height * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    fig.suptitle(title + (f" ({OWN_SCALES})" if count > 1 else ""), fontsize=10)
    return fig, list(axes.ravel()[:count])


def legend(fig, axes, **kwargs):
    """One legend for the figure, each label once, in the order first drawn."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(entries.values(), entries.keys(), fontsize=7, frameon=False,
                   loc="outside lower center", ncol=min(4, len(entries)), **kwargs)


def curve(ax, group, color, label, style="-"):
    """Mean test accuracy over seeds, band = min-max; returns the band."""
    steps, mean, low, high = group.mean_curve()
    ax.plot(steps, 100 * mean, color=color, linestyle=style, label=label, linewidth=1.4)
    ax.fill_between(steps, 100 * low, 100 * high, color=color, alpha=0.18, linewidth=0)
    return low, high


def zoom(ax, bands):
    """Cuts off the first tenth of training's low accuracies, so later differences show."""
    lows = np.concatenate([low[len(low) // 10:] for low, _ in bands])
    highs = np.concatenate([high for _, high in bands])
    ax.set_ylim(max(0.0, 100 * lows.min() - 1), min(100.5, 100 * highs.max() + 0.5))


def source_curves(groups, out_dir):
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    zoom(ax, [curve(ax, g, f"C{i}", f"dropout {g.dropout:g} ({plural(len(g.runs), 'seed')})",
                    STYLES[i % len(STYLES)]) for i, g in enumerate(groups)])
    low, high = ax.get_ylim()
    if low <= 100 * SPEC_ACCURACY <= high:  # the spec's line only where it is on the axes
        ax.axhline(100 * SPEC_ACCURACY, color="k", linestyle=":", linewidth=1,
                   label=f"spec: {100 * SPEC_ACCURACY:g}%")
    ax.set(xlabel="training samples", ylabel="test accuracy (%)",
           title="0-5 source nets: mean over seeds, band = min-max")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return save(fig, out_dir, "source_learning_curve")


def learning_curves(groups, dropout, out_dir):
    ps = sorted({g.p for g in groups})
    fig, axes = panels(len(ps), f"6-9 nets, dropout {dropout:g}: mean test accuracy over "
                       "seeds, band = min-max")
    for ax, p in zip(axes, ps):
        here = [g for g in groups if g.p == p]
        zoom(ax, [curve(ax, g, MODE_COLORS[g.mode], g.mode) for g in here])
        ax.set_title(f"p = {p:g} (n = {here[0].n_train:,})", fontsize=9)
        ax.set_xlabel("training samples", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    legend(fig, axes)
    return save(fig, out_dir, f"learning_curves_drop{dropout:g}")


def boxplots(groups, out_dir):
    cells = sorted({(g.dropout, g.p) for g in groups})
    modes = [m for m in TARGET_MODES if any(g.mode == m for g in groups)]
    fig, axes = panels(len(cells), "Final test accuracy over seeds (points = seeds)", 3.2, 3.0)
    for ax, (dropout, p) in zip(axes, cells):
        for g in (g for g in groups if (g.p, g.dropout) == (p, dropout)):
            box = ax.boxplot(100 * g.finals, positions=[modes.index(g.mode)], widths=0.6,
                             patch_artist=True, medianprops={"color": "black"})
            box["boxes"][0].set(facecolor=MODE_COLORS[g.mode], alpha=0.45)
            ax.scatter([modes.index(g.mode)] * len(g.finals), 100 * g.finals, s=12, zorder=3,
                       color=MODE_COLORS[g.mode])
        ax.set_xticks(range(len(modes)), modes, fontsize=8)
        ax.set_title(f"p = {p:g}, dropout {dropout:g}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%)")
    return save(fig, out_dir, "final_accuracy_boxplot")


def lines(ax, points, dropouts, xlabels=None):
    """One line per (mode, dropout) through points (mode, dropout, x, y, err): colour =
    mode, style = dropout; a panel without a point says "not reached"."""
    drawn = False
    for mode in TARGET_MODES + ("source",):
        for dropout in dropouts:
            line = sorted((x, y, e) for m, d, x, y, e in points
                          if (m, d) == (mode, dropout) and not np.isnan(y))
            if not line:
                continue
            x, y, err = zip(*line)
            style = STYLES[dropouts.index(dropout) % len(STYLES)]
            # Markers and error bars apart: a legend line with a marker hides its dashes.
            ax.plot(x, y, color=MODE_COLORS[mode], linestyle=style,
                    label=f"{mode}, dropout {dropout:g}")
            ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="o", markersize=3, capsize=2,
                        color=MODE_COLORS[mode])
            drawn = True
    if not drawn:
        return not_reached(ax)
    if xlabels:
        ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8)
        ax.set_xlim(-0.5, len(xlabels) - 0.5)
    ax.grid(alpha=0.3)


def log_sizes(ax, sizes):
    """Ticks exactly the measured sizes, so every panel reads the same."""
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=7)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 1.5)


def data_efficiency(groups, out_dir):
    fig, ax = plt.subplots(figsize=(5.5, 4.2), layout="constrained")
    dropouts = sorted({g.dropout for g in groups})
    lines(ax, [(g.mode, g.dropout, g.n_train, 100 * g.summary.mean, 100 * g.summary.std)
               for g in groups], dropouts)
    log_sizes(ax, sorted({g.n_train for g in groups}))
    ax.set(xlabel="target training images (n_train, log scale)",
           ylabel="final test accuracy (%), mean ± std",
           title="Final accuracy vs training-set size")
    ax.legend(fontsize=7)
    return save(fig, out_dir, "data_efficiency")


def convergence(groups, thresholds, out_dir):
    """Area under the curve, and samples to each threshold where every seed got there."""
    dropouts = sorted({g.dropout for g in groups})
    fig, axes = panels(1 + len(thresholds), "Convergence vs target training images", 4, 3.3, 3)
    lines(axes[0], [(g.mode, g.dropout, g.n_train, 100 * g.area.mean, 100 * g.area.std)
                    for g in groups], dropouts)
    axes[0].set_title("area under the learning curve (mean acc., %)", fontsize=9)
    for ax, t in zip(axes[1:], thresholds):
        lines(ax, [(g.mode, g.dropout, g.n_train, g.reach(t)[0], 0.0) for g in groups
                   if g.reach(t)[1] == len(g.runs)], dropouts)
        ax.set_title(f"samples to reach {100 * t:g}% (all seeds reached)", fontsize=9)
    for ax in axes:
        if ax.lines:
            log_sizes(ax, sorted({g.n_train for g in groups}))
    legend(fig, axes)
    return save(fig, out_dir, "convergence")


def sensitivity(result, out_dir):
    """Final accuracy against the swept setting's values, a panel per p; a mode that does
    not use the setting is drawn flat across them."""
    labels = [value_text(v) for v in result.values]
    ps = sorted({g.p for g in result.groups.values()})
    dropouts = sorted({g.dropout for g in result.groups.values()})
    fig, axes = panels(len(ps), f"Final test accuracy (mean ± std over seeds) at each "
                       f"{result.setting}")
    for ax, p in zip(axes, ps):
        points = []
        for (value, mode, gp, dropout), g in result.groups.items():
            xs = range(len(labels)) if value is None else [result.values.index(value)]
            points += [(mode, dropout, x, 100 * g.summary.mean, 100 * g.summary.std)
                       for x in xs if gp == p]
        lines(ax, points, dropouts, labels)
        ax.set_title(f"p = {p:g}", fontsize=9)
        ax.set_xlabel(result.setting, fontsize=8)
    axes[0].set_ylabel("final test accuracy (%)")
    legend(fig, axes)
    return save(fig, out_dir, f"sensitivity_{result.setting}")
