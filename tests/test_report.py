"""python -m tltransfer.report on small synthetic studies whose numbers are known by
construction, and once on the committed docs/study CSV, whose numbers it must agree with."""

import csv
import dataclasses
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from conftest import REPO, error_line, run_module
from tltransfer import export
from tltransfer.config import Config
from tltransfer.report import analysis, document, figures, metrics, results, stats, tables

STEPS = (1000, 2000, 3000, 4000)
N_TRAIN = {0.01: 200, 1.0: 23900}
# Hand-picked test-accuracy curves (one per seed) by (mode, p, dropout).
CURVES = {
    ("scratch", 0.01, 0.0): [[0.50, 0.80, 0.91, 0.90], [0.60, 0.85, 0.90, 0.92],
                             [0.70, 0.90, 0.93, 0.94]],
    ("frozen", 0.01, 0.0): [[0.90, 0.95, 0.96, 0.96], [0.91, 0.94, 0.96, 0.97],
                            [0.92, 0.96, 0.97, 0.98]],
    # Below scratch's mean curve at 1000 and 2000 samples, above it from 3000 on.
    ("finetune", 0.01, 0.0): [[0.40, 0.80, 0.95, 0.96], [0.50, 0.86, 0.96, 0.97],
                              [0.45, 0.84, 0.97, 0.98]],
    ("scratch", 1.0, 0.0): [[0.90, 0.97, 0.98, 0.990], [0.90, 0.97, 0.98, 0.992],
                            [0.90, 0.97, 0.98, 0.994]],
    ("frozen", 1.0, 0.0): [[0.90, 0.97, 0.98, 0.985], [0.90, 0.97, 0.98, 0.986],
                           [0.90, 0.97, 0.98, 0.987]],
    ("finetune", 1.0, 0.0): [[0.90, 0.97, 0.98, 0.993], [0.90, 0.97, 0.98, 0.994],
                             [0.90, 0.97, 0.98, 0.995]],
    ("scratch", 0.01, 0.5): [[0.80, 0.90, 0.94, 0.94], [0.80, 0.90, 0.94, 0.95],
                             [0.80, 0.90, 0.94, 0.96]],
    ("frozen", 0.01, 0.5): [[0.80, 0.90, 0.93, 0.93], [0.80, 0.90, 0.93, 0.94],
                            [0.80, 0.90, 0.93, 0.95]],
    ("finetune", 0.01, 0.5): [[0.80, 0.90, 0.95, 0.96], [0.80, 0.90, 0.95, 0.97],
                              [0.80, 0.90, 0.95, 0.975]],
    # Identical finals in every seed: the Welch test between these groups is degenerate.
    ("scratch", 1.0, 0.5): [[0.90, 0.97, 0.98, 0.99]] * 3,
    ("frozen", 1.0, 0.5): [[0.90, 0.97, 0.98, 0.99]] * 3,
    ("finetune", 1.0, 0.5): [[0.90, 0.97, 0.98, 0.99]] * 3,
    ("source", 1.0, 0.0): [[0.95, 0.98, 0.99, 0.991], [0.95, 0.98, 0.99, 0.993],
                           [0.95, 0.98, 0.99, 0.995]],
    ("source", 1.0, 0.5): [[0.95, 0.98, 0.99, 0.990], [0.95, 0.98, 0.99, 0.992],
                           [0.95, 0.98, 0.99, 0.994]],
}


def finals(mode, p, dropout):
    return np.array([curve[-1] for curve in CURVES[(mode, p, dropout)]])


def run_rows(mode, p, dropout, seed, curve, **settings):
    """The tidy rows of one run, as the exporter writes them (columns from Config)."""
    config = Config(mode=mode, p=p, dropout=dropout, seed=seed, **{
        "train_samples": 4000, "source_samples": 4000, **settings}).canonical()
    name = config.name + "".join(f"_{k}{v}" for k, v in settings.items())
    head = {**dataclasses.asdict(config), "run": name, "samples": config.samples,
            "n_train": 36017 if mode == "source" else N_TRAIN[p]}
    return [{**head, "tag": tag, "step": step, "value": value if tag == "test/accuracy"
             else round(1 - value, 4)}
            for step, value in zip(STEPS, curve) for tag in ("test/accuracy", "test/loss")]


