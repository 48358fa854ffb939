"""The report's sentences, read off the Analysis: this module computes nothing.

Differences are first minus second, in percentage points (pp) of mean final test accuracy.
A citation [Table: row] names the table and row a sentence rests on.
"""

import math

from tltransfer.report.analysis import ASSIGNMENTS, LAB_DROPOUT, SPEC_ACCURACY
from tltransfer.report.tables import count, plural, pvalue, signed, value_text

STATISTICS = "All statistical tests"
EFFICIENCY = "Data efficiency"


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


def test_text(test):
    """'+1.23 pp, 95% CI ... pp, p = 0.012' as far as the test is defined."""
    if math.isnan(test.ci_low):
        return f"{pp(test.diff)}, {test.verdict}"
    return (f"{pp(test.diff)}, 95% CI {signed(100 * test.ci_low)} to "
            f"{signed(100 * test.ci_high)} pp, p {pvalue_clause(test.pvalue)}")


def pvalue_clause(p):
    return pvalue(p) if p < 0.001 else f"= {pvalue(p)}"


def power_text(test):
    """What the runs could detect and, for an open comparison, the seeds that would decide."""
    if math.isnan(test.detectable):
        return ""
    text = (f"; {test.n_a} vs {test.n_b} runs detect {100 * test.detectable:.2f} pp or more "
            "(power 0.8)")
    if test.verdict != "significant" and not math.isnan(test.seeds):
        text += (", more seeds would not help" if math.isinf(test.seeds) else
                 f", about {test.seeds:.0f} seeds per side would detect this difference")
    return text


def winner_text(c):
    if c.sign == 0:
        return f"{c.a.mode} and {c.b.mode} are level"
    leader, trailer = (c.a.mode, c.b.mode) if c.test.diff > 0 else (c.b.mode, c.a.mode)
    return f"{leader} is ahead of {trailer} by {abs(100 * c.test.diff):.2f} pp"


def lead_text(c):
    if c.lead is None:
        return "the mean curves share no steps"
    sign, step, first = c.lead
    if sign == 0:
        return "the mean curves end level"
    leader, trailer = (c.a.mode, c.b.mode) if sign > 0 else (c.b.mode, c.a.mode)
    if step == first:
        return f"{leader}'s mean curve is above {trailer}'s from the first evaluation " \
               f"({first:,} samples) on"
    return f"{leader}'s mean curve overtakes {trailer}'s for good at {step:,} samples"


def images(g):
    return f"p = {g.p:g} ({g.n_train:,} images)"


def match_text(e):
    relation = {"<=": "at most ", "~": "~", ">": "more than "}[e.match.relation]
    return f"{relation}{count(e.match.n)} images ({e.ratio:.3g}x its {e.group.n_train:,})"


def pair_bullet(c, efficiency):
    text = (f"- {images(c.a)}: {c.a.mode} {pct(c.a.summary.mean)} vs {c.b.mode} "
            f"{pct(c.b.summary.mean)}, {winner_text(c)} ({test_text(c.test)}, "
            f"{c.test.verdict}{power_text(c.test)}); {lead_text(c)}; area under the curve "
            f"{pct(c.a.area.mean)} vs {pct(c.b.area.mean)}")
    if efficiency is not None:
        text += f"; scratch would need {match_text(efficiency)} to match {c.a.mode}"
    return text + "."


def tally_text(tally, a_mode, b_mode, what="proportion"):
    largest = tally.largest
    text = (f"- Overall {a_mode} is ahead of {b_mode} at {tally.count(1)} of "
            f"{plural(len(tally), what)} ({tally.count(1, True)} significantly) and behind at "
            f"{tally.count(-1)} ({tally.count(-1, True)} significantly)")
    if tally.count(0):
        text += f", level at {tally.count(0)}"
    return text + f"; the largest gap is at p = {largest.a.p:g}, where {winner_text(largest)}."


