"""The report's sentences, read off the Analysis: this module computes nothing.

Differences are first minus second, in percentage points (pp) of mean final test accuracy.
A citation [Table: row] names the table and the row a sentence rests on.
"""

import math

from tltransfer.report.analysis import LAB_DROPOUT, SPEC_ACCURACY
from tltransfer.cli import plural
from tltransfer.report.tables import count, pvalue, signed, value_text

STATISTICS, EFFICIENCY = "All statistical tests", "Data efficiency"


def gains_title(setting):
    return f"Transfer gains at each {setting}"


def pp(fraction):
    return f"{signed(100 * fraction)} pp"


def pct(fraction):
    return f"{100 * fraction:.2f}%"


def row(c):
    return f"{c.label}, p {c.a.p:g}, dropout {value_text(c.a.dropout)}"


def cite(table, *rows):
    return f"[{table}: {'; '.join(rows)}]"


def test_text(test, diff=True):
    """'+1.23 pp, 95% CI ... pp, p = 0.012' as far as the test is defined."""
    head = f"{pp(test.diff)}, " if diff else ""
    if math.isnan(test.ci_low):
        return head + test.verdict
    return (f"{head}95% CI {signed(100 * test.ci_low)} to {signed(100 * test.ci_high)} pp, "
            f"p {'' if test.pvalue < 0.001 else '= '}{pvalue(test.pvalue)}")


def power_text(test):
    """What the runs could detect and, for an open comparison, the seeds that would decide."""
    if math.isnan(test.detectable):
        return ""
    text = (f"; {test.n_a} vs {test.n_b} runs detect {100 * test.detectable:.2f} pp or more "
            "(power 0.8)")
    if math.isinf(test.seeds):
        return text + ", and no number of seeds up to 1000 would detect this difference"
    if not math.isnan(test.seeds):
        return text + f", about {test.seeds:.0f} seeds per side would detect this difference"
    return text


def ahead(c, sign):
    """(leader, trailer) of a comparison whose difference has this sign: its modes, or the
    dropouts of one mode."""
    names = (c.a.mode, c.b.mode) if c.a.mode != c.b.mode else (
        f"dropout {c.a.dropout:g}", f"dropout {c.b.dropout:g}")
    return names if sign > 0 else names[::-1]


def winner_text(c):
    if c.sign == 0:
        return f"{c.a.mode} and {c.b.mode} are level"
    return "{} is ahead of {} by ".format(*ahead(c, c.sign)) + f"{abs(100 * c.test.diff):.2f} pp"


def lead_text(c):
    if c.lead is None or c.lead[0] == 0:
        return "the mean curves end level" if c.lead else "the mean curves share no steps"
    (leader, trailer), (_, step, first) = ahead(c, c.lead[0]), c.lead
    if step == first:
        return f"{leader}'s mean curve is above {trailer}'s from the first evaluation " \
               f"({first:,} samples) on"
    return f"{leader}'s mean curve overtakes {trailer}'s for good at {step:,} samples"


def images(g):
    return f"p = {g.p:g} ({g.n_train:,} images)"


def match_text(e):
    words, sign = {"<=": ("at most ", "<= "), "~": ("~", ""), ">": ("more than ", "> ")}[
        e.relation]
    return f"{words}{count(e.n)} images ({sign}{e.ratio:.3g}x its {e.group.n_train:,})"


def bullet(c, efficiency=None):
    """One comparison, for reference: means, the test and its power, curves, area."""
    same = c.a.mode == c.b.mode  # then the dropouts are compared: b -> a
    head = (f"{c.a.mode}, {images(c.a)}: final accuracy {pct(c.b.summary.mean)} -> "
            f"{pct(c.a.summary.mean)}" if same else
            f"{images(c.a)}: {c.a.mode} {pct(c.a.summary.mean)} vs {c.b.mode} "
            f"{pct(c.b.summary.mean)}, {winner_text(c)}")
    areas = (c.b, " -> ", c.a) if same else (c.a, " vs ", c.b)
    text = (f"- {head} ({test_text(c.test, same)}, {c.test.verdict}{power_text(c.test)}); "
            f"{lead_text(c)}; area under the curve {pct(areas[0].area.mean)}{areas[1]}"
            f"{pct(areas[2].area.mean)}")
    if efficiency:
        text += f"; scratch would need {match_text(efficiency)} to match {c.a.mode}"
    return text + "."


def split_text(s, subject, ahead, behind, cells):
    text = (f"- {subject} {ahead} in {s['up']} of {plural(s['n'], cells)} ({s['up_sig']} "
            f"significantly) and {behind} in {s['down']} ({s['down_sig']} significantly)")
    return text + (f", level in {s['level']}" if s["level"] else "") + (
        f"; the largest: {s['largest'].label} at p = {s['largest'].a.p:g}, "
        f"{pp(s['largest'].test.diff)}.")


def dropout_text(s, subject):
    return split_text(s, subject, "raises the mean final accuracy", "lowers it", "(mode, p) cell")