def study_rows(keep=lambda mode, p, dropout, seed: True, curves_of=CURVES, **settings):
    return [row for (mode, p, dropout), curves in sorted(curves_of.items())
            for seed, curve in enumerate(curves) if keep(mode, p, dropout, seed)
            for row in run_rows(mode, p, dropout, seed, curve, **settings)]


def write_csv(path, rows, columns=export.COLUMNS):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def cli(*args):
    # A NaN RuntimeWarning from NumPy or SciPy fails the run.
    return run_module("tltransfer.report", *map(str, args),
                      env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def find_row(rows, **match):
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


def build(tmp_path, rows, name="report", columns=export.COLUMNS):
    out = tmp_path / name
    document.build(write_csv(tmp_path / f"{name}.csv", rows, columns), str(out),
                   command="test")
    return out, (out / "report.md").read_text()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The full synthetic study, reported once through the command line."""
    root = tmp_path_factory.mktemp("study")
    out = root / "report"
    result = cli(f"--csv={write_csv(root / 'results.csv', study_rows())}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    return out, (out / "report.md").read_text()



# --- statistics -------------------------------------------------------------------------------

def test_interval_and_welch_are_scipys():
    estimate = stats.interval([0.90, 0.92, 0.94])
    half = scipy_stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert (estimate.mean, estimate.std, estimate.n) == pytest.approx((0.92, 0.02, 3))
    assert (estimate.low, estimate.high) == pytest.approx((0.92 - half, 0.92 + half))
    a, b = finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0)
    test, direct = stats.welch(a, b, 0.005), scipy_stats.ttest_ind(a, b, equal_var=False)
    assert (test.diff, test.pvalue, test.df) == pytest.approx((0.05, direct.pvalue, direct.df))
    assert (test.low, test.high) == pytest.approx(tuple(direct.confidence_interval()))


def welch_power(diff, var_a, var_b, n_a, n_b):
    """The two-sided Welch test's power at alpha 0.05, by hand."""
    va, vb = var_a / n_a, var_b / n_b
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    crit, nc = scipy_stats.t.ppf(0.975, df), diff / math.sqrt(va + vb)
    return scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)


def test_power_figures_come_from_the_noncentral_t_and_the_pooled_spread():
    a, b = [0.90, 0.95, 0.92], [0.91, 0.93, 0.94]
    test = stats.welch(a, b, 0.02)
    var_a, var_b = np.var(a, ddof=1), np.var(b, ddof=1)
    assert welch_power(test.detectable, var_a, var_b, 3, 3) == pytest.approx(0.8, abs=1e-6)
    pooled, n = (var_a + var_b) / 2, int(test.seeds)  # equal sides: the mean variance
    assert welch_power(0.02, pooled, pooled, n, n) >= 0.8 > welch_power(0.02, pooled, pooled,
                                                                         n - 1, n - 1)


def test_welch_says_why_it_cannot_tell():
    flat = stats.welch([0.99] * 3, [0.98] * 3, 0.005)
    assert flat.why_undefined == "no spread in either group" and math.isnan(flat.pvalue)
    assert stats.welch([0.9], [0.8, 0.85], 0.005).why_undefined == "fewer than 2 seeds a side"


def test_holm_against_a_hand_computation():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 -> kept at 0.06
    assert stats.holm([0.01, 0.04, 0.03, math.nan, 0.005]) == pytest.approx(
        [0.03, 0.06, 0.06, math.nan, 0.02], nan_ok=True)
    assert stats.holm([0.4, 0.5]) == pytest.approx([0.8, 0.8])
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_probability_of_improvement_on_known_pairs():
    assert stats.probability_of_improvement([3, 4, 5], [0, 1, 2]) == 1.0
    assert stats.probability_of_improvement([0, 1, 2], [3, 4, 5]) == 0.0
    # 1 beats none of 2, 4, 6; 3 beats 2; 5 beats 2 and 4: 3 of 9 pairs.
    assert stats.probability_of_improvement([1, 3, 5], [2, 4, 6]) == pytest.approx(3 / 9)
    # A tie counts half: only (2, 2) of the 4 pairs, so 0.5 / 4.
    assert stats.probability_of_improvement([1, 2], [2, 3]) == pytest.approx(0.125)


