"""python -m tltransfer.report on small synthetic studies whose numbers are known by
construction, and once on the committed docs/study CSV against the numbers of the old report."""

import csv
import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from conftest import REPO, error_line, run_module
from tltransfer import export
from tltransfer.config import Config
from tltransfer.report import analysis, document, figures, results, stats, tables

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


def study_rows(keep=lambda mode, p, dropout, seed: True, **settings):
    return [row for (mode, p, dropout), curves in sorted(CURVES.items())
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
    document.build(write_csv(tmp_path / f"{name}.csv", rows), str(out), [0.9, 0.95], "test")
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

def test_summary_and_welch_are_scipys():
    summary = stats.summarize([0.90, 0.92, 0.94])
    half = scipy_stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert (summary.mean, summary.std, summary.n) == pytest.approx((0.92, 0.02, 3))
    assert (summary.ci_low, summary.ci_high) == pytest.approx((0.92 - half, 0.92 + half))
    a, b = finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0)
    test, direct = stats.welch(a, b), scipy_stats.ttest_ind(a, b, equal_var=False)
    assert (test.diff, test.pvalue, test.df) == pytest.approx((0.05, direct.pvalue, direct.df))
    assert (test.ci_low, test.ci_high) == pytest.approx(tuple(direct.confidence_interval()))
    assert test.verdict == "significant" and math.isnan(test.seeds)


def test_power_comes_from_the_noncentral_t():
    a, b = [0.90, 0.95, 0.92], [0.91, 0.93, 0.94]
    test = stats.welch(a, b)
    assert test.verdict == "not significant"

    def power(diff, n_a, n_b):  # two-sided Welch test at alpha 0.05, by hand
        va, vb = np.var(a, ddof=1) / n_a, np.var(b, ddof=1) / n_b
        df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        crit, nc = scipy_stats.t.ppf(0.975, df), diff / math.sqrt(va + vb)
        return scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)
    assert power(test.detectable, 3, 3) == pytest.approx(0.8, abs=1e-6)
    n = int(test.seeds)
    assert power(abs(test.diff), n, n) >= 0.8 > power(abs(test.diff), n - 1, n - 1)


def test_welch_says_plainly_when_it_cannot_tell():
    flat = stats.welch([0.99] * 3, [0.98] * 3)
    assert flat.verdict == "test undefined: zero variance in both groups"
    assert math.isnan(flat.pvalue) and math.isnan(flat.detectable)
    assert stats.welch([0.9, 0.92], [0.8, 0.85]).verdict == "too few seeds to tell"


def test_curve_measures_and_interpolation():
    steps, values = np.array(STEPS, dtype=float), CURVES[("scratch", 0.01, 0.0)][0]
    assert stats.first_reach(steps, values, 0.9) == 3000
    assert stats.first_reach(steps, values, 0.95) is None
    assert stats.curve_area(steps, np.array(values)) == pytest.approx(2.41 / 3)
    assert stats.lasting_lead(steps, [1, 3, 1, 3], [2, 2, 2, 2]) == (1, 4000)
    match = stats.images_to_match([100, 1000, 10000], [0.80, 0.90, 0.96], 0.93)
    assert (match.relation, match.n) == ("~", pytest.approx(10 ** 3.5))
    assert stats.images_to_match([100, 1000], [0.8, 0.9], 0.95).relation == ">"


def test_latex_escapes_all_ten_special_characters():
    assert tables.latex_escape(r"\&%$#_{}~^") == (
        r"\textbackslash{}\&\%\$\#\_\{\}\textasciitilde{}\textasciicircum{}")


# --- the whole report -------------------------------------------------------------------------

