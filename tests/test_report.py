"""tools/report.py on a small synthetic study whose numbers are known by construction."""

import csv
import importlib.util
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_PY = os.path.join(REPO, "tools", "report.py")


def _load_report_module():
    # `tools` may lack an __init__.py, or another installed `tools` may shadow ours: fall back
    # to loading the file itself, registered so that its dataclasses can find their module.
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    try:
        from tools import report as module
        if os.path.abspath(module.__file__) == REPORT_PY:
            return module
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location("tools_report_under_test", REPORT_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report = _load_report_module()

HEADER = ["run", "mode", "p", "n_train", "dropout", "seed", "lr", "lr_schedule", "batch_size",
          "train_samples", "tag", "step", "value"]
STEPS = (1000, 2000, 3000, 4000)
N_TRAIN = {0.01: 200, 1.0: 23900}

# Hand-picked test-accuracy curves (one per seed) for the configurations the tests check.
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
FIGURES = ("final_accuracy_boxplot", "learning_curves_drop0", "learning_curves_drop0.5",
           "source_learning_curve", "convergence", "data_efficiency")


def finals(mode, p, dropout):
    return np.array([curve[-1] for curve in CURVES[(mode, p, dropout)]])


def run_name(mode, p, dropout, seed):
    tail = f"drop{dropout:g}_seed{seed}"
    return f"source_{tail}" if mode == "source" else f"{mode}_p{p:g}_{tail}"


def study_rows(keep=lambda mode, p, dropout, seed: True):
    rows = []
    for (mode, p, dropout), curves in sorted(CURVES.items()):
        for seed, curve in enumerate(curves):
            if not keep(mode, p, dropout, seed):
                continue
            n_train = 36017 if mode == "source" else N_TRAIN[p]
            config = [run_name(mode, p, dropout, seed), mode, f"{p:g}", n_train, f"{dropout:g}",
                      seed, "0.001", "cosine", 100, 4000]
            for step, value in zip(STEPS, curve):
                rows.append(config + ["test/accuracy", step, value])
                rows.append(config + ["test/loss", step, round(1 - value, 4)])
    return rows


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_tool(*args):
    # -W error: a NaN RuntimeWarning from numpy or scipy would fail the run.
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", REPORT_PY, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def find_row(rows, **match):
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The full synthetic study, reported once through the command line."""
    root = tmp_path_factory.mktemp("study")
    csv_path = write_csv(root / "results.csv", study_rows())
    out = root / "report"
    result = run_tool(f"--csv={csv_path}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    return out, (out / "report.md").read_text()


# --- statistics, unit by unit -----------------------------------------------------------------

def test_summarize_matches_hand_computed_t_interval():
    summary = report.summarize([0.90, 0.92, 0.94])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t(0.975, df=2) * std / sqrt(n)
    assert summary.mean == pytest.approx(0.92)
    assert summary.std == pytest.approx(0.02)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((0.92 - half, 0.92 + half))
    assert summary.n == 3
    single = report.summarize([0.5])
    assert single.mean == 0.5 and math.isnan(single.std) and math.isnan(single.ci_low)


def test_first_reach_and_curve_area():
    steps = np.array(STEPS, dtype=float)
    values = CURVES[("scratch", 0.01, 0.0)][0]
    assert report.first_reach(steps, values, 0.9) == 3000
    assert report.first_reach(steps, values, 0.95) is None
    # Trapezoid by hand: (0.65 + 0.855 + 0.905) * 1000 / 3000.
    assert report.curve_area(steps, values) == pytest.approx(2.41 / 3)


def test_welch_test_matches_scipy_and_welch_satterthwaite():
    a, b = finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0)
    result = report.welch_test(a, b)
    assert result.pvalue == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    se2 = a.var(ddof=1) / 3 + b.var(ddof=1) / 3
    df = se2 ** 2 / ((a.var(ddof=1) / 3) ** 2 / 2 + (b.var(ddof=1) / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    assert result.diff == pytest.approx(0.05)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.05 - half, 0.05 + half))
    assert result.verdict == "significant"


def test_welch_test_says_plainly_when_it_cannot_tell():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = report.welch_test([0.99] * 3, [0.98] * 3)
        few = report.welch_test([0.9, 0.92], [0.8, 0.85])
        one = report.welch_test([0.9], [0.8, 0.85, 0.83])
    assert flat.diff == pytest.approx(0.01) and math.isnan(flat.pvalue)
    assert flat.verdict == "test undefined: zero variance in both groups"
    assert few.verdict == "too few seeds to tell"
    assert one.verdict == "too few seeds to tell" and math.isnan(one.pvalue)
    noisy = report.welch_test([0.90, 0.95, 0.92], [0.91, 0.93, 0.94])
    assert noisy.verdict == "not significant"


def test_scratch_images_to_match_interpolates_in_log_n():
    ns, accs = [100, 1000, 10000], [0.80, 0.90, 0.96]
    match = report.scratch_images_to_match(ns, accs, 0.93)
    assert match.relation == "~"
    assert match.n == pytest.approx(10 ** 3.5)  # halfway between 0.90 and 0.96 in log10 n
    assert report.scratch_images_to_match(ns, accs, 0.75).text() == "<= 100"
    assert report.scratch_images_to_match(ns, accs, 0.97).text() == "more than 10,000"


def test_lasting_lead_finds_the_last_change_of_order():
    steps = np.array([1, 2, 3, 4, 5])
    assert report.lasting_lead(steps, [1, 3, 1, 3, 3], [2, 2, 2, 2, 2]) == (1, 4)
    assert report.lasting_lead(steps, [3, 3, 3, 3, 3], [2, 2, 2, 2, 2]) == (1, 1)
    assert report.lasting_lead(steps, [1, 1, 1, 1, 1], [2, 2, 2, 2, 1]) == (0, None)


# --- the whole report -------------------------------------------------------------------------

def test_accuracy_tables_hold_hand_computed_numbers(study):
    out, _ = study
    rows = read_table(out / "assignment1_accuracy.csv")
    assert [(r["p"], r["mode"]) for r in rows] == [
        ("0.01", "scratch"), ("0.01", "frozen"), ("1", "scratch"), ("1", "frozen")]
    scratch = find_row(rows, p="0.01", mode="scratch")
    assert (scratch["mean_pct"], scratch["std_pp"]) == ("92.00", "2.00")
    assert (scratch["ci_low_pct"], scratch["ci_high_pct"]) == ("87.03", "96.97")
    assert scratch["n_runs"] == "3"
    frozen = find_row(rows, p="1", mode="frozen")
    assert (frozen["mean_pct"], frozen["std_pp"]) == ("98.60", "0.10")
    assert len(read_table(out / "assignment2_accuracy.csv")) == 6
    assert len(read_table(out / "assignment3_accuracy.csv")) == 12
    latex = (out / "assignment3_accuracy.tex").read_text()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert "87.03" in latex


def test_source_nets_and_spec_check(study):
    out, text = study
    row = find_row(read_table(out / "source_accuracy.csv"), dropout="0")
    assert row["mean (%)"] == "99.30" and row[">= 99%"] == "yes"
    assert "seed 0: 99.10, seed 1: 99.30, seed 2: 99.50" in row["per seed (%)"]
    assert "6-9 scratch net at p = 1, dropout 0: mean 99.20% over 3 run(s) meets" in text


def test_convergence_counts_reached_runs(study):
    out, text = study
    rows = read_table(out / "convergence.csv")
    scratch = find_row(rows, p="0.01", mode="scratch", dropout="0")
    assert float(scratch["samples_mean_0.9"]) == pytest.approx(8000 / 3, abs=0.1)
    assert scratch["reached_0.95"] == "0" and scratch["samples_mean_0.95"] == ""
    frozen = find_row(rows, p="0.01", mode="frozen", dropout="0")
    assert float(frozen["samples_mean_0.95"]) == pytest.approx(7000 / 3, abs=0.1)
    assert (frozen["samples_mean_0.98"], frozen["reached_0.98"]) == ("4000.0", "1")
    assert float(frozen["area_mean_pct"]) == pytest.approx(
        100 * np.mean([report.curve_area(STEPS, c) for c in CURVES[("frozen", 0.01, 0.0)]]),
        abs=0.005)
    assert "| 0.01 | 200 | scratch | 0 | 2,667 | not reached (0/3) | not reached (0/3) |" in text
    assert "4,000 (1/3 reached)" in text


def test_data_efficiency_interpolates_scratch(study):
    out, text = study
    rows = read_table(out / "data_efficiency.csv")
    frozen = find_row(rows, mode="frozen", dropout="0", p="0.01")
    scratch_means = (finals("scratch", 0.01, 0.0).mean(), finals("scratch", 1.0, 0.0).mean())
    fraction = (0.97 - scratch_means[0]) / (scratch_means[1] - scratch_means[0])
    expected = math.exp(math.log(200) + fraction * (math.log(23900) - math.log(200)))
    assert frozen["relation"] == "~"
    assert float(frozen["scratch_images"]) == pytest.approx(expected, abs=0.1)
    assert float(frozen["ratio"]) == pytest.approx(expected / 200, abs=1e-4)
    assert find_row(rows, mode="finetune", dropout="0", p="1")["relation"] == ">"
    assert find_row(rows, mode="frozen", dropout="0.5", p="0.01")["relation"] == "<="
    assert "more than 23,900" in text and "<= 200" in text


def test_statistics_csv_p_value_is_scipys(study):
    out, _ = study
    rows = read_table(out / "statistics.csv")
    row = find_row(rows, a_mode="frozen", b_mode="scratch", a_dropout="0", p="0.01")
    expected = stats.ttest_ind(finals("frozen", 0.01, 0.0), finals("scratch", 0.01, 0.0),
                               equal_var=False).pvalue
    assert float(row["pvalue"]) == pytest.approx(expected, rel=1e-5)
    assert float(row["diff_pp"]) == pytest.approx(5.0)
    flat = find_row(rows, a_mode="frozen", b_mode="scratch", a_dropout="0.5", p="1")
    assert flat["pvalue"] == "" and flat["ci_low_pp"] == ""
    assert flat["verdict"] == "test undefined: zero variance in both groups"
    dropout = find_row(rows, a_mode="scratch", b_mode="scratch", a_dropout="0.5", p="0.01")
    assert float(dropout["diff_pp"]) == pytest.approx(100 * (0.95 - 0.92))


def test_discussion_is_built_from_the_numbers(study):
    _, text = study
    discussion = text[text.index("## Discussion"):]
    assert "frozen is ahead of scratch by 5.00 pp" in discussion
    assert "finetune's mean curve overtakes scratch's for good at 3,000 samples" in discussion
    assert "frozen's mean curve is above scratch's from the first evaluation" in discussion
    assert "scratch: dropout 0.5 vs 0" not in discussion  # dropout bullets name mode and p
    assert "scratch, p = 0.01 (200 images): final accuracy 92.00% -> 95.00%" in discussion
    # frozen vs scratch at p = 0.01: +5 pp without dropout, -1 pp with.
    assert "frozen vs scratch at p = 0.01 (+5.00 pp without dropout, -1.00 pp with)" in discussion


def test_header_states_command_and_versions(study):
    out, text = study
    head = text[:text.index("## 0-5 source nets")]
    assert f"--out={out}" in head and head.count("python ") >= 1
    assert "results_meta.json` is absent" in head
    assert "numpy" in head and "scipy" in head and "matplotlib" in head


def test_every_figure_is_written(study):
    out, text = study
    for stem in FIGURES:
        for extension in ("png", "pdf"):
            path = out / f"{stem}.{extension}"
            assert path.stat().st_size > 1000, path
        assert f"({stem}.png)" in text


def test_meta_file_is_reported(tmp_path):
    csv_path = write_csv(tmp_path / "results.csv", study_rows(
        lambda mode, p, dropout, seed: dropout == 0.0 and p == 0.01))
    (tmp_path / "results_meta.json").write_text(
        '{"commands": ["python -m tltransfer.main --p=0.01"], "flagfiles": ["flags/a1.cfg"], '
        '"versions": {"tensorflow": "2.19.0", "numpy": "2.1.0"}, "data_sha256": ["abc123"], '
        '"logdir": "logs"}')
    files = report.build_report(str(csv_path), str(tmp_path / "out"), [0.9], "python x")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "training command: `python -m tltransfer.main --p=0.01`" in text
    assert "flagfiles: `flags/a1.cfg`" in text and "tensorflow 2.19.0" in text
    assert "data sha256: `abc123`" in text and "logdir: `logs`" in text
    assert sorted(os.listdir(tmp_path / "out")) == sorted(files)


def test_partial_study_still_reports(tmp_path):
    csv_path = write_csv(tmp_path / "results.csv", study_rows(
        lambda mode, p, dropout, seed: mode in ("scratch", "finetune") and p == 0.01
        and dropout == 0.0 and seed == 0))
    out = tmp_path / "report"
    result = run_tool(f"--csv={csv_path}", f"--out={out}")
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    assert "no runs for frozen at dropout 0" in text
    assert "no source runs" in text
    assert "too few seeds to tell" in text
    assert (out / "learning_curves_drop0.png").stat().st_size > 1000


BAD_INPUTS = {
    "does not exist": lambda path: None,
    "is empty": lambda path: path.write_text(""),
    "lacks the column(s) value": lambda path: write_csv(path, [], HEADER[:-1]),
}
MALFORMED = {
    "no data rows": lambda path: write_csv(path, []),
    "no test/accuracy rows": lambda path: write_csv(
        path, [r for r in study_rows() if r[HEADER.index("tag")] != "test/accuracy"]),
    "value='high' is not a valid number":
        lambda path: write_csv(path, [r[:-1] + ["high"] for r in study_rows()]),
    "has 12 fields but the header has 13": lambda path: write_csv(path, [r[:-1] for r in
                                                                         study_rows()]),
}


@pytest.mark.parametrize("message", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line(tmp_path, message):
    BAD_INPUTS[message](tmp_path / "results.csv")
    out = tmp_path / "report"
    result = run_tool(f"--csv={tmp_path / 'results.csv'}", f"--out={out}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".report-")]


@pytest.mark.parametrize("message", sorted(MALFORMED))
def test_malformed_csv_is_refused_with_the_reason(tmp_path, message):
    MALFORMED[message](tmp_path / "results.csv")
    with pytest.raises(report.ReportError) as raised:
        report.build_report(str(tmp_path / "results.csv"), str(tmp_path / "out"), [0.9], "x")
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == ["results.csv"]


def test_out_dir_holding_other_files_is_not_replaced(tmp_path):
    csv_path = write_csv(tmp_path / "results.csv", study_rows(
        lambda mode, p, dropout, seed: mode == "scratch" and dropout == 0.0))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    result = run_tool(f"--csv={csv_path}", f"--out={tmp_path / 'notes'}")
    assert result.returncode != 0 and "is not an earlier report" in result.stderr
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
