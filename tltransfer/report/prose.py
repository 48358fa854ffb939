"""The report's sentences, read off the Analysis: this module selects and computes nothing.

P is the proportion of the 6-9 training images and p a p-value, everywhere. Differences are
a - b in percentage points (pp) of final test accuracy; "significant" means Holm's adjusted
p < 0.05. A citation [Table: rows] names the table and the rows a sentence rests on.
"""

import os
import re
import sys

import matplotlib
import numpy as np
import scipy

from tltransfer.cli import plural
from tltransfer.report.analysis import LAB_DROPOUT, QUESTIONS, SPEC_ACCURACY
from tltransfer.report.results import DEFAULTS, meta_path
from tltransfer.report.tables import RELATION, count, significant_digits, value_text

ACCURACY, COMPARISONS, SOURCE = "Final accuracy", "Comparisons", "Source nets"
EFFICIENCY, SHAPES = "Data efficiency", "Curve shapes"
ABSOLUTE = re.compile(r"(?<![\w.~-])/[\w.+@-]+(?:/[\w.+@-]+)*")


def gains_title(setting):
    return f"Transfer gains at other {setting}"


def pp(fraction):
    """A difference in pp: two decimals below 1 pp, one above."""
    x = 100 * fraction
    return f"{x:+.1f}" if abs(x) >= 0.995 else f"{round(x, 2) + 0.0:+.2f}"


def cite(table, *rows):
    return f"[{table}: {'; '.join(rows)}]" if rows else f"[{table}]"


def ps_text(ps, every):
    """'P <= 0.01', 'P >= 0.1', 'P = 0.1', 'P 0.01-0.1' or 'every P' within the Ps `every`."""
    if len(ps) == 1:
        return f"P = {ps[0]:g}"
    if list(ps) == list(every):
        return "every P"
    if ps[0] == every[0]:
        return f"P ≤ {ps[-1]:g}"
    return f"P ≥ {ps[0]:g}" if ps[-1] == every[-1] else f"P {ps[0]:g}-{ps[-1]:g}"


WORDS = {"modes": {1: "ahead", -1: "behind", 0: "neither ahead nor behind"},
         "dropout": {1: "helps", -1: "costs", 0: "is mixed"}}
NEUTRAL = 0.0025  # a mixed stretch within this (10 of 3,969 images) is neutral, or level


def verb(s, kind):
    if s.direction == 0 and max(abs(s.low), abs(s.high)) <= NEUTRAL:
        return "is neutral" if kind == "dropout" else "level"
    return WORDS[kind][s.direction]



def stretch_text(s, kind, every):
    span = pp(s.low) if abs(s.high - s.low) < 5e-5 else f"{pp(s.low)} to {pp(s.high)}"
    untested = [c.test.why_undefined for c in s.comparisons if c.test.why_undefined]
    if len(untested) == len(s.comparisons):
        sure = f"not tested: {untested[0]}"
    elif not s.significant:
        sure = "not significant"
    elif len(s.significant) == len(s.comparisons):
        sure = "significant"
    else:
        sure = "significant " + " and ".join(
            (f"for {c.a.mode} " if kind == "dropout" else "") + f"at P = {c.a.p:g}"
            for c in s.significant)
    return f"{verb(s, kind)} at {ps_text(s.ps, every)} ({span} pp, {sure})"


def pattern_text(pattern, every):
    kind = "dropout" if pattern.dropout is None else "modes"
    subject = (f"Dropout {LAB_DROPOUT:g} (against none)" if kind == "dropout" else
               f"{pattern.sides[0]} against {pattern.sides[1]}, dropout {pattern.dropout:g}")
    return f"{subject}: " + ", ".join(stretch_text(s, kind, every) for s in pattern.stretches)


def question_lines(a):
    every = sorted({c.p for c in a.scores.cells("scratch", "frozen", "finetune")})
    lines = []
    for q in QUESTIONS:
        found = [p for p in a.patterns if p.question == q.number]
        rows = sorted({f"dropout {value_text(d)}" for d in q.dropouts})
        head = f"- **Assignment {q.number}, {q.title}.** "
        if not found:
            lines.append(head + "Not compared: the CSV has no runs for it.")
            continue
        lines.append(head + "; ".join(pattern_text(p, every) for p in found) + " " + cite(
            COMPARISONS, f"A {q.number}") + " " + cite(ACCURACY, *rows) + ".")
    return lines


def spec_line(a):
    """The lab's 99% for the 0-5 nets and for 6-9 scratch at P = 1, without the numbers."""
    finals = a.scores.estimates["final"]
    checked = [c for c in a.scores.cells("source", "scratch")
               if c.mode == "source" or c.p == 1.0]
    if not checked:
        return []
    names = {"source": "0-5 source net", "scratch": "6-9 scratch at P = 1"}
    verdict = {c: "meets" if finals[c].mean >= SPEC_ACCURACY else "misses" for c in checked}
    words = [f"{names[c.mode]} with dropout {c.dropout:g} {verdict[c]} it" for c in checked]
    return [f"- **The lab's {100 * SPEC_ACCURACY:g}%:** " + "; ".join(words) + " "
            + cite(SOURCE) + " " + cite(ACCURACY, "P 1") + "."]