def test_accuracy_tables_hold_hand_computed_numbers(study):
    out, text = study
    rows = read_table(out / "assignment1_accuracy.csv")
    assert [(r["p"], r["mode"]) for r in rows] == [
        ("0.01", "scratch"), ("0.01", "frozen"), ("1", "scratch"), ("1", "frozen")]
    scratch = find_row(rows, p="0.01", mode="scratch")
    assert float(scratch["mean_pct"]) == pytest.approx(92.0)
    assert float(scratch["std_pp"]) == pytest.approx(2.0)
    assert (float(scratch["ci_low_pct"]), float(scratch["ci_high_pct"])) == pytest.approx(
        (87.0317, 96.9683), abs=1e-4)
    assert "| 0.01 | 200 | scratch | 0 | 92.00 | 2.00 | 87.03 | 96.97 | 3 |" in text
    assert len(read_table(out / "assignment3_accuracy.csv")) == 12
    latex = (out / "assignment3_accuracy.tex").read_text()
    assert r"\toprule" in latex and "87.03" in latex and r"95\% CI low (\%)" in latex


def test_statistics_table_pins_scipy(study):
    out, _ = study
    rows = read_table(out / "statistics.csv")
    row = find_row(rows, comparison="frozen vs scratch", dropout="0", p="0.01")
    direct = scipy_stats.ttest_ind(finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0),
                                   equal_var=False)
    assert float(row["pvalue"]) == pytest.approx(direct.pvalue, abs=1e-6)
    assert float(row["df"]) == pytest.approx(direct.df, abs=1e-6)
    assert float(row["ci_low_pp"]) == pytest.approx(100 * direct.confidence_interval().low,
                                                    abs=1e-6)
    assert float(row["diff_pp"]) == pytest.approx(5.0)
    flat = find_row(rows, comparison="frozen vs scratch", dropout="0.5", p="1")
    assert flat["pvalue"] == "" and flat["verdict"].startswith("test undefined")
    dropout = find_row(rows, comparison="scratch: dropout 0.5 vs 0", p="0.01")
    assert float(dropout["diff_pp"]) == pytest.approx(3.0)
    assert float(dropout["seeds_to_decide"]) >= 2 and float(dropout["detectable_pp"]) > 0


def test_source_convergence_and_efficiency(study):
    out, text = study
    source = find_row(read_table(out / "source_accuracy.csv"), dropout="0")
    assert source["mean_pct"] == "99.3" and source["meets_spec"] == "yes"
    assert "seed 0: 99.10, seed 1: 99.30, seed 2: 99.50" in source["per_seed_pct"]
    assert "6-9 scratch net at p = 1, dropout 0: mean 99.20% over 3 runs meets" in text
    rows = read_table(out / "convergence.csv")
    scratch = find_row(rows, p="0.01", mode="scratch", dropout="0")
    assert float(scratch["samples_mean_0.9"]) == pytest.approx(8000 / 3, abs=1e-3)
    assert (scratch["samples_mean_0.95"], scratch["reached_0.95"]) == ("", "0/3")
    frozen = find_row(read_table(out / "data_efficiency.csv"), mode="frozen", dropout="0",
                      p="0.01")
    means = finals("scratch", 0.01, 0.0).mean(), finals("scratch", 1.0, 0.0).mean()
    expected = math.exp(math.log(200) + (0.97 - means[0]) / (means[1] - means[0])
                        * (math.log(23900) - math.log(200)))
    assert frozen["relation"] == "about"
    assert float(frozen["scratch_images"]) == pytest.approx(expected, rel=1e-6)


def test_key_findings_come_first_and_cite_their_cells(study):
    _, text = study
    assert text.index("## Key findings") < text.index("## Provenance")
    findings = text[text.index("## Key findings"):text.index("## Provenance")]
    bullets = [line for line in findings.splitlines() if line.startswith("- ")]
    assert 3 <= len(bullets) <= 8
    assert all("[" in b and "]" in b for b in bullets[:-1])
    assert ("frozen beats scratch by +5.00 pp" in bullets[0]
            and "[All statistical tests: frozen vs scratch, p 0.01, dropout 0]" in bullets[0])
    assert "not tested under other training settings" in bullets[-1]


