"""TensorBoard events of a study -> tidy CSV for the report (`python -m tltransfer.export`).

Writes, from every complete run (a valid result.json) directly under the log root,
deterministically ordered: results.csv (COLUMNS: a row per run, tag and step),
results_runs.csv (RUN_COLUMNS: a row per run) and results_meta.json (provenance). The columns
follow Config's fields. The event files are read with TensorBoard's event-file loader
(rundir.read_scalars), so `python -m tltransfer.export` runs without TensorFlow.
"""

import csv
import dataclasses
import io
import os

from tltransfer.config import Config

SETTINGS = ["run", *(f.name for f in dataclasses.fields(Config)), "n_train", "samples"]
COLUMNS = SETTINGS + ["tag", "step", "value"]
RUN_COLUMNS = SETTINGS + ["test_accuracy", "test_loss"]


class ExportError(Exception):
    pass


def find_runs(logdir):
    """(complete, incomplete, failed): result dicts of complete runs, names of the others."""
    from tltransfer import rundir
    complete, incomplete, failed = [], [], []
    for name in sorted(n.rstrip("/") for n in rundir.gfile.listdir(logdir)):
        run_dir = os.path.join(logdir, name)
        if not rundir.gfile.exists(os.path.join(run_dir, rundir.CONFIG_FILE)):
            continue
        result = rundir.read_json(os.path.join(run_dir, rundir.RESULT_FILE))
        if isinstance(result, dict) and "config" in result:
            complete.append(result)
        elif rundir.gfile.exists(os.path.join(run_dir, rundir.FAILED_FILE)):
            failed.append(name)
        else:
            incomplete.append(name)
    return complete, incomplete, failed


def settings(result):
    """The run's row head; a field added to Config after the run was made has its default."""
    config = {**dataclasses.asdict(Config()), **result["config"]}
    budget = config["source_samples" if config["mode"] == "source" else "train_samples"]
    return {**{key: config.get(key) for key in SETTINGS}, "run": result["run"],
            "n_train": result["n_train"], "samples": budget}


def meta(logdir, results):
    """Provenance: the commands that trained or finished these runs (and commands written
    before studies.jsonl said what they did), refused commands apart, versions, data hash."""
    from tltransfer import rundir
    names = {r["run"] for r in results}
    commands, refused, flagfiles, versions, hashes = [], [], set(), {}, set()
    for entry in rundir.read_history(logdir):
        args = entry["argv"][1:]
        command = " ".join(["python -m tltransfer.main", *args])
        if entry.get("status") == "refused":
            refused.append({"command": command, "reason": entry.get("reason", "")})
        elif "status" not in entry or names & set(entry.get("runs", ())):
            commands.append(command)
            flagfiles.update(a.split("=", 1)[1] for a in args if a.startswith("--flagfile="))
    for result in results:
        config = rundir.read_json(os.path.join(logdir, result["run"], rundir.CONFIG_FILE))
        versions.update(config.get("versions", {}))
        hashes.add(config.get("data_sha256"))
    return {"logdir": os.path.abspath(logdir) if rundir.is_local(logdir) else logdir,
            "commands": list(dict.fromkeys(commands)), "refused_commands": refused,
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
    tidy = [{**settings(result), "tag": tag, "step": step, "value": repr(points[step])}
            for result in results for tag, points in sorted(
                rundir.read_scalars(os.path.join(logdir, result["run"])).items())
            for step in sorted(points)]
    write_csv(f"{stem}_runs.csv", RUN_COLUMNS,
              [{**settings(r), "test_accuracy": repr(r["test_accuracy"]),
                "test_loss": repr(r["test_loss"])} for r in results])
    rundir.write_json_atomic(f"{stem}_meta.json", {**meta(logdir, results),
                                                   "failed_runs": failed,
                                                   "incomplete_runs": incomplete})
    write_csv(out, COLUMNS, tidy)  # last: the file the report reads
    return len(results), len(tidy), incomplete, failed