def test_curve_metrics_and_shapes():
    steps, values = np.array(STEPS, dtype=float), np.array(CURVES[("scratch", 0.01, 0.0)][0])
    assert metrics.final(steps, values) == 0.90
    assert metrics.area(steps, values) == pytest.approx(2.41 / 3)
    assert metrics.to_99_of_final(steps, values) == 3000  # 0.91 >= 0.99 * 0.90 first at 3000
    assert stats.images_to_match([100, 1000, 10000], [0.80, 0.90, 0.96], 0.93) == (
        "~", pytest.approx(10 ** 3.5))
    assert stats.images_to_match([100, 1000], [0.8, 0.9], 0.95)[0] == ">"
    assert stats.test_images([k / 3969 for k in (3300, 3521, 3968, 3900)]) == 3969


def test_latex_escapes_all_ten_special_characters():
    assert tables.latex_escape(r"\&%$#_{}~^") == (
        r"\textbackslash{}\&\%\$\#\_\{\}\textasciitilde{}\textasciicircum{}")


def test_two_significant_digits():
    assert [tables.significant_digits(n) for n in (176.4, 4190, 23900, 98)] == [
        "180", "4,200", "24,000", "98"]


# --- the whole report -------------------------------------------------------------------------

def test_accuracy_table_holds_hand_computed_numbers(study):
    out, text = study
    rows = read_table(out / "accuracy.csv")
    assert [(r["p"], r["dropout"]) for r in rows] == [
        ("0.01", "0"), ("0.01", "0.5"), ("1", "0"), ("1", "0.5")]
    row = find_row(rows, p="0.01", dropout="0")
    assert float(row["scratch_mean"]) == pytest.approx(92.0)
    assert (float(row["scratch_ci_low"]), float(row["scratch_ci_high"])) == pytest.approx(
        (87.0317, 96.9683), abs=1e-4)
    assert float(row["frozen_mean"]) == pytest.approx(97.0) and row["seeds"] == "3"
    assert "| 0.01 | 200 | 0 | 92.00 (87.03 to 96.97) | 97.00 (" in text
    latex = (out / "accuracy.tex").read_text()
    assert r"\toprule" in latex and "87.03 to 96.97" in latex and r"scratch (\%)" in latex


def hand_holm(pvalues):
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def test_comparisons_pin_scipy_holm_and_the_probability_of_improvement(study):
    out, _ = study
    rows = read_table(out / "comparisons.csv")
    row = find_row(rows, comparison="frozen - scratch", dropout="0", p="0.01")
    a, b = finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0)
    direct = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert float(row["pvalue"]) == pytest.approx(direct.pvalue, abs=1e-6)
    assert float(row["df"]) == pytest.approx(direct.df, abs=1e-6)
    assert float(row["ci_low_pp"]) == pytest.approx(100 * direct.confidence_interval().low,
                                                    abs=1e-6)
    assert float(row["diff_pp"]) == pytest.approx(5.0) and row["assignment"] == "1"
    assert float(row["prob_improvement"]) == 1.0  # 0.96-0.98 against 0.90-0.94: every pair
    tested = [r for r in rows if r["pvalue"]]
    for r, holm in zip(tested, hand_holm([float(r["pvalue"]) for r in tested])):
        assert float(r["holm_pvalue"]) == pytest.approx(holm, abs=1e-5)  # CSV: 6 digits
    flat = find_row(rows, comparison="frozen - scratch", dropout="0.5", p="1")
    assert flat["pvalue"] == flat["holm_pvalue"] == "" and "no spread" in flat["diff_cell"]
    dropout = find_row(rows, comparison="scratch: dropout 0.5 - dropout 0", p="0.01")
    assert float(dropout["diff_pp"]) == pytest.approx(3.0) and dropout["assignment"] == "3"
    # 0.94, 0.95, 0.96 against 0.90, 0.92, 0.94: 8 pairs won, the tie at 0.94 counts half
    assert float(dropout["prob_improvement"]) == pytest.approx(8.5 / 9, abs=1e-6)


