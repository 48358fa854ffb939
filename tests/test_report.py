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


def build(tmp_path, rows, name="report"):
    out = tmp_path / name
    document.build(write_csv(tmp_path / f"{name}.csv", rows), str(out), command="test")
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


def test_curves_section_names_the_fall_and_the_student_discussion_is_questions(study):
    out, text = study
    shapes = read_table(out / "curve_shapes.csv")
    # scratch, P = 0.01, dropout 0: mean curve 0.60 0.85 0.9133 0.92, no fall; frozen at
    # P = 0.01 rises throughout; finetune too. The CSV lists every cell with a fall.
    assert all(float(r["fall_pp"]) > 0 for r in shapes)
    discussion = text[text.index("## Your discussion"):text.index("## Methods")]
    questions = [line for line in discussion.splitlines() if line.startswith("- ")]
    assert len(questions) >= 3 and all(q.endswith("?") for q in questions)


def test_every_figure_is_written_and_linked(study):
    out, text = study
    for stem in ("differences", "final_accuracy", "learning_curves_drop0",
                 "learning_curves_drop0.5", "source_learning_curve"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.pdf").exists()
        assert f"({stem}.png)" in text
    assert text.index("(differences.png)") < text.index("## Final accuracy")
