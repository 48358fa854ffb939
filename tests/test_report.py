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


# --- settings beyond the lab's: left out of the main report, or in sections of their own ------

SETTING_COLUMNS = ["precision", "source_classes", "target_classes", "subset", "transfer_layers",
                   "transferred_lr_scale"]
WIDE_HEADER = HEADER[:10] + SETTING_COLUMNS + HEADER[10:]
LAB_CELLS = ["float32", "0-5", "6-9", "prefix", "2", "1"]


def widen(rows, cells=LAB_CELLS):
    """Old-style rows (HEADER) with the setting columns inserted after train_samples."""
    return [row[:10] + list(cells) + row[10:] for row in rows]


def settings_rows(mode, p, dropout, finals_by_seed, suffix="", **settings):
    """Rows of one configuration: one run per final accuracy, its curve rising to it."""
    cells = [str(settings.get(name, "")) for name in SETTING_COLUMNS]  # '' = the lab's
    rows = []
    for seed, final in enumerate(finals_by_seed):
        n_train = 36017 if mode == "source" else N_TRAIN[p]
        config = [run_name(mode, p, dropout, seed) + suffix, mode, f"{p:g}", n_train,
                  f"{dropout:g}", seed, "0.001", "cosine", 100, 4000] + cells
        for step, value in zip(STEPS, (0.5, 0.7, 0.8, final)):
            rows.append(config + ["test/accuracy", step, value])
    return rows


def build(tmp_path, rows, name="report"):
    csv_path = write_csv(tmp_path / f"{name}.csv", rows, WIDE_HEADER)
    out = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a NaN from numpy or scipy fails
        report.build_report(str(csv_path), str(out), [0.9, 0.95], "python tools/report.py")
    return out, (out / "report.md").read_text()


def test_setting_columns_are_optional_and_default_to_the_labs(tmp_path):
    rows = settings_rows("frozen", 0.01, 0.0, [0.9], source_classes="0,1,2,3,4,5")
    rows += settings_rows("finetune", 0.01, 0.0, [0.9], transfer_layers="3", subset="random")
    rows += settings_rows("source", 1.0, 0.0, [0.99], target_classes="5-9", subset="random",
                          transfer_layers="1", transferred_lr_scale="0.1")
    rows += settings_rows("scratch", 0.01, 0.0, [0.9], source_classes="0-4",
                          precision="bfloat16")
    runs = {run.mode: run for run in report.load_results(
        str(write_csv(tmp_path / "r.csv", rows, WIDE_HEADER)))}
    # Empty cells and the long form of 0-5 are the lab's settings.
    assert runs["frozen"].differences() == () and runs["frozen"].source_classes == "0-5"
    assert runs["finetune"].differences() == (("subset", "random"), ("transfer_layers", 3))
    assert runs["finetune"].differences(ignore=("transfer_layers",)) == (("subset", "random"),)
    # A source net depends on precision and source classes only.
    assert runs["source"].standard and runs["source"].transferred_lr_scale == 0.1
    # A scratch net never sees the source classes, but its precision counts.
    assert runs["scratch"].differences() == (("precision", "bfloat16"),)
    # A frozen net never trains its copied layers: their learning rate does not matter.
    frozen = report.load_results(str(write_csv(tmp_path / "f.csv", settings_rows(
        "frozen", 0.01, 0.0, [0.9], transferred_lr_scale="0.1"), WIDE_HEADER)))[0]
    assert frozen.standard and frozen.transferred_lr_scale == 0.1
    old = report.load_results(str(write_csv(tmp_path / "old.csv", study_rows())))
    assert all(run.standard and run.transfer_layers == 2 for run in old)


