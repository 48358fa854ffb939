"""The study's report, from the tidy CSV that `python -m tltransfer.export` writes.

    python -m tltransfer.report --csv=results.csv --out=report

Imports flow one way, and none of them is TensorFlow:
  results   CSV (+ its _meta.json) -> Runs, each with every Config field
  stats     NumPy/SciPy on arrays over seeds: the one interval estimator, Welch's test with its
            power, Holm's correction, the probability of improvement, log interpolation
  metrics   what is measured on one run's curve (final accuracy, area, ...): one entry each
  analysis  Runs -> one Analysis: scores per configuration (rliable's shape), comparisons,
            patterns across P, data efficiency, curve shapes, sensitivity per swept setting
  tables    each table defined once, rendered to markdown, CSV and LaTeX; the number formats
  figures   the only module that imports matplotlib: functions that draw on an ax
  prose     sentences from the Analysis; selects and computes nothing
  document  report.md in order, its figures laid out and saved, published at the end
"""
