"""TensorBoard events of a study -> tidy CSV for the report.

    python tools/export_csv.py --logdir=logs --out=results.csv

Reads every complete run directly under --logdir (a valid result.json marks it complete) and
writes, deterministically ordered:
  results.csv        one row per (run, tag, step): the run's settings, tag, step, value
  results_runs.csv   one row per run: its settings and final test accuracy and loss
  results_meta.json  the commands that made the runs, package versions and the data hash
"""

import csv
import io
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", "logs", "Log root written by tltransfer.main.")
flags.DEFINE_string("out", "results.csv", "Tidy CSV to write; the per-run CSV and the meta "
                    "JSON go beside it (<stem>_runs.csv, <stem>_meta.json).")

SETTINGS = ["run", "mode", "p", "n_train", "dropout", "seed", "lr", "lr_schedule", "batch_size",
            "train_samples", "precision", "source_classes", "target_classes", "subset",
            "transfer_layers", "transferred_lr_scale"]
COLUMNS = SETTINGS + ["tag", "step", "value"]
RUN_COLUMNS = SETTINGS + ["test_accuracy", "test_loss"]


class ExportError(Exception):
    pass


def find_runs(logdir):
    """(complete, incomplete, failed): result dicts of complete runs, names of the others."""
    from tltransfer import rundir
    complete, incomplete, failed = [], [], []
    gfile = rundir.gfile
    for name in sorted(n.rstrip("/") for n in gfile.listdir(logdir)):
        run_dir = os.path.join(logdir, name)
        if not gfile.exists(os.path.join(run_dir, rundir.CONFIG_FILE)):
            continue
        result = rundir.read_json(os.path.join(run_dir, rundir.RESULT_FILE))
        if isinstance(result, dict) and "config" in result:
            complete.append(result)
        elif gfile.exists(os.path.join(run_dir, rundir.FAILED_FILE)):
            failed.append(name)
        else:
            incomplete.append(name)
    return complete, incomplete, failed


def settings(result):
    import dataclasses
    from tltransfer.config import Config
    # Runs written before a setting existed had it at today's default.
    config = {**dataclasses.asdict(Config()), **result["config"]}
    row = {key: config[key] for key in SETTINGS if key in config}
    budget = "source_samples" if config["mode"] == "source" else "train_samples"
    row.update(run=result["run"], n_train=result["n_train"], train_samples=config[budget])
    return row


def rows(logdir, results):
    from tltransfer import rundir
    for result in results:
        base = settings(result)
        scalars = rundir.read_scalars(os.path.join(logdir, result["run"]))
        for tag, points in sorted(scalars.items()):
            for step in sorted(points):
                yield {**base, "tag": tag, "step": step, "value": repr(points[step])}


def meta(logdir, results, incomplete, failed):
    from tltransfer import rundir, study
    commands, flagfiles, versions, hashes = [], set(), {}, set()
    history = os.path.join(logdir, study.INVOCATIONS)
    if rundir.gfile.exists(history):
        with rundir.gfile.GFile(history) as f:
            for line in f:
                args = json.loads(line)["argv"][1:]
                commands.append(" ".join(["python -m tltransfer.main", *args]))
                flagfiles.update(a.split("=", 1)[1] for a in args if a.startswith("--flagfile="))
    for result in results:
        config = rundir.read_json(os.path.join(logdir, result["run"], rundir.CONFIG_FILE))
        versions.update(config.get("versions", {}))
        hashes.add(config.get("data_sha256"))
    return {"logdir": os.path.abspath(logdir) if rundir.is_local(logdir) else logdir,
            "commands": list(dict.fromkeys(commands)),
            "failed_runs": failed, "incomplete_runs": incomplete,
            "flagfiles": sorted(flagfiles), "versions": versions,
            "data_sha256": sorted(h for h in hashes if h)}


def write_csv(path, columns, records):
    from tltransfer import rundir
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    rundir.write_text_atomic(path, text.getvalue())


def export(logdir, out):
    """Writes the three files; returns (runs, rows, incomplete run names, failed run names)."""
    from tltransfer import rundir
    if not rundir.gfile.isdir(logdir):
        raise ExportError(f"--logdir={logdir} does not exist; point it at the log root "
                          "that tltransfer.main wrote")
    results, incomplete, failed = find_runs(logdir)
    if not results:
        raise ExportError(f"no complete runs under {logdir} ({len(incomplete)} incomplete, "
                          f"{len(failed)} failed); run `python -m tltransfer.main` (again) to "
                          "finish them")
    stem = os.path.splitext(out)[0]
    rundir.gfile.makedirs(os.path.dirname(out) or ".")
    tidy = list(rows(logdir, results))
    write_csv(f"{stem}_runs.csv", RUN_COLUMNS,
              [{**settings(r), "test_accuracy": repr(r["test_accuracy"]),
                "test_loss": repr(r["test_loss"])} for r in results])
    rundir.write_json_atomic(f"{stem}_meta.json", meta(logdir, results, incomplete, failed))
    write_csv(out, COLUMNS, tidy)  # last: the file the report reads
    return len(results), len(tidy), incomplete, failed


def main(argv):
    del argv
    import tensorflow as tf
    try:
        runs, count, incomplete, failed = export(FLAGS.logdir, FLAGS.out)
    except (ExportError, OSError, tf.errors.OpError) as e:
        sys.exit(f"error: {e}")
    if incomplete:
        print(f"left out {len(incomplete)} incomplete runs: {', '.join(incomplete)}")
    if failed:
        print(f"left out {len(failed)} failed runs (see their failed.json): {', '.join(failed)}")
    print(f"wrote {count} rows from {runs} runs to {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