EFFICIENT = {  # frozen far above scratch at P = 0.01 (tight seeds), level at P = 1
    ("scratch", 0.01, 0.0): [[0.5, 0.7, 0.8, 0.900]], ("scratch", 1.0, 0.0): [[0.9, 0.980]],
    ("frozen", 0.01, 0.0): [[0.5, 0.7, 0.8, 0.950]], ("frozen", 1.0, 0.0): [[0.9, 0.980]]}


def efficient_rows():
    rows = []
    for (mode, p, dropout), (curve,) in EFFICIENT.items():
        for seed, shift in enumerate((0.0, 0.001, 0.002) if p < 1 else (0.0, 0.01, -0.01)):
            shift *= -1 if mode == "frozen" and p == 1 else 1
            rows += run_rows(mode, p, dropout, seed, [0.5] * 3 + [curve[-1] + shift])
    return rows


def test_data_efficiency_only_where_the_gap_is_significant(tmp_path):
    out, text = build(tmp_path, efficient_rows())
    rows = read_table(out / "data_efficiency.csv")
    assert [(r["mode"], r["p"]) for r in rows] == [("frozen", "0.01")]  # not at P = 1
    target, low, high = 0.951, 0.901, 0.98  # frozen's mean; scratch's at 200 and 23,900
    images = math.exp(math.log(200) + (target - low) / (high - low) * math.log(23900 / 200))
    assert float(rows[0]["scratch_images"]) == pytest.approx(images, rel=1e-6)
    assert f"| about | {tables.significant_digits(images)} |" in text
    assert re.search(r"\| about \| 4,\d00 \| 21x \|", text)


def accuracy_figures(out):
    """The numbers of the accuracy tables, as report.md shows them."""
    cells = [cell for table in ("accuracy", "source_accuracy")
             if (out / f"{table}.csv").exists()
             for row in read_table(out / f"{table}.csv") for key, cell in row.items()
             if key.endswith("_cell")]
    return [number for cell in cells for number in re.findall(r"\d+\.\d\d", cell)]


def assert_each_accuracy_once(out, text):
    figures_ = accuracy_figures(out)
    assert figures_
    repeated = {f: text.count(f) for f in figures_ if len(re.findall(
        rf"(?<![\d.]){re.escape(f)}(?![\d])", text)) != figures_.count(f)}
    assert repeated == {}


def test_no_accuracy_figure_is_repeated(study):
    assert_each_accuracy_once(*study)


def test_p_is_the_proportion_and_p_the_p_value(study):
    out, text = study
    assert "P is the proportion" in text and "P = 0.01" in text
    assert not re.search(r"\bp (=|≤|≥|<|>)? ?(0\.01|1)\b(?!\d)", text)  # no lowercase P
    headers = read_table(out / "comparisons.csv")[0].keys()
    assert {"p", "pvalue", "holm_pvalue"} <= set(headers)
    assert "| A | a - b | P | dropout | difference (pp), 95% CI | p | Holm p |" in text


def test_findings_open_the_report_and_answer_by_pattern(study):
    _, text = study
    order = [text.index(h) for h in ("## Findings", "## Final accuracy", "## Comparisons",
                                     "## Your discussion", "## Methods", "## Provenance")]
    assert order == sorted(order)
    findings = text[text.index("## Findings"):text.index("## Final accuracy")]
    assert ("- **Assignment 1, frozen transfer against training from scratch.** frozen "
            "against scratch, dropout 0: ahead at P = 0.01 (+5.0 pp, not significant), behind "
            "at P = 1 (-0.60 pp, not significant) [Comparisons: A 1] [Final accuracy: dropout "
            "0].") in findings
    # scratch +3.0, finetune -0.17 and frozen -3.0 pp at P = 0.01; all level at P = 1
    assert ("Dropout 0.5 (against none): is mixed at every P (-3.0 to +3.0 pp, not "
            "significant)") in findings
    assert ("finetune against frozen, dropout 0: level at P = 0.01 (+0.00 pp, not "
            "significant), ahead at P = 1 (+0.80 pp, significant)") in findings
    assert "1 of the 15 comparisons is significant after Holm's correction" in findings