def discussion(analysis):
    lines = ["## Discussion", "", "The reference text behind the key findings, comparison by "
             f"comparison; every number is in {STATISTICS}.", ""]
    by_group = {id(e.group): e for e in analysis.efficiencies}
    for assignment in ASSIGNMENTS:
        lines += [f"### Assignment {assignment.number}", ""]
        for a_mode, b_mode in assignment.pairs:
            tally = analysis.tally(a_mode, b_mode, assignment.pair_dropout)
            head = f"{a_mode} vs {b_mode}, dropout {assignment.pair_dropout:g}"
            if not len(tally):
                lines += [f"- {head}: not compared (runs missing).", ""]
                continue
            lines += [f"**{head}**", "", *(pair_bullet(c, by_group.get(id(c.a)) if
                                               b_mode == "scratch" else None)
                                           for c in tally.items),
                      tally_text(tally, a_mode, b_mode), ""]
        if assignment.dropout_effect:
            lines += dropout_lines(analysis)
    return lines


def dropout_lines(analysis):
    tally = analysis.findings.dropout
    if not len(tally):
        return [f"- Dropout {LAB_DROPOUT:g} vs 0: not compared (runs at one of the two "
                "dropouts missing).", ""]
    lines = [f"**What dropout {LAB_DROPOUT:g} changes (same mode and p)**", ""]
    lines += [f"- {c.a.mode}, {images(c.a)}: final accuracy {pct(c.b.summary.mean)} -> "
              f"{pct(c.a.summary.mean)} ({test_text(c.test)}, {c.test.verdict}"
              f"{power_text(c.test)}); area under the curve {pct(c.b.area.mean)} -> "
              f"{pct(c.a.area.mean)}." for c in tally.items]
    lines.append(f"- Dropout raises the mean final accuracy in {tally.count(1)} of "
                 f"{plural(len(tally), '(mode, p) cell')} ({tally.count(1, True)} "
                 f"significantly) and lowers it in {tally.count(-1)} "
                 f"({tally.count(-1, True)} significantly).")
    changed, compared = analysis.order_changes()
    if compared:
        lines.append(f"- Dropout changes the order of {len(changed)} of "
                     f"{plural(compared, '(pair, p) cell')}" + "".join(
                         f"; {c.label} at p = {c.a.p:g} ({pp(b.test.diff)} without dropout, "
                         f"{pp(c.test.diff)} with)" for c, b in changed) + ".")
    return lines + [""]