def test_discussion_is_built_from_the_numbers(study):
    _, text = study
    discussion = text[text.index("## Discussion"):]
    assert "frozen is ahead of scratch by 5.00 pp" in discussion
    assert "finetune's mean curve overtakes scratch's for good at 3,000 samples" in discussion
    assert "scratch, p = 0.01 (200 images): final accuracy 92.00% -> 95.00%" in discussion
    assert "seeds per side would detect this difference" in discussion


def test_every_figure_is_written_and_linked(study):
    out, text = study
    for stem in ("final_accuracy_boxplot", "learning_curves_drop0", "learning_curves_drop0.5",
                 "source_learning_curve", "convergence", "data_efficiency"):
        assert (out / f"{stem}.png").exists() and (out / f"{stem}.pdf").exists()
        assert f"({stem}.png)" in text


# --- figures: what a reader sees --------------------------------------------------------------

def legend_entries(fig):
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return {text.get_text(): handle for legend in legends
            for text, handle in zip(legend.get_texts(), legend.legend_handles)}


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    path = write_csv(tmp_path_factory.mktemp("groups") / "r.csv", study_rows())
    return analysis.analyze(results.load_runs(path), [0.9, 0.99]).groups


def test_legends_tell_dropouts_apart(groups, tmp_path):
    targets = [g for g in groups.values() if g.mode != "source"]
    fig, _ = figures.data_efficiency(targets, tmp_path)
    entries = legend_entries(fig)
    assert {"scratch, dropout 0", "scratch, dropout 0.5", "finetune, dropout 0.5"} <= set(entries)
    assert entries["scratch, dropout 0"].get_linestyle() != \
        entries["scratch, dropout 0.5"].get_linestyle()
    # A marker on a legend line draws it solid, whatever its style: none here.
    assert {entry.get_marker() for entry in entries.values()} <= {"None", None, ""}
    assert entries["scratch, dropout 0"].get_color() != entries["frozen, dropout 0"].get_color()


def test_empty_panels_say_not_reached_and_scales_are_stated(groups, tmp_path):
    targets = [g for g in groups.values() if g.mode != "source"]
    fig, _ = figures.convergence(targets, [0.9, 0.999], tmp_path)
    last = fig.axes[2]  # samples to 99.9%: no run got there
    assert [t.get_text() for t in last.texts] == ["not reached"] and not last.lines
    assert "own y scale" in fig._suptitle.get_text()
    assert {"frozen, dropout 0", "frozen, dropout 0.5"} <= set(legend_entries(fig))


def test_source_legend_has_no_off_axis_line_and_right_plurals(groups, tmp_path):
    one = analysis.Group(groups[("source", 1.0, 0.0)].runs[:1])
    fig, _ = figures.source_curves([one, groups[("source", 1.0, 0.5)]], tmp_path)
    entries = legend_entries(fig)
    assert set(entries) == {"dropout 0 (1 seed)", "dropout 0.5 (3 seeds)", "spec: 99%"}
    low = analysis.Group([dataclasses.replace(
        r, curves={"test/accuracy": (r.test_curve[0], r.test_curve[1] - 0.3)})
        for r in groups[("source", 1.0, 0.0)].runs])
    fig, _ = figures.source_curves([low], tmp_path)
    ax = fig.axes[0]
    assert set(legend_entries(fig)) == {"dropout 0 (3 seeds)"}  # 99% is off its axis
    assert all(ax.get_ylim()[0] <= y <= ax.get_ylim()[1] for line in ax.lines
               for y in line.get_ydata())


# --- settings beyond the lab's axes -----------------------------------------------------------

SWEEPS = {"train_samples": (4000, 2000), "lr": (1e-3, 3e-3)}