SHAPED = {  # scratch peaks at 2,000 and ends 3 points lower; frozen drops after the start
    ("scratch", 0.01, 0.0): [[0.80, 0.90, 0.88, 0.87], [0.81, 0.91, 0.89, 0.88],
                             [0.79, 0.89, 0.87, 0.86]],
    ("frozen", 0.01, 0.0): [[0.90, 0.85, 0.88, 0.89], [0.91, 0.84, 0.88, 0.90],
                            [0.92, 0.86, 0.88, 0.91]]}


def test_the_curves_peak_before_the_end_and_drop_after_the_start(tmp_path):
    found = analysis.analyze(results.load(write_csv(tmp_path / "r.csv", study_rows(
        curves_of=SHAPED)))).shapes
    shapes = {(s.cell.mode, s.kind): s for s in found}
    peak = shapes[("scratch", "peak before the end")]
    assert (peak.high_step, peak.low_step) == (2000, 4000)
    assert (peak.high, peak.fall.mean, peak.fall.std) == pytest.approx((0.90, 0.03, 0.0))
    assert peak.notable
    drop = shapes[("frozen", "drop after the start")]
    assert (drop.high_step, drop.low_step, drop.end) == (1000, 2000, pytest.approx(0.90))
    assert drop.fall.mean == pytest.approx(0.06)  # 0.05, 0.07, 0.06
    low = stats.interval([0.05, 0.07, 0.06]).low
    assert drop.fall.low == pytest.approx(low) and drop.beyond_spread
    assert ("frozen", "peak before the end") not in shapes  # its peak is the first point
    assert ("scratch", "drop after the start") not in shapes  # it never falls below 0.80
    _, text = build(tmp_path, study_rows(curves_of=SHAPED))
    assert ("| scratch | 0.01 | 0 | peak before the end | 2,000 | 90.0 | 4,000 | 3.00 (3.00 to "
            "3.00) | 0.00 |") in text
    assert "frozen at P = 0.01, dropout 0 falls 6.0 pp from 91.0% at 1,000 examples to 85.0% " \
        "at 2,000" in text


def test_the_student_discussion_is_questions(study):
    _, text = study
    discussion = text[text.index("## Your discussion"):text.index("## Methods")]
    questions = [line for line in discussion.splitlines() if line.startswith("- ")]
    assert len(questions) >= 3 and all(q.endswith("?") for q in questions)


def test_curve_measures_hold_every_metric(study):
    out, _ = study
    row = find_row(read_table(out / "curve_measures.csv"), mode="scratch", p="0.01",
                   dropout="0")
    # The seeds' curves: 0.50 0.80 0.91 0.90 / 0.60 0.85 0.90 0.92 / 0.70 0.90 0.93 0.94
    assert float(row["final_mean"]) == pytest.approx(92.0)
    assert float(row["best_mean"]) == pytest.approx(100 * (0.91 + 0.92 + 0.94) / 3)
    assert float(row["area_mean"]) == pytest.approx(100 * np.mean(
        [np.trapezoid(c, STEPS) / 3000 for c in CURVES[("scratch", 0.01, 0.0)]]))
    # 99% of the final: 0.891 first at 3000; 0.9108 and 0.9306 only at 4000
    assert float(row["to99_mean"]) == pytest.approx(11000 / 3)
    assert row["seeds"] == "3"