def key_findings(analysis):
    """At most about eight sentences, each citing the table row it rests on."""
    f = analysis.findings
    if f.best is None:
        lines = ["- No transfer mode is significantly ahead of scratch anywhere in this CSV "
                 f"{cite(STATISTICS, 'frozen/finetune vs scratch rows')}."]
    else:
        b = f.best
        lines = [f"- Transfer helps most at {images(b.a)}, dropout {b.a.dropout:g}: {b.a.mode} "
                 f"beats scratch by {test_text(b.test)} {cite(STATISTICS, row(b))}."]
        if f.best_efficiency:
            where = f"{b.a.mode}, dropout {b.a.dropout:g}, p {b.a.p:g}"
            lines.append(f"- A scratch net would need {match_text(f.best_efficiency)} to "
                         f"match it {cite(EFFICIENCY, where)}.")
        if f.stops:
            p, gains = f.stops
            lines.append(f"- From p = {p:g} on, no transfer mode is significantly ahead of "
                         f"scratch at dropout {b.a.dropout:g} (" + "; ".join(
                             f"{c.a.mode} {test_text(c.test)}" for c in gains) + ") "
                         + cite(STATISTICS, *map(row, gains)) + ".")
        if f.hurts:
            lines.append("- Transfer is significantly behind scratch in " + "; ".join(
                f"{c.a.mode} at p = {c.a.p:g}, dropout {c.a.dropout:g} ({test_text(c.test)})"
                for c in f.hurts) + " " + cite(STATISTICS, *map(row, f.hurts)) + ".")
        if f.finetune_frozen:
            lines.append("- Fine-tuning against frozen transfer: " + "; ".join(
                f"at p = {c.a.p:g} {winner_text(c)} ({c.test.verdict}, "
                f"p {pvalue_clause(c.test.pvalue)})" for c in f.finetune_frozen
                if not math.isnan(c.test.pvalue)) + " "
                + cite(STATISTICS, *map(row, f.finetune_frozen)) + ".")
    if len(f.dropout):
        d = f.dropout
        lines.append(f"- Dropout {LAB_DROPOUT:g} raises the mean final accuracy in "
                     f"{d.count(1)} of {plural(len(d), '(mode, p) cell')} ({d.count(1, True)} "
                     f"significantly) and lowers it in {d.count(-1)} ({d.count(-1, True)} "
                     f"significantly); the largest change: {d.largest.a.mode} at p = "
                     f"{d.largest.a.p:g}, {test_text(d.largest.test)} "
                     f"{cite(STATISTICS, row(d.largest))}.")
    if f.open:
        (low, high), seeds = f.detectable, f.seeds
        lines.append(f"- {len(f.open)} of {plural(len(analysis.comparisons), 'comparison')} "
                     "are left open (not significant): their runs detect only differences of "
                     f"{100 * low:.2f}-{100 * high:.2f} pp at power 0.8, and about "
                     f"{seeds[0]:.0f} to {value_text(seeds[1])} seeds per side would decide "
                     f"them {cite(STATISTICS, 'columns detectable, seeds per side to decide')}.")
    lines.append(robustness(analysis))
    return ["## Key findings", "", *lines, ""]


def robustness(analysis):
    if not analysis.swept:
        return ("- No setting beyond mode, p, dropout and seed varies in this CSV, so these "
                "findings are not tested under other training settings.")
    parts = []
    for s in analysis.sensitivities:
        held = [c for c in s.conclusions if c.holds_everywhere]
        parts.append(f"{s.setting} ({', '.join(map(value_text, s.values))}): "
                     f"{len(held)} of {plural(len(s.conclusions), 'significant gain')} over "
                     f"scratch hold at every value {cite(gains_title(s.setting), 'all rows')}")
    return "- Across swept settings: " + "; ".join(parts) + "."


def conclusion_lines(s):
    """Whether each of the lab's conclusions holds at every value of a swept setting."""
    if not s.conclusions:
        return [f"- None of the main tables' significant gains over scratch falls in the "
                f"cells where {s.setting} varies.", ""]
    return [f"- {c.main.a.mode} beats scratch at p = {c.main.a.p:g}, dropout "
            f"{c.main.a.dropout:g} ({pp(c.main.test.diff)} in the main tables): " + ", ".join(
                f"{s.setting} {value_text(v)} {outcome}" for v, outcome in c.at.items())
            + " " + cite(gains_title(s.setting), f"{c.main.a.mode} vs scratch, p "
                         f"{c.main.a.p:g}, dropout {c.main.a.dropout:g}") + "."
            for c in s.conclusions] + [""]


def spec_lines(groups):
    """The spec's '>= 99%', checked for the source nets and scratch at p = 1."""
    names = {"source": "0-5 source net", "scratch": "6-9 scratch net at p = 1"}
    lines = [f"- {names[g.mode]}, dropout {g.dropout:g}: mean {pct(g.summary.mean)} over "
             f"{plural(len(g.runs), 'run')} "
             f"{'meets' if g.summary.mean >= SPEC_ACCURACY else 'misses'} the spec's >= "
             f"{100 * SPEC_ACCURACY:g}%." for g in groups.values()
             if g.mode == "source" or (g.mode == "scratch" and g.p == 1.0)]
    return lines or ["- No source runs and no scratch runs at p = 1: nothing to check."]