def sweep_rows(setting):
    """The study at the first value, and scratch and frozen at p = 0.01, dropout 0 again at
    the second, 20 points lower: pooled, every mean there would move."""
    rows = study_rows(lambda mode, p, dropout, seed: p == 0.01, **{setting: SWEEPS[setting][0]})
    for mode in ("scratch", "frozen"):
        for seed, curve in enumerate(CURVES[(mode, 0.01, 0.0)]):
            rows += run_rows(mode, 0.01, 0.0, seed, [v - 0.2 for v in curve],
                             **{setting: SWEEPS[setting][1]})
    return rows


@pytest.mark.parametrize("setting", sorted(SWEEPS))
def test_a_swept_setting_gets_its_section_and_is_not_pooled(tmp_path, setting):
    out, text = build(tmp_path, sweep_rows(setting))
    scratch = find_row(read_table(out / "assignment1_accuracy.csv"), p="0.01", mode="scratch")
    assert float(scratch["mean_pct"]) == pytest.approx(92.0) and scratch["n_runs"] == "3"
    assert f"## Sensitivity to {setting}" in text
    assert f"Settings that vary beyond mode, p, dropout and seed: {setting}" in text
    low = tables.value_text(SWEEPS[setting][1])
    table = read_table(out / f"sensitivity_{setting}_accuracy.csv")
    assert float(find_row(table, **{setting: low}, mode="scratch")["mean_pct"]) == \
        pytest.approx(72.0)
    gains = read_table(out / f"sensitivity_{setting}_gains.csv")
    gain = find_row(gains, **{setting: low}, comparison="frozen vs scratch")
    assert float(gain["diff_pp"]) == pytest.approx(5.0)
    high = tables.value_text(SWEEPS[setting][0])
    first, second = sorted([f"{setting} {low} holds", f"{setting} {high} holds"],
                           key=lambda text: float(text.split()[1]))
    assert (f"frozen beats scratch at p = 0.01, dropout 0 (+5.00 pp in the main tables): "
            f"{first}; {second}") in text
    assert (out / f"sensitivity_{setting}.png").exists()


def test_runs_that_differ_in_two_settings_are_listed_not_tabled(tmp_path):
    rows = study_rows(keep=lambda mode, p, dropout, seed: mode in ("scratch", "frozen")
                      and p == 0.01 and dropout == 0)
    rows += run_rows("scratch", 0.01, 0.0, 0, [0.1] * 4, lr=3e-3, batch_size=50)
    out, text = build(tmp_path, rows)
    assert "differ from the main tables in more than one setting" in text
    assert "  - lr 0.003, batch_size 50 (1 run): scratch_p0.01_drop0_seed0" in text
    assert find_row(read_table(out / "assignment1_accuracy.csv"), p="0.01",
                    mode="scratch")["n_runs"] == "3"


def test_csv_of_an_older_export_reads_with_defaults(tmp_path):
    old = ["run", "mode", "p", "n_train", "dropout", "seed", "lr", "train_samples", "tag",
           "step", "value"]
    rows = study_rows(keep=lambda mode, p, dropout, seed: seed == 0 and dropout == 0 and p == 1)
    rows = [{**r, "train_samples": r["samples"]} for r in rows]  # the budget, as it was
    runs = {r.mode: r for r in results.load_runs(write_csv(tmp_path / "old.csv", rows, old))}
    assert runs["source"].source_samples == 4000 and runs["source"].train_samples == 60000
    assert runs["scratch"].train_samples == 4000
    assert runs["frozen"].transfer_layers == Config().transfer_layers


def test_provenance_lists_commands_that_made_runs_and_refused_ones_as_refused(tmp_path):
    (tmp_path / "results_meta.json").write_text(
        '{"commands": ["python -m tltransfer.main --p=0.01"], "refused_commands": [{"command": '
        '"python -m tltransfer.main --lr=-1", "reason": "lr must be positive"}], "flagfiles": '
        '["flags/a1.cfg"], "versions": {"tensorflow": "2.19.0"}, "data_sha256": ["abc"]}')
    meta, note = results.load_meta(str(tmp_path / "results.csv"))
    text = "\n".join(document.provenance(str(tmp_path / "results.csv"), meta, note))
    assert "training command: `python -m tltransfer.main --p=0.01`" in text
    assert "refused (trained nothing): `python -m tltransfer.main --lr=-1`" in text
    assert "training command: `python -m tltransfer.main --lr=-1`" not in text
    assert "flagfiles: `flags/a1.cfg`" in text and "tensorflow 2.19.0" in text