def test_every_figure_is_written_and_linked(study):
    out, text = study
    for stem in ("differences", "final_accuracy", "learning_curves_drop0",
                 "learning_curves_drop0.5", "source_learning_curve"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.pdf").exists()
        assert f"({stem}.png)" in text
    assert text.index("(differences.png)") < text.index("## Final accuracy")


# --- figures: what a reader sees --------------------------------------------------------------

@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    path = write_csv(tmp_path_factory.mktemp("scored") / "r.csv", study_rows())
    return analysis.analyze(results.load(path))


def test_figures_draw_on_the_ax_they_are_given(scored):
    fig, axes = figures.grid(2)
    cells = [c for c in scored.scores.cells("scratch", "frozen") if (c.p, c.dropout) ==
             (0.01, 0.0)]
    assert figures.learning_curves(axes[0], scored.scores, cells, "P = 0.01") is axes[0]
    assert axes[0].get_xlabel() == "training examples seen"
    assert [line.get_label() for line in axes[0].lines] == ["scratch", "frozen"]
    # The band is the mean's 95% t interval over the seeds at each step.
    mean, low, high = figures.band(scored.scores.curves[cells[0]])
    at_end = stats.interval(finals("scratch", 0.01, 0.0))
    assert (mean[-1], low[-1], high[-1]) == pytest.approx(
        (100 * at_end.mean, 100 * at_end.low, 100 * at_end.high))
    figures.legend(fig, axes[:1])
    assert all(t.get_fontsize() >= 9 for t in fig.legends[0].get_texts())
    figures.plt.close(fig)


def test_forest_plot_marks_significance_and_zero(scored):
    fig, (ax,) = figures.grid(1)
    rows = [("a - b", 0.02, 0.01, 0.03, True, "C1"), ("c - d", -0.01, -0.03, 0.01, False, "C2")]
    assert figures.forest(ax, rows, "P = 0.01") is ax
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [d.get_markerfacecolor() for d in dots][1] == "white"  # open: not significant
    assert dots[0].get_markerfacecolor() != "white"
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the zero line
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a - b", "c - d"]
    assert list(ax.lines[0].get_xdata()) == pytest.approx([1.0, 3.0])  # the CI, in pp
    figures.plt.close(fig)


def test_final_accuracy_points_show_seeds_and_the_mean(scored):
    fig, (ax,) = figures.grid(1)
    cells = [c for c in scored.scores.cells("scratch") if c.dropout == 0.0]
    figures.accuracy_points(ax, scored.scores, cells, lambda c: scored.scores.n_train[c],
                            lambda d: "-")
    mean_line = next(line for line in ax.lines if line.get_label() == "scratch, dropout 0")
    assert list(mean_line.get_ydata()) == pytest.approx([92.0, 99.2])
    seeds = [line for line in ax.lines if line.get_marker() == "."]
    assert sorted(y for line in seeds for y in line.get_ydata()) == pytest.approx(
        sorted(100 * np.concatenate([finals("scratch", p, 0.0) for p in (0.01, 1.0)])))
    figures.plt.close(fig)


# --- settings beyond the lab's axes -----------------------------------------------------------

SWEEPS = {"train_samples": (4000, 2000), "lr": (1e-3, 3e-3)}


def sweep_rows(setting):
    """Scratch and frozen at P = 0.01 and dropout 0, at the first value and again at the
    second, 20 points lower: pooled, every mean there would move."""
    keep = lambda mode, p, dropout, seed: (mode, p, dropout) in {  # noqa: E731
        ("scratch", 0.01, 0.0), ("frozen", 0.01, 0.0)}
    rows = study_rows(keep, **{setting: SWEEPS[setting][0]})
    for mode in ("scratch", "frozen"):
        for seed, curve in enumerate(CURVES[(mode, 0.01, 0.0)]):
            rows += run_rows(mode, 0.01, 0.0, seed, [v - 0.2 for v in curve],
                             **{setting: SWEEPS[setting][1]})
    return rows


@pytest.mark.parametrize("setting", sorted(SWEEPS))
def test_a_swept_setting_gets_its_section_and_is_not_pooled(tmp_path, setting):
    out, text = build(tmp_path, sweep_rows(setting))
    first, second = (tables.value_text(v) for v in SWEEPS[setting])
    row = find_row(read_table(out / "accuracy.csv"), p="0.01", dropout="0")
    assert float(row["scratch_mean"]) == pytest.approx(92.0) and row["seeds"] == "3"
    assert f"## Other {setting}" in text
    assert f"Settings that vary beyond mode, P, dropout and seed: {setting} ({first}, " \
        f"{second})" in text
    measures = read_table(out / f"curve_measures_{setting}.csv")
    assert float(find_row(measures, **{setting: second}, mode="scratch")["final_mean"]) == \
        pytest.approx(72.0)
    assert {r[setting] for r in measures} == {second}  # the baseline's rows are not repeated
    gain = find_row(read_table(out / f"gains_{setting}.csv"), comparison="frozen - scratch")
    assert float(gain["diff_pp"]) == pytest.approx(5.0) and gain[setting] == second
    assert (out / f"sensitivity_{setting}.png").exists()
    assert_each_accuracy_once(out, text)


def test_a_baseline_off_the_default_says_why(tmp_path):
    _, text = build(tmp_path, sweep_rows("train_samples"))
    assert ("train_samples 4000: no run has the default 60000; 2000 and 4000 have 6 runs "
            "each, and 4000 is nearest the default.") in text


def test_an_assignment_without_runs_gets_a_sentence_and_no_rows(tmp_path):
    out, text = build(tmp_path, study_rows(lambda mode, p, dropout, seed: dropout == 0.0))
    assert "- **Assignment 3, dropout 0.5 on layers 4 and 5.** Not compared: the CSV has no " \
        "runs for it." in text
    assert {r["assignment"] for r in read_table(out / "comparisons.csv")} == {"1", "2"}
    assert "learning_curves_drop0.5.png" not in text


def test_runs_that_differ_in_two_settings_are_listed_not_tabled(tmp_path):
    rows = study_rows(keep=lambda mode, p, dropout, seed: mode in ("scratch", "frozen")
                      and p == 0.01 and dropout == 0)
    rows += run_rows("scratch", 0.01, 0.0, 0, [0.1] * 4, lr=3e-3, batch_size=50)
    out, text = build(tmp_path, rows)
    assert "differ from the main tables in more than one setting" in text
    assert "  - lr 0.003, batch_size 50 (1 run): scratch_p0.01_drop0_seed0" in text
    assert find_row(read_table(out / "accuracy.csv"), p="0.01")["seeds"] == "3"


def test_csv_of_an_older_export_reads_with_defaults_and_says_so(tmp_path):
    old = ["run", "mode", "p", "n_train", "dropout", "seed", "lr", "train_samples", "tag",
           "step", "value"]
    rows = study_rows(keep=lambda mode, p, dropout, seed: dropout == 0 and p == 1)
    rows = [{**r, "train_samples": r["samples"]} for r in rows]  # the budget, as it was
    loaded = results.load(write_csv(tmp_path / "old.csv", rows, old))
    runs = {r.mode: r for r in loaded.runs}
    assert runs["source"].config["source_samples"] == 4000
    assert runs["source"].config["train_samples"] == 60000
    assert runs["frozen"].config["transfer_layers"] == Config().transfer_layers
    assert "eval_every" in loaded.absent and "lr" not in loaded.absent
    _, text = build(tmp_path, rows, columns=old)
    assert "- The CSV has no column for source_classes, target_classes, subset," in text


def test_provenance_comes_last_and_carries_no_machine_path(tmp_path):
    (tmp_path / "report_meta.json").write_text(
        '{"commands": ["python -m tltransfer.main --p=0.01 --logdir=/home/ann/logs/study"], '
        '"refused_commands": [{"command": "python -m tltransfer.main --lr=-1", "reason": "lr '
        'must be positive"}], "flagfiles": ["flags/a1.cfg"], "versions": {"tensorflow": '
        '"2.19.0"}, "data_sha256": ["abc"], "logdir": "/home/ann/logs/study"}')
    _, text = build(tmp_path, study_rows(lambda mode, p, dropout, seed: dropout == 0))
    provenance = text[text.index("## Provenance"):]
    assert "training command: `python -m tltransfer.main --p=0.01 --logdir=.../study`" in \
        provenance
    assert "refused (trained nothing): `python -m tltransfer.main --lr=-1`" in provenance
    assert "flagfiles: `flags/a1.cfg`" in provenance and "tensorflow 2.19.0" in provenance
    assert "/home/ann" not in text and str(tmp_path) not in text


# --- bad input --------------------------------------------------------------------------------

def one_cell(rows, column, text):
    return [{**rows[0], column: text}] + rows[1:]


BAD = {  # message -> (arguments but --out, --out)
    "does not exist": lambda d: ([f"--csv={d / 'none.csv'}"], d / "report"),
    "lacks the column(s) value": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows(), export.COLUMNS[:-1])}"], d / "report"),
    "line 2: value='high' is not a valid finite number": lambda d: (
        ["--csv=" + write_csv(d / "r.csv", one_cell(study_rows(), "value", "high"))],
        d / "report"),
    "line 2: value='nan' is not a valid finite number": lambda d: (
        ["--csv=" + write_csv(d / "r.csv", one_cell(study_rows(), "value", "nan"))],
        d / "report"),
    "line 2: p='abc' is not a valid finite number": lambda d: (
        ["--csv=" + write_csv(d / "r.csv", one_cell(study_rows(), "p", "abc"))], d / "report"),
    "r.csv is empty": lambda d: ([f"--csv={d / 'r.csv'}"], d / "report"),
    "has a header but no data rows": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', [])}"], d / "report"),
    "--difference=0 is no difference of accuracy": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows())}", "--difference=0"], d / "report"),
    "cannot write the report": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows())}"], "/proc/no/report"),
    "--out is empty": lambda d: ([f"--csv={write_csv(d / 'r.csv', study_rows())}"], ""),
}


