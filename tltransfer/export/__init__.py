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


def meta(logdir, results, note=lambda line: None):
    """Provenance: the commands that trained or finished these runs (and commands written
    before studies.jsonl said what they did), refused commands apart, versions, data hash.
    `note` receives a line for each damaged record left out."""
    from tltransfer import rundir
    names = {r["run"] for r in results}
    commands, refused, flagfiles, versions, hashes = [], [], set(), {}, set()
    for entry in rundir.read_history(logdir, note):
        args = entry["argv"][1:]
        command = " ".join(["python -m tltransfer.main", *args])
        if entry.get("status") == "refused":
            refused.append({"command": command, "reason": entry.get("reason", "")})
        elif "status" not in entry or names & set(entry.get("runs", ())):
            commands.append(command)
            flagfiles.update(a.split("=", 1)[1] for a in args if a.startswith("--flagfile="))
    for result in results:
        path = os.path.join(logdir, result["run"], rundir.CONFIG_FILE)
        config = rundir.read_json(path)
        if not isinstance(config, dict):
            note(f"{path} is unreadable; the provenance lacks that run's versions and data hash")
            continue
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


def curves(logdir, result):
    """{metric: {step: value}} of a complete run, refused if its events lack an evaluation that
    its result.json holds: a cut or damaged event file would otherwise move the run's final
    accuracy to an earlier step without a word."""
    from tltransfer import rundir
    run_dir = os.path.join(logdir, result["run"])
    scalars = rundir.read_scalars(run_dir)
    steps = result.get("curve", {}).get("step", [])
    missing = sorted(set(steps) - set(scalars.get("test/accuracy", {})))
    if missing:
        raise ExportError(
            f"{run_dir}: its event files lack the evaluation at step {missing[0]} that "
            f"result.json holds ({len(missing)} of {len(steps)} missing): they were cut short "
            "or damaged; delete that run directory and run the tltransfer.main command again "
            "to retrain it")
    return scalars


def export(logdir, out, note=lambda line: None):
    """Writes the three files; returns (runs, rows, incomplete run names, failed run names).

    All is read and checked before anything is written, and the main CSV (the file the report
    reads) is removed first and written last, so it never sits beside another export's side
    files. `note` receives a line for each thing the provenance had to leave out, and for runs
    below the log root that are not its own (TensorBoard would show them beside these)."""
    from tltransfer import rundir
    if not rundir.gfile.isdir(logdir):
        raise ExportError(f"--logdir={logdir} does not exist; point it at the log root "
                          "that tltransfer.main wrote")
    if rundir.gfile.isdir(out):
        raise ExportError(f"--out={out} is a directory; give the CSV file to write, e.g. "
                          f"--out={os.path.join(out, 'results.csv')}")
    results, incomplete, failed = find_runs(logdir)
    if not results:
        raise ExportError(f"no complete runs under {logdir} ({len(incomplete)} incomplete, "
                          f"{len(failed)} failed); run `python -m tltransfer.main` (again) to "
                          "finish them")
    stem = os.path.splitext(out)[0]
    tidy = [{**settings(result), "tag": tag, "step": step, "value": repr(points[step])}
            for result in results for tag, points in sorted(curves(logdir, result).items())
            for step in sorted(points)]
    provenance = {**meta(logdir, results, note), "failed_runs": failed,
                  "incomplete_runs": incomplete}
    rundir.gfile.makedirs(os.path.dirname(out) or ".")
    if rundir.gfile.exists(out):
        rundir.gfile.remove(out)
    write_csv(f"{stem}_runs.csv", RUN_COLUMNS,
              [{**settings(r), "test_accuracy": repr(r["test_accuracy"]),
                "test_loss": repr(r["test_loss"])} for r in results])
    rundir.write_json_atomic(f"{stem}_meta.json", provenance)
    write_csv(out, COLUMNS, tidy)  # last: the file the report reads
    for line in rundir.other_runs_notes(logdir):
        note(line)
    return len(results), len(tidy), incomplete, failed
