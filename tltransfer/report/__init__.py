"""The study's report, from the tidy CSV that `python -m tltransfer.export` writes.

    python -m tltransfer.report --csv=results.csv --out=report

Imports flow one way, and none of them is TensorFlow:
  results   CSV (+ its _meta.json) -> Runs, each with every Config field
  stats     NumPy/SciPy: summaries, Welch's test with its power, curve measures
  analysis  Runs -> one Analysis: groups, comparisons, convergence, data efficiency, a
            sensitivity analysis per swept setting, the key findings
  tables    each table defined once, rendered to markdown, CSV and LaTeX
  figures   the only module that imports matplotlib
  prose     sentences from the Analysis; computes nothing
  document  report.md in order, written beside its files and published at the end
"""