@pytest.mark.parametrize("message", sorted(BAD))
def test_bad_input_gives_one_error_line_and_writes_nothing(tmp_path, message):
    (tmp_path / "r.csv").write_text("")
    args, out = BAD[message](tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = cli(*args, f"--out={out}")
    line = error_line(result)
    assert message in line and "; " in line  # what is wrong; how to fix it
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(os.listdir(tmp_path)) == before  # no report, no leftover temporary


def test_out_that_is_a_file_is_refused_and_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli(f"--csv={write_csv(tmp_path / 'r.csv', study_rows())}",
                 f"--out={tmp_path / 'notes.txt'}")
    assert "is a file, not a directory; give a directory for the report" in error_line(result)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "r.csv"]


def test_out_dir_holding_other_files_is_not_replaced(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(results.ReportError, match="is not an earlier report"):
        document.build(write_csv(tmp_path / "r.csv", study_rows()), str(tmp_path / "notes"))
    assert os.listdir(tmp_path / "notes") == ["keep.txt"]


def test_the_report_imports_no_tensorflow():
    probe = ("import sys, tltransfer.report.__main__, tltransfer.report.document; "
             "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert out.stdout.split() == ["False"], out.stderr


# --- the committed study ----------------------------------------------------------------------

def test_committed_study_report_is_short_and_agrees_with_its_csv(tmp_path):
    path = os.path.join(REPO, "docs/study/results.csv")
    out, text = tmp_path / "report", None
    document.build(path, str(out), command="test")
    text = (out / "report.md").read_text()
    assert len(text.splitlines()) <= 180
    assert_each_accuracy_once(out, text)
    # The accuracy table against the CSV read with the csv module alone.
    curves = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["tag"] == "test/accuracy":
                key = (row["mode"], float(row["p"]), float(row["dropout"]))
                curves.setdefault(key, {}).setdefault(row["run"], []).append(
                    (int(row["step"]), float(row["value"])))
    mean = {key: 100 * np.mean([max(points)[1] for points in runs.values()])
            for key, runs in curves.items()}
    table = read_table(out / "accuracy.csv")
    for mode in ("scratch", "frozen", "finetune"):
        for row in table:
            key = (mode, float(row["p"]), float(row["dropout"]))
            assert float(row[f"{mode}_mean"]) == pytest.approx(mean[key], abs=1e-6)
    assert "| 0.005 | 100 | 0 | 84.26 (83.66 to 84.86) | 88.94 (88.00 to 89.88) |" in text
    rows = read_table(out / "comparisons.csv")
    assert len(rows) == 36 and sum(float(r["holm_pvalue"]) < 0.05 for r in rows) == 4
    frozen = find_row(rows, comparison="frozen - scratch", p="1", dropout="0")
    assert frozen["diff_cell"] == "-0.19 (-0.34 to -0.05)"
    assert float(frozen["pvalue"]) == pytest.approx(0.0201, abs=1e-4)
    assert float(frozen["holm_pvalue"]) == pytest.approx(0.459, abs=1e-3)
    assert "3,969 test images" in text and "one image is 0.025 pp" in text
    assert "| frozen | 0.005 | 0 | 100 | about | 180 | 1.8x |" in text
    assert "finetune at P = 0.005, dropout 0 falls 2.7 pp from 87.6% at 1,000 examples to " \
        "84.9% at 3,000" in text