def discussion(analysis):
    lines = ["## Discussion", "", "The reference behind the key findings, comparison by "
             f"comparison; every number is in the table {STATISTICS}.", ""]
    matches = {id(e.group): e for e in analysis.efficiencies}
    for assignment in analysis.assignments:
        lines += [f"### Assignment {assignment.number}", ""]
        for a_mode, b_mode, dropout, items, s in assignment.pairs:
            head = f"{a_mode} vs {b_mode}, dropout {dropout:g}"
            lines += [f"**{head}**", "", *(bullet(c, matches.get(id(c.a)) if b_mode ==
                                                  "scratch" else None) for c in items),
                      split_text(s, f"Overall {a_mode} is", f"ahead of {b_mode}", "behind",
                                 "proportion"), ""] if items else [f"- {head}: not compared.", ""]
        if assignment.dropout_effect:
            lines += [f"**What dropout {LAB_DROPOUT:g} changes (same mode and p)**", "",
                      *map(bullet, assignment.dropout_effect),
                      dropout_text(analysis.findings.dropout, "Dropout"), ""]
    return lines


def key_findings(analysis):
    """At most about eight sentences, each citing the table row it rests on."""
    f, lines = analysis.findings, []
    if f.best is None:
        lines.append("- No transfer mode is significantly ahead of scratch anywhere "
                     f"{cite(STATISTICS, 'frozen and finetune vs scratch')}.")
    else:
        b = f.best
        lines.append(f"- Transfer helps most at {images(b.a)}, dropout {b.a.dropout:g}: "
                     f"{b.a.mode} beats scratch by {test_text(b.test)} {cite(STATISTICS, row(b))}.")
    if f.efficiency:
        where = f"{f.best.a.mode}, dropout {f.best.a.dropout:g}, p {f.best.a.p:g}"
        lines.append(f"- A scratch net would need {match_text(f.efficiency)} to match it "
                     f"{cite(EFFICIENCY, where)}.")
    if f.stops:
        p, gains = f.stops
        lines.append(f"- From p = {p:g} on, no transfer mode is significantly ahead of scratch "
                     f"at dropout {f.best.a.dropout:g} (" + "; ".join(
                         f"{c.a.mode} {test_text(c.test)}" for c in gains) + ") "
                     f"{cite(STATISTICS, *map(row, gains))}.")
    if f.hurts:
        lines.append("- Transfer is significantly behind scratch: " + "; ".join(
            f"{c.a.mode} at p = {c.a.p:g}, dropout {c.a.dropout:g} ({test_text(c.test)})"
            for c in f.hurts) + f" {cite(STATISTICS, *map(row, f.hurts))}.")
    if f.finetune_frozen:
        lines.append("- Fine-tuning against frozen transfer: " + "; ".join(
            f"at p = {c.a.p:g} {winner_text(c)} ({c.test.verdict})" for c in f.finetune_frozen)
            + f" {cite(STATISTICS, *map(row, f.finetune_frozen))}.")
    if f.dropout["n"]:
        lines.append(dropout_text(f.dropout, f"Dropout {LAB_DROPOUT:g}")[:-1] + " " +
                     cite(STATISTICS, row(f.dropout["largest"])) + ".")
    if f.open:
        (low, high), (few, many) = f.detectable, f.seeds
        lines.append(f"- {len(f.open)} of {plural(len(analysis.comparisons), 'comparison')} are "
                     f"left open (not significant): their runs detect only differences of "
                     f"{100 * low:.2f}-{100 * high:.2f} pp at power 0.8, and {few:.0f} to "
                     f"{value_text(many)} seeds per side would decide them "
                     f"{cite(STATISTICS, 'columns detectable, seeds per side to decide')}.")
    return ["## Key findings", "", *lines, robustness(analysis), ""]


def robustness(analysis):
    if not analysis.sensitivities:
        return ("- No setting beyond mode, p, dropout and seed varies in this CSV, so these "
                "findings are not tested under other training settings.")
    return "- Across swept settings: " + "; ".join(
        f"{s.setting} ({', '.join(map(value_text, s.values))}): "
        f"{sum(held for _, _, held in s.conclusions)} of "
        f"{plural(len(s.conclusions), 'significant gain')} over scratch hold at every value "
        f"{cite(gains_title(s.setting), 'all rows')}" for s in analysis.sensitivities) + "."


def conclusion_lines(s):
    """Whether each of the lab's conclusions holds at every value of a swept setting."""
    if not s.conclusions:
        return [f"- No significant gain of the main tables falls where {s.setting} varies.", ""]
    return [f"- {c.a.mode} beats scratch at p = {c.a.p:g}, dropout {c.a.dropout:g} "
            f"({pp(c.test.diff)} in the main tables): " + "; ".join(
                f"{s.setting} {value_text(v)} {o}" for v, o in at.items()) + " " +
            cite(gains_title(s.setting), row(c)) + "." for c, at, _ in s.conclusions] + [""]


def spec_lines(groups):
    """The spec's '>= 99%', checked for the source nets and scratch at p = 1."""
    names = {"source": "0-5 source net", "scratch": "6-9 scratch net at p = 1"}
    return [f"- {names[g.mode]}, dropout {g.dropout:g}: mean {pct(g.summary.mean)} over "
            f"{plural(len(g.runs), 'run')} "
            f"{'meets' if g.summary.mean >= SPEC_ACCURACY else 'misses'} the spec's >= "
            f"{100 * SPEC_ACCURACY:g}%." for g in groups.values()
            if g.mode == "source" or (g.mode == "scratch" and g.p == 1.0)] or [
        "- No source runs and no scratch runs at p = 1: nothing to check."]