def efficiency_line(a):
    if not a.efficiencies:
        return []
    parts = [f"{match_text(e)} to match {e.gain.a.mode} at P = {e.gain.a.p:g}, dropout "
             f"{e.gain.a.dropout:g}" for e in a.efficiencies[:3]]
    more = len(a.efficiencies) - len(parts)
    return ["- **Data efficiency** (only where transfer's difference from scratch is "
            "significant): a scratch net needs " + "; ".join(parts)
            + (f"; {more} more in the table" if more > 0 else "") + " " + cite(EFFICIENCY) + "."]


def match_text(e):
    if e.relation == ">":
        return f"more than {count(e.images)} images (not reached at its largest size)"
    return f"{RELATION[e.relation]} {significant_digits(e.images)} images ({e.ratio:.2g}x)"


def shape_text(s):
    where = f"{s.cell.mode} at P = {s.cell.p:g}, dropout {s.cell.dropout:g}"
    return (f"{where} falls {100 * s.fall.mean:.1f} pp from {100 * s.high:.1f}% at "
            f"{s.high_step:,} examples to {100 * s.low:.1f}% at {s.low_step:,}")


def curves_line(a):
    if not a.headline_shapes:
        return []
    return ["- **The curves:** " + "; ".join(map(shape_text, a.headline_shapes)) + " (larger "
            "than the seed spread) " + cite(SHAPES) + "."]


def certainty_line(a):
    tests = [c for c in a.comparisons if not np.isnan(c.test.pvalue)]
    if not tests:
        return ["- **How sure:** no comparison has at least 2 seeds a side with any spread, "
                "so nothing is tested."]
    open_ = [c.test.detectable for c in tests if not c.significant]
    seeds = [c.test.seeds for c in tests if not np.isnan(c.test.seeds)]
    won = sum(c.significant for c in tests)
    text = (f"- **How sure:** {won} of the {plural(len(tests), 'comparison')} "
            f"{'is' if won == 1 else 'are'} significant after Holm's correction")
    if open_:
        text += f"; the others could only detect differences of {span(open_)} pp (power 0.8)"
    if seeds:
        text += (f"; detecting {100 * a.target:g} pp would take about "
                 f"{span(seeds, lambda n: f'{n:.0f}' if np.isfinite(n) else 'over 1000')} "
                 "seeds per side (an estimate from the pooled spread)")
    return [text + " " + cite(COMPARISONS) + "."]


def span(values, fmt=lambda x: f"{100 * x:.2f}"):
    low, high = fmt(min(values)), fmt(max(values))
    return low if low == high else f"{low}-{high}"


def robustness_lines(a):
    return [f"- **Other {s.setting}** ({', '.join(map(value_text, s.values))}): "
            f"{sum(c.holds for c in s.conclusions)} of "
            f"{plural(len(s.conclusions), 'significant gain')} over scratch hold at every value "
            f"{cite(gains_title(s.setting))}." for s in a.sensitivities]


def findings(a):
    intro = ("Differences are a - b in final test accuracy, in percentage points (pp); "
             "significant means Holm-adjusted p < 0.05 over all the report's tests.")
    return ["## Findings", "", intro, "", *question_lines(a), *spec_line(a), *efficiency_line(a),
            *curves_line(a), *certainty_line(a), *robustness_lines(a), ""]


def conclusion_lines(s):
    """Whether each significant gain of the main tables holds at the other values."""
    if not s.conclusions:
        return [f"- No significant gain of the main tables falls where {s.setting} varies.", ""]
    return [f"- {c.gain.a.mode} beats scratch at P = {c.gain.a.p:g}, dropout "
            f"{c.gain.a.dropout:g}: " + "; ".join(f"at {s.setting} {value_text(v)} it {o}"
                                                 for v, o in c.outcomes.items()) + "."
            for c in s.conclusions] + [""]


DISCUSSION = [
    "## Your discussion", "",
    "*For the student: the report states what the runs show; explaining it is yours. "
    "Questions worth answering:*", "",
    "- Why does frozen transfer help most when P is smallest, and why does the gap close as P "
    "grows?",
    "- Fine-tuning starts from the same weights as frozen transfer: why can it end below it "
    "with few images, and above it with many?",
    "- Why might dropout help at small P and not at large P?",
    "- What do the falls in the learning curves say about training this long on few images?",
    "- Which differences are too small to matter on 3,969 test images, whatever their p?", ""]


