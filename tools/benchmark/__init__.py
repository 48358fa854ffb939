"""How fast is tltransfer against a plain Keras baseline: `python -m tools.benchmark --help`.

Modules, imported one way (each only from those above it):
  settings        the protocol's constants and the Settings of one benchmark (no TensorFlow)
  measure         the instruments: stopwatch, best rate, peak memory, progress lines
  keras_side      the Keras baseline's runs, as a student writes them
  tltransfer_side tltransfer's runs, its floors (bare compiled calls), the machine's compute,
                  evaluation chunk sizes, bfloat16 against float32
  process         whole processes (each run a fresh process) and one long process of runs
  sides           one side measured in this process (--side), or in a fresh one (run_side)
  figures         the figures derived from the measurements, by name (pure functions)
  table           the text table of the sections measured
  __main__        flags, and which sections to measure
"""