# --- bad input --------------------------------------------------------------------------------

BAD = {  # message -> (arguments but --out, --out)
    "does not exist": lambda d: ([f"--csv={d / 'none.csv'}"], d / "report"),
    "lacks the column(s) value": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows(), export.COLUMNS[:-1])}"], d / "report"),
    "is not a valid number": lambda d: (["--csv=" + write_csv(d / "r.csv", [
        {**r, "value": "high"} for r in study_rows()])], d / "report"),
    "--thresholds=2": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows())}", "--thresholds=2"], d / "report"),
    "cannot write the report": lambda d: (
        [f"--csv={write_csv(d / 'r.csv', study_rows())}"], "/proc/no/report"),
}


@pytest.mark.parametrize("message", sorted(BAD))
def test_bad_input_gives_one_error_line_and_writes_nothing(tmp_path, message):
    args, out = BAD[message](tmp_path)
    result = cli(*args, f"--out={out}")
    assert message in error_line(result)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.exists(out)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".report")]


def test_out_dir_holding_other_files_is_not_replaced(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(results.ReportError, match="is not an earlier report"):
        document.build(write_csv(tmp_path / "r.csv", study_rows()), str(tmp_path / "notes"),
                       [0.9], "test")
    assert os.listdir(tmp_path / "notes") == ["keep.txt"]


def test_the_report_imports_no_tensorflow():
    probe = ("import sys, tltransfer.report.__main__, tltransfer.report.document; "
             "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert out.stdout.split() == ["False"], out.stderr


# --- the committed study: the old report's numbers, unchanged ---------------------------------

def test_committed_study_gives_the_old_reports_numbers():
    a = analysis.analyze(results.load_runs(os.path.join(REPO, "docs/study/results.csv")),
                         [0.9, 0.95, 0.98, 0.99])
    assert a.sensitivities == [] and len(a.runs) == 78
    stats_rows = tables.statistics("s", "s", a.comparisons).display()
    # (comparison, p, dropout, difference, CI low, CI high, p-value) of the old statistics.csv
    for expected in (("frozen vs scratch", "0.005", "0", "+4.68", "+3.91", "+5.45", "< 0.001"),
                     ("finetune vs frozen", "0.01", "0", "-0.72", "-1.50", "+0.06", "0.061"),
                     ("finetune vs scratch", "1", "0.5", "+0.36", "+0.01", "+0.71", "0.046"),
                     ("frozen: dropout 0.5 vs 0", "1", "0.5 vs 0", "-0.15", "-0.32", "+0.02",
                      "0.065")):
        assert any(tuple(row[:6]) + (row[7],) == expected for row in stats_rows), expected
    accuracy = tables.accuracy("a", "a", a.assignments[2].groups).display()
    assert ["0.005", "100", "scratch", "0", "84.26", "0.24", "83.66", "84.86", "3"] in accuracy
    assert ["1", "23,900", "finetune", "0.5", "99.14", "0.03", "99.08", "99.21", "3"] in accuracy
    efficiency = tables.efficiency(a.efficiencies).display()
    assert ["frozen", "0", "0.005", "100", "88.94", "about", "176", "1.76x"] in efficiency
    convergence = tables.convergence([g for g in a.groups.values() if g.mode != "source"],
                                     a.thresholds).display()
    assert ["1", "23,900", "frozen", "0", "1,000", "3/3", "2,333", "3/3", "10,333", "3/3",
            "44,000", "2/3", "98.44", "0.08"] in convergence
