"""The benchmark's text table: a header, one block per section measured, and notes."""

import statistics
import textwrap

from tools.benchmark.settings import (BATCH, LR, MODES, PRECISION_MODES, PRECISION_SEEDS,
                                      SIDES, STUDY_P)

# The line each section's block starts with, in the order of settings.SECTIONS.
TITLES = {"inrun": "per run", "whole": "whole process", "memory": "long process",
          "chunks": "evaluation chunk size", "jobs": "worker processes"}


def hours(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def wrap(text):
    return textwrap.fill(text, 96, initial_indent="  ", subsequent_indent="  ")


def runs_lines(report):
    s = report["settings"]
    lines = [f"{TITLES['inrun']} ({s['samples']} samples): s/1000 = steady state, after the "
             "first evaluation window; whole = the entire run, start-up included",
             f"{'mode':<9}{'p':>6} | {'s/1000 samples':^26} | {'whole run s':^26} | "
             f"{'start-up s':^17} | {'floor':>6} {'over floor':^17}",
             f"{'':<9}{'':>6} | {'keras':>8} {'tltransfer':>10} {'ratio':>6} | {'keras':>8} "
             f"{'tltransfer':>10} {'ratio':>6} | {'keras':>6} {'tltransfer':>10} | "
             f"{'s/1000':>6} {'keras':>6} {'tltransfer':>10}"]
    for r in report["runs"]:
        k, t = r["keras"], r["tltransfer"]
        lines.append(
            f"{r['mode']:<9}{r['p']:>6g} | {k['s_per_1000']:>8.3f} {t['s_per_1000']:>10.3f} "
            f"{r['ratio']:>6.2f} | {k['total_s']:>8.2f} {t['total_s']:>10.2f} "
            f"{r['ratio_total']:>6.2f} | {k['startup_s']:>6.2f} {t['startup_s']:>10.2f} | "
            f"{r['floor_s_per_1000']:>6.3f} {r['keras_over_floor_pct']:>+5.0f}% "
            f"{r['tltransfer_over_floor_pct']:>+9.0f}%")
    return lines


def floor_lines(report):
    s, floor = report["settings"], report["floor"]
    lines = ["", f"float32 floor (tltransfer's bare compiled calls, no pipeline, summaries or "
                 f"checkpoints; best of {s['repeats']}):",
             f"{'':<40}{'train samples/s':>16}{'eval images/s':>15}{'s/1000':>8}"]
    for key, label in (("full", "whole CNN (scratch, finetune)"),
                       ("frozen", "classifier on cached features (frozen)"),
                       ("bfloat16", "whole CNN, --precision=bfloat16"),
                       ("batch_300", "whole CNN, batch 300 (= 3 seeds batched)")):
        if key in floor:
            f = floor[key]
            lines.append(f"{label:<40}{f['train_samples_per_s']:>16,.0f}"
                         f"{f['eval_images_per_s']:>15,.0f}{f['s_per_1000']:>8.3f}")
    lines.append(f"  s/1000 = 1000 / train rate + {1000 // s['eval_every']} x "
                 f"{floor['full']['test_images']} / eval rate")
    lines.append(f"  a frozen run also extracts its images' features once: "
                 f"{floor['frozen']['extract_images_per_s']:,.0f} images/s")
    on, off = floor["full"], report.get("floor_nondeterministic", {}).get("full")
    if off:
        train_change = 100 * (off["train_samples_per_s"] / on["train_samples_per_s"] - 1)
        eval_change = 100 * (off["eval_images_per_s"] / on["eval_images_per_s"] - 1)
        lines.append(f"op determinism (--deterministic, on by default) on the whole-CNN floor: "
                     f"without it, train rate {train_change:+.1f}%, evaluation rate "
                     f"{eval_change:+.1f}%")
    return lines


def compute_lines(compute, full):
    """How close the whole-CNN floor is to what this machine's float32 matmul reaches."""
    flops, peak = compute["forward_flops_per_image"], compute["matmul_gflops"]
    eval_gflops = full["eval_images_per_s"] * flops / 1e9
    # A training step costs about three forward passes (forward, and the backward pass's two
    # products per layer).
    train_gflops = full["train_samples_per_s"] * 3 * flops / 1e9
    return [f"compute: float32 matmul {peak:,.0f} GFLOP/s; the CNN's forward pass "
            f"{flops / 1e6:.1f} MFLOP/image (TensorFlow's profiler)",
            f"  whole-CNN floor: evaluation {eval_gflops:,.0f} GFLOP/s "
            f"({100 * eval_gflops / peak:.0f}% of matmul), training ~{train_gflops:,.0f} GFLOP/s "
            f"(~{100 * train_gflops / peak:.0f}%)"]


def precision_lines(figures, samples):
    lines = ["", f"bfloat16 vs float32: whole runs of {samples:,} samples at "
                 f"p={STUDY_P:g}, seeds {', '.join(map(str, PRECISION_SEEDS))}",
             f"{'mode':<10}{'precision':<11}{'final accuracy, % (per seed)':<34}"
             f"{'mean':>7}{'std':>6}{'s/run':>8}"]
    for mode in PRECISION_MODES:
        means = {}
        for precision in ("float32", "bfloat16"):
            runs = figures[f"{mode}/{precision}"]
            accuracy = [100 * r["accuracy"] for r in runs]
            means[precision] = (statistics.mean(accuracy), statistics.stdev(accuracy))
            lines.append(f"{mode:<10}{precision:<11}"
                         f"{' '.join(f'{a:.2f}' for a in accuracy):<34}"
                         f"{means[precision][0]:>7.2f}{means[precision][1]:>6.2f}"
                         f"{statistics.median(r['seconds'] for r in runs):>8.1f}")
        gap = means["bfloat16"][0] - means["float32"][0]
        spread = max(means["float32"][1], means["bfloat16"][1])
        lines.append(f"  {mode}: bfloat16 - float32 = {gap:+.2f} pp, "
                     f"{'within' if abs(gap) <= spread else 'outside'} the seed spread "
                     f"({spread:.2f} pp)")
    return lines


def study_lines(study):
    lines = ["", f"whole default study ({study['runs']} runs), estimated:", wrap(study["formula"]),
             f"{'run':<11}{'keras start-up':>15}{'s/1000':>8}{'per run':>9} | "
             f"{'tltransfer start-up':>20}{'s/1000':>8}{'per run':>9}"]
    for mode in ("source", *MODES):
        k, t = (study[side]["slice"][mode] for side in SIDES)
        lines.append(
            f"{mode:<11}{k['startup_s']:>15.2f}{k['s_per_1000']:>8.3f}"
            f"{study['keras']['per_run_s'][mode]:>9.1f} | {t['startup_s']:>20.2f}"
            f"{t['s_per_1000']:>8.3f}{study['tltransfer']['per_run_s'][mode]:>9.1f}")
    lines.append(f"total: keras {hours(study['keras']['total_s'])}, tltransfer "
                 f"{hours(study['tltransfer']['total_s'])}, ratio {study['ratio']:.2f}")
    return lines


def inrun_lines(report):
    lines = runs_lines(report) + floor_lines(report)
    lines += compute_lines(report["compute"], report["floor"]["full"])
    if "precision" in report:
        lines += precision_lines(report["precision"], report["settings"]["precision_samples"])
    lines += study_lines(report["study"])
    rss = report["rss_mib"]
    return lines + ["", "peak RSS, each side in its own process (tltransfer's before its floor): "
                    + ", ".join(f"{side} {rss[side]:,.0f} MiB" for side in SIDES)]


def whole_lines(report):
    whole, repeats = report["whole"], report["settings"]["repeats"]
    floor_from = {"inrun": "the in-run section's float32 floor",
                  "own process": "a float32 floor measured for this section"}[whole["floor_from"]]
    lines = [f"{TITLES['whole']}: one run per process, each side fresh, minus `import "
             f"tensorflow` (p={whole['p']:g}, {whole['samples']:,} samples; tltransfer's "
             f"command line with its source net trained before; median of {repeats})",
             f"{'mode':<10}{'keras s':>9}{'tltransfer s':>14}{'ratio':>7}{'floor-bound s':>15}"
             f"{'best ratio':>12}  | import tensorflow s: keras, tltransfer"]
    for r in whole["runs"]:
        k, t = r["keras"], r["tltransfer"]
        lines.append(f"{r['mode']:<10}{k['total_s']:>9.2f}{t['total_s']:>14.2f}"
                     f"{r['ratio']:>7.2f}{r['floor_s']:>15.2f}{r['best_ratio']:>12.2f}  | "
                     f"{k['import_s']:.2f}, {t['import_s']:.2f}")
    return lines + [wrap(f"{whole['floor_bound_formula']}. Rates from {floor_from}; a frozen "
                         f"run extracts {whole['frozen_extracted_images']:,} images.")]


def memory_lines(report):
    memory = report["memory"]
    m = memory["summary"]
    return [f"{TITLES['memory']}: {m['runs']} tltransfer runs in one process (source, scratch, "
            f"frozen, finetune, seed after seed; p={memory['p']:g}, {memory['samples']:,} "
            "samples each)",
            f"  peak RSS after 5 runs {m['peak_after_5_mib']:,.0f} MiB, after {m['runs']} "
            f"{m['peak_after_all_mib']:,.0f} MiB ({m['growth_mib']:+,.0f} MiB)",
            *memory_level_lines(m),
            "  seconds per run outside compiled calls (wall - training windows, evaluations "
            "and feature extraction):",
            "    first run of each mode: " + ", ".join(f"{x:.2f}" for x in m["outside_first_s"]),
            f"    later runs: median {m['outside_later_median_s']:.3f}, max "
            f"{m['outside_later_max_s']:.3f}"]


def memory_level_lines(m):
    """Runs 5-8 against the last four, each holding one run of each shape, and the spread of
    the runs' own peaks from run 5 on."""
    lines = []
    for key, what in (("trimmed", "resident size after the heap trim before a run"),
                      ("run_peak", "a run's own peak")):
        early, late = m.get(f"{key}_early_mib"), m.get(f"{key}_late_mib")
        if early is not None and late is not None:
            lines.append(f"  {what}, mean of runs 5-8 {early:,.0f} MiB, of the last four "
                         f"{late:,.0f} MiB ({late - early:+,.0f} MiB)")
    if m.get("run_peak_median_mib") is not None:
        lines.append(f"  a run's own peak, runs 5-{m['runs']}: median "
                     f"{m['run_peak_median_mib']:,.0f} MiB, lowest {m['run_peak_min_mib']:,.0f}, "
                     f"highest {m['run_peak_max_mib']:,.0f}")
    return lines


def chunks_lines(report):
    return [f"{TITLES['chunks']} (tltransfer uses {report['eval_chunk']}), each in a process "
            "that only evaluates:",
            f"{'images per forward pass':<26}{'eval images/s':>14}{'peak RSS MiB':>14}",
            *(f"{chunk:<26}{c['eval_images_per_s']:>14,.0f}{c['rss_mib']:>14,.0f}"
              for chunk, c in sorted(report["eval_chunks"].items(),
                                     key=lambda item: int(item[0])))]


def jobs_lines(report):
    """The measured --jobs=1 against --jobs=2, and what a machine of N cores should gain."""
    j = report["jobs"]
    efficiency = j["thread_efficiency_2"]
    lines = [f"{TITLES['jobs']}: a grid of {j['runs']} runs (p={', '.join(f'{p:g}' for p in j['p'])}"
             f"; {j['samples']:,} samples each) as one command",
             f"  --jobs=1 {j['jobs1_s']:.1f} s, --jobs=2 {j['jobs2_s']:.1f} s: "
             f"{j['speedup_2_jobs']:.2f}x; results bit-identical: "
             f"{'yes' if j['bit_identical'] else 'NO'}",
             f"  one scratch run: {j['threads1_samples_per_s']:,.0f} samples/s on 1 thread, "
             f"{j['threads2_samples_per_s']:,.0f} on 2: {2 * efficiency:.2f}x "
             f"({100 * efficiency:.0f}% efficiency)",
             "  on paper, for N cores (no machine here has more than 2): --jobs=auto runs N/2 "
             "workers of 2 threads, each",
             "  at the 2-thread rate, so a grid of many runs should go ~N/2 times as fast as "
             "--jobs=1 while memory",
             "  bandwidth keeps up; one run on N threads could not: it already loses "
             f"{100 * (1 - efficiency):.0f}% at 2 threads, and a batch of 100",
             "  splits into few pieces:"]
    for cores in (4, 8, 16, 32):
        lines.append(f"    {cores:>2} cores: --jobs=auto = {cores // 2:>2} workers, "
                     f"~{cores // 2}x the grid rate of --jobs=1")
    return lines


SECTION_LINES = {"inrun": inrun_lines, "whole": whole_lines, "memory": memory_lines,
                 "chunks": chunks_lines, "jobs": jobs_lines}


def notes(settings):
    sections, lines = settings["sections"], ["", "notes:"]
    if "inrun" in sections:
        lines += ["- " + ("each side first makes one untimed warm-up run" if settings["warm_up"]
                          else "no warm-up run: the first run pays process start-up"),
                  "- every run's time ends with a garbage collection, so each run pays for "
                  "freeing its own objects",
                  "  (Keras's tf.data iterators) rather than a later run"]
    if "inrun" in sections or "whole" in sections:
        lines += ["- Keras fit and evaluate read tf.data pipelines with autotuning off "
                  "(shuffled, batch 100; the callback's",
                  "  evaluate in Keras's default batch of 32, as a student's call has it)",
                  "- ratios are keras / tltransfer: above 1, tltransfer is faster"]
    return lines + ["- tltransfer runs with op determinism on (its default); the Keras "
                    "baseline without"]


def table(report):
    """The text of the sections the report holds (report["settings"]["sections"])."""
    s, m = report["settings"], report["machine"]
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}, "
             f"Keras {m['keras']}, Python {m['python']}",
             f"protocol: batch {BATCH}, Adam {LR:g}, test accuracy on all test images every "
             f"{s['eval_every']} samples; median of {s['repeats']} repeat(s)"
             + (" [--quick: not representative]" if s["quick"] else "")]
    for section in s["sections"]:
        lines += ["", *SECTION_LINES[section](report)]
    return "\n".join(lines + notes(s))