def test_report_shares_the_run_settings_without_importing_tensorflow():
    # The report reads Config's defaults and IRRELEVANT from tltransfer.config; importing
    # TensorFlow would put its start-up lines on stderr, around the report's one-line errors.
    probe = ("import sys; from tools import report; "
             "print('tensorflow' in sys.modules, report.STANDARD_SETTINGS['transfer_layers'])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "2"]


def test_bad_transfer_layers_cell_is_refused(tmp_path):
    rows = settings_rows("frozen", 0.01, 0.0, [0.9], transfer_layers="two")
    with pytest.raises(report.ReportError, match="transfer_layers='two' is not a valid integer"):
        report.load_results(str(write_csv(tmp_path / "r.csv", rows, WIDE_HEADER)))


def test_runs_at_other_settings_stay_out_of_the_main_tables(tmp_path, study):
    standard_out, _ = study
    # Far below the standard runs: had they been mixed in, every mean would move.
    rows = widen(study_rows())
    rows += settings_rows("frozen", 0.01, 0.0, [0.30, 0.31, 0.32], "_bfloat16",
                          precision="bfloat16")
    rows += settings_rows("scratch", 0.01, 0.0, [0.40, 0.41, 0.42], "_random", subset="random")
    rows += settings_rows("scratch", 1.0, 0.0, [0.50], "_both", subset="random",
                          precision="bfloat16")
    # A source net does not depend on the target's subset: this one stays in.
    rows += [row[:5] + [3] + row[6:] for row in settings_rows(
        "source", 1.0, 0.0, [0.997], "_x", subset="random")]
    out, text = build(tmp_path, rows)
    for name in ("assignment1_accuracy.csv", "assignment2_accuracy.csv",
                 "assignment3_accuracy.csv", "statistics.csv", "data_efficiency.csv"):
        assert (out / name).read_text() == (standard_out / name).read_text(), name
    scratch = find_row(read_table(out / "assignment1_accuracy.csv"), p="0.01", mode="scratch")
    assert (scratch["mean_pct"], scratch["n_runs"]) == ("92.00", "3")
    source = find_row(read_table(out / "source_accuracy.csv"), dropout="0")
    assert "seed 3: 99.70" in source["per seed (%)"] and source["runs"] == "4"
    head = text[:text.index("## 0-5 source nets")]
    assert "7 runs with other settings are not in the main tables" in head
    assert ("  - precision bfloat16 (3 runs): frozen_p0.01_drop0_seed0_bfloat16, "
            "frozen_p0.01_drop0_seed1_bfloat16, frozen_p0.01_drop0_seed2_bfloat16") in head
    assert "  - subset random (3 runs): scratch_p0.01_drop0_seed0_random," in head
    assert "  - precision bfloat16, subset random (1 run): scratch_p1_drop0_seed0_both" in head
    assert "source_drop0_seed0_x" not in head
    assert "## Transfer depth" not in text


def test_report_without_any_standard_run_says_so(tmp_path):
    rows = settings_rows("scratch", 0.01, 0.0, [0.90, 0.91, 0.92], precision="bfloat16")
    rows += settings_rows("frozen", 0.01, 0.0, [0.93, 0.94, 0.95], target_classes="5-9")
    out, text = build(tmp_path, rows)
    assert "no run in the CSV has the lab's standard settings" in text
    assert "6 runs with other settings are not in the main tables" in text
    assert "  - target_classes 5-9 (3 runs): frozen_p0.01_drop0_seed0," in text
    assert not list(out.glob("assignment*_accuracy.csv"))
    assert "## Discussion" in text


# Final accuracies per seed, by (mode, p, dropout, transfer_layers); scratch by (p, dropout).
DEPTH_FINALS = {
    ("frozen", 0.01, 0.0, 1): [0.95, 0.96, 0.97],
    ("frozen", 0.01, 0.0, 2): [0.93, 0.94, 0.95],
    ("frozen", 0.01, 0.0, 3): [0.90, 0.91, 0.92],
    ("finetune", 0.01, 0.0, 1): [0.94, 0.95, 0.96],
    ("finetune", 0.01, 0.0, 2): [0.96, 0.97, 0.98],
    ("finetune", 0.01, 0.0, 3): [0.955, 0.965, 0.975],
    ("frozen", 1.0, 0.0, 1): [0.980, 0.981, 0.982],
    ("frozen", 1.0, 0.0, 2): [0.983, 0.984, 0.985],
    ("frozen", 1.0, 0.0, 3): [0.986, 0.987, 0.988],
    ("finetune", 1.0, 0.0, 1): [0.993, 0.994, 0.995],
    ("finetune", 1.0, 0.0, 2): [0.990, 0.991, 0.992],
    ("finetune", 1.0, 0.0, 3): [0.989, 0.990, 0.991],
    ("finetune", 1.0, 0.5, 1): [0.991, 0.992, 0.993],
    ("finetune", 1.0, 0.5, 2): [0.990, 0.991, 0.992],
}
DEPTH_SCRATCH = {(0.01, 0.0): [0.91, 0.92, 0.93], (1.0, 0.0): [0.990, 0.991, 0.992]}
LR_SCALE_FINALS = {0.1: [0.98, 0.98, 0.99]}  # finetune, p = 0.01, dropout 0, 2 layers


@pytest.fixture(scope="module")
def depth_study(tmp_path_factory):
    rows = []
    for (mode, p, dropout, layers), values in DEPTH_FINALS.items():
        rows += settings_rows(mode, p, dropout, values,
                              "" if layers == 2 else f"_layers{layers}", transfer_layers=layers)
    for (p, dropout), values in DEPTH_SCRATCH.items():
        rows += settings_rows("scratch", p, dropout, values, transfer_layers=3)  # irrelevant
    for scale, values in LR_SCALE_FINALS.items():
        rows += settings_rows("finetune", 0.01, 0.0, values, f"_lr{scale:g}",
                              transferred_lr_scale=scale)
    # At depth 1 but also bfloat16: in no section.
    rows += settings_rows("frozen", 0.01, 0.0, [0.2], "_layers1_bf16", transfer_layers=1,
                          precision="bfloat16")
    return build(tmp_path_factory.mktemp("depth"), rows)


def test_transfer_depth_table_holds_hand_computed_means(depth_study):
    out, text = depth_study
    rows = read_table(out / "transfer_depth.csv")
    assert len(rows) == len(DEPTH_FINALS)
    assert [(r["p"], r["dropout"], r["mode"], r["transfer_layers"]) for r in rows][:4] == [
        ("0.01", "0", "frozen", "1"), ("0.01", "0", "frozen", "2"),
        ("0.01", "0", "frozen", "3"), ("0.01", "0", "finetune", "1")]
    frozen = find_row(rows, p="0.01", dropout="0", mode="frozen", transfer_layers="1")
    assert (frozen["mean_pct"], frozen["std_pp"], frozen["n_runs"]) == ("96.00", "1.00", "3")
    finetune = find_row(rows, p="0.01", dropout="0", mode="finetune", transfer_layers="3")
    assert finetune["mean_pct"] == "96.50"
    deep = find_row(rows, p="1", dropout="0", mode="frozen", transfer_layers="3")
    assert deep["mean_pct"] == "98.70" and deep["n_train"] == "23900"
    section = text[text.index("## Transfer depth"):text.index("## All statistical tests")]
    assert "| 0.01 | 0 | frozen | 1 (conv1) | 96.00 | 1.00 | 3 |" in section
    assert "| 1 | 0.5 | finetune | 2 (conv1+conv2) | 99.10 | 0.10 | 3 |" in section
    assert "- p = 0.01 (200 images), dropout 0: scratch 92.00% (std 1.00 pp, 3 runs)." in section
    assert "- p = 1, dropout 0.5: no standard scratch runs." in section


def test_transfer_depth_figure_is_written(depth_study):
    out, text = depth_study
    for extension in ("png", "pdf"):
        assert (out / f"transfer_depth.{extension}").stat().st_size > 1000
    assert "(transfer_depth.png)" in text


def test_discussion_names_the_best_depth(depth_study):
    _, text = depth_study
    discussion = text[text.index("### Transfer depth"):]
    bullet = next(line for line in discussion.splitlines()
                  if line.startswith("- p = 0.01 (200 images), dropout 0:"))
    assert ("frozen is best at transfer_layers 1 (conv1) with 96.00% (1: 96.00%, 2: 94.00%, "
            "3: 91.00%), ahead of scratch's 92.00% by 4.00 pp") in bullet
    assert ("finetune is best at transfer_layers 2 (conv1+conv2) with 97.00% (1: 95.00%, "
            "2: 97.00%, 3: 96.50%), ahead of scratch's 92.00% by 5.00 pp") in bullet
    expected = stats.ttest_ind(DEPTH_FINALS[("frozen", 0.01, 0.0, 1)],
                               DEPTH_SCRATCH[(0.01, 0.0)], equal_var=False).pvalue
    assert f"p = {expected:.3f}" in bullet
    assert ("frozen is best at transfer_layers 3 (conv1+conv2+dense128) with 98.70%"
            in discussion)
    assert "behind scratch's 99.10% by 0.40 pp" in discussion  # frozen, p = 1
    assert "no standard scratch runs to compare with" in discussion  # dropout 0.5


def test_depth_and_lr_scale_runs_are_named_and_kept_apart(depth_study):
    out, text = depth_study
    head = text[:text.index("## 0-5 source nets")]
    assert ("  - transfer_layers 1 (15 runs; reported in 'Transfer depth'): "
            "finetune_p0.01_drop0_seed0_layers1,") in head
    assert "  - precision bfloat16, transfer_layers 1 (1 run): frozen_p0.01_drop0_seed0_" \
           "layers1_bf16" in head
    assert "transferred_lr_scale 0.1 (3 runs; reported in 'Learning rate of the " \
           "transferred layers')" in head
    # The main tables hold depth 2 only; scratch's transfer_layers cell does not matter.
    main = read_table(out / "assignment2_accuracy.csv")
    assert find_row(main, p="0.01", mode="frozen")["mean_pct"] == "94.00"
    assert find_row(main, p="0.01", mode="scratch")["n_runs"] == "3"
    scales = read_table(out / "transferred_lr_scale.csv")
    assert [(r["transferred_lr_scale"], r["mean_pct"]) for r in scales] == [
        ("0.1", "98.33"), ("1", "97.00")]
    assert "| 0.01 | 0 | 0.1 | 98.33 | 0.58 | 3 |" in text