def methods(a):
    n = a.test_images
    size = (f"All 6-9 runs are scored on the same {n:,} test images (inferred from the "
            f"accuracies): one image is {100 / n:.3f} pp, and every test speaks of these "
            "images, not of new draws of digits." if n else
            "The size of the test set could not be inferred from the accuracies.")
    return ["## Methods", "",
            "- Final accuracy is a run's test accuracy at its last evaluation. Every mean "
            "comes with its 95% CI from Student's t over seeds (the one interval estimator).",
            "- Differences are tested with Welch's t-test (two-sided). With 3 seeds a side, "
            "the test rests on a normal model of the seeds: an exact permutation test of 3 "
            "against 3 cannot go below p = 0.10.",
            f"- Multiplicity: Holm's correction over all {plural(len(tests_of(a)), 'test')} of "
            "the report (one family). Holm rather than Benjamini-Hochberg because each finding "
            "rests on single comparisons a reader takes one by one: Holm bounds the chance of "
            "any false claim, not their share.",
            "- P(a > b) is the share of seed pairs in which a beats b (Mann-Whitney U over n·m, "
            "as rliable defines it): no normal model needed.",
            "- 'detectable' is the smallest difference the runs detect with probability 0.8 at "
            f"alpha 0.05 (noncentral t). 'seeds for {100 * a.target:g} pp' is an estimate from "
            "the pooled spread, whose 2-4 degrees of freedom leave it uncertain by a factor of "
            "several; `--difference` sets the difference.",
            f"- {size}",
            "- Data efficiency interpolates scratch's mean accuracy linearly in log(images) "
            "between measured sizes, shown to 2 significant digits, and only where the "
            "difference from scratch is significant."
            " 'Examples seen' counts training samples processed (epochs x images).", ""]


def tests_of(a):
    family = a.comparisons + [g for s in a.sensitivities for g in s.gains]
    return [c for c in family if not np.isnan(c.test.pvalue)]


def shown(text):
    """Paths in `text` as a reader elsewhere can use them: relative below the working
    directory, else only their last part (a committed report carries no machine paths)."""
    here = os.getcwd()

    def one(match):
        path = match.group()
        inside = os.path.commonpath([here, path]) == here
        return os.path.relpath(path, here) if inside else f".../{os.path.basename(path)}"
    return ABSOLUTE.sub(one, text)


def code_list(value):
    items = [value] if isinstance(value, str) else list(value or ())
    return ", ".join(f"`{shown(str(item))}`" for item in items) or "none recorded"


def provenance(csv_path, meta, note):
    """The commands that made the runs (refused ones only as refused), versions, data."""
    if meta is None:
        lines = [f"- Export metadata: {shown(note)}"]
    else:
        versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
        commands, refused = meta.get("commands") or (), meta.get("refused_commands") or ()
        lines = [f"- Export metadata: `{shown(meta_path(csv_path))}`"]
        lines += [f"  - training command: `{shown(c)}`" for c in commands]
        lines += [f"  - refused (trained nothing): `{shown(str(r.get('command')))}`: "
                  f"{r.get('reason')}" for r in refused]
        lines += [f"  - flagfiles: {code_list(meta.get('flagfiles'))}",
                 "  - training versions: " + (", ".join(
                     f"{k} {versions[k]}" for k in sorted(versions)) or "none recorded"),
                 f"  - data sha256: {code_list(meta.get('data_sha256'))}",
                 f"  - logdir: {code_list(meta.get('logdir'))}"]
        lines += [f"  - {key.replace('_', ' ')}, left out: {code_list(meta[key])}"
                  for key in ("failed_runs", "incomplete_runs") if meta.get(key)]
        if meta.get("incomplete_runs"):
            lines.append("  - (an incomplete run has no result.json: a run stopped before its "
                         "end, or a leftover directory of an older name; no table uses it)")
    return lines + [f"- Report made with Python {sys.version.split()[0]}, numpy "
                    f"{np.__version__}, scipy {scipy.__version__}, matplotlib "
                    f"{matplotlib.__version__}."]


def settings_lines(a):
    """Which settings vary, what the main tables hold and why, and the runs in no table."""
    base = a.baseline
    varied = ", ".join(s.setting + " (" + ", ".join(
        map(value_text, [base.values[s.setting], *s.values])) + ")" for s in a.sensitivities)
    off = [f"{f} {value_text(v)}" for f, v in base.values.items()
           if v != DEFAULTS[f] and f not in ("mode", "p", "dropout", "seed")]
    lines = [f"- Settings that vary beyond mode, P, dropout and seed: {varied or 'none'}.",
             "- The main tables hold the runs at every setting's default" + (
                 f" but {', '.join(off)}" if off else "") + "."]
    for field, (runs, tied) in base.reasons.items():
        lines.append(f"  - {field} {value_text(base.values[field])}: no run has the default "
                     f"{value_text(DEFAULTS[field])}; " + (
                         f"{' and '.join(map(value_text, tied))} have {runs} runs each, and "
                         f"{value_text(base.values[field])} is nearest the default"
                         if len(tied) > 1 else f"it has the most runs ({runs})") + ".")
    if a.absent:
        lines.append(f"- The CSV has no column for {', '.join(a.absent)}: read as their "
                     "defaults.")
    if a.ignored:
        lines.append(f"- Ignored (unknown mode or no test/accuracy): {', '.join(a.ignored)}.")
    if a.left_out:
        lines.append(f"- {plural(sum(map(len, a.left_out.values())), 'run')} differ from the "
                     "main tables in more than one setting, so they are in no table:")
    return lines + [f"  - {', '.join(f'{f} {value_text(v)}' for f, v in d)} "
                    f"({plural(len(names), 'run')}): {', '.join(names)}"
                    for d, names in a.left_out.items()]
