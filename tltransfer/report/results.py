"""The exporter's tidy CSV -> Runs that carry every Config field.

A setting column missing from the CSV (a field added to Config after the export), or an empty
cell, means the field's default; the report names the columns it assumed so. A CSV from
before the `samples` column (docs/study/results.csv is one) held a source net's budget in
train_samples: it is moved to source_samples. A step given twice keeps its last value, as in
the event files. NaN and infinite values are refused: no accuracy, step or setting is one.
"""

import csv
import dataclasses
import json
import math
import os

import numpy as np

from tltransfer.config import IRRELEVANT, MODES, Config

DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}
REQUIRED = ("run", "mode", "n_train", "tag", "step", "value")
TEST_ACCURACY = "test/accuracy"
HINT = ("write it with `python -m tltransfer.export --logdir=logs --out=results.csv` or pass "
        "the right file with --csv=PATH")
REEXPORT = "re-export it with `python -m tltransfer.export`"


class ReportError(Exception):
    """The report cannot be made; the message says what is wrong and how to fix it."""


@dataclasses.dataclass(eq=False)
class Run:
    name: str
    config: dict  # every Config field -> its value
    n_train: int
    curves: dict  # tag -> (steps, values), by step

    @property
    def mode(self):
        return self.config["mode"]

    @property
    def seed(self):
        return self.config["seed"]

    @property
    def test_curve(self):
        return self.curves.get(TEST_ACCURACY)

    def relevant(self):
        """The fields this run depends on (the others are stored at their defaults)."""
        return [f for f in DEFAULTS if f not in IRRELEVANT.get(self.mode, ())]


@dataclasses.dataclass
class Results:
    runs: list  # sorted by (mode, p, dropout, seed, name)
    absent: list  # the Config fields the CSV has no column for: read as their defaults


def number(text):
    value = float(text)
    if not math.isfinite(value):  # NaN or inf: no accuracy, step or setting is either
        raise ValueError(text)
    return value


def integer(text):
    if not number(text).is_integer():
        raise ValueError(text)
    return int(float(text))


CONVERT = {**{f: {int: integer, float: number}.get(type(d), str) for f, d in DEFAULTS.items()},
           "n_train": integer, "step": integer, "value": number}


def read_rows(path):
    """(header, the non-empty rows as {column: value}, empty cells left out)."""
    if not os.path.isfile(path):
        what = "is a directory, not a CSV file" if os.path.isdir(path) else "does not exist"
        raise ReportError(f"{path} {what}; {HINT}")
    try:  # utf-8-sig: a CSV saved by a spreadsheet may start with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header, *table = list(csv.reader(handle)) or [[]]
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read {path}: {error}; {HINT}") from None
    header = [cell.strip() for cell in header]
    if not any(header):
        raise ReportError(f"{path} is empty; {HINT}")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ReportError(f"{path} lacks the column(s) {', '.join(missing)}; {HINT}")
    rows = []
    for line, row in ((n, r) for n, r in enumerate(table, start=2) if any(r)):
        if len(row) != len(header):
            raise ReportError(f"{path} line {line} has {len(row)} fields but the header has "
                              f"{len(header)}; {REEXPORT}")
        rows.append({c: text.strip() for c, text in zip(header, row) if text.strip()})
        for column, text in rows[-1].items():
            try:
                rows[-1][column] = CONVERT.get(column, str)(text)
            except ValueError:
                kind = "integer" if CONVERT[column] is integer else "finite number"
                raise ReportError(f"{path} line {line}: {column}={text!r} is not a valid "
                                  f"{kind}; {REEXPORT}") from None
    return header, rows


def load(path):
    """The Results of the CSV; ReportError if it is unusable."""
    header, rows = read_rows(path)
    heads, points = {}, {}
    for row in rows:
        config = {f: row.get(f, d) for f, d in DEFAULTS.items()}
        if "samples" not in header and config["mode"] == "source":
            config.update(source_samples=config["train_samples"],
                          train_samples=DEFAULTS["train_samples"])
        head = (config, row.get("n_train"))
        if heads.setdefault(row["run"], head) != head:
            raise ReportError(f"{path}: run {row['run']} has rows with different settings; "
                              f"{REEXPORT}")
        points.setdefault(row["run"], {}).setdefault(row["tag"], {})[row["step"]] = row["value"]
    if not heads:
        raise ReportError(f"{path} has a header but no data rows; {HINT}")
    if not any(TEST_ACCURACY in tags for tags in points.values()):
        raise ReportError(f"{path} has no {TEST_ACCURACY} rows, which every table and figure "
                          f"needs; {HINT}")
    runs = [Run(name, *head, {tag: curve(s) for tag, s in points[name].items()})
            for name, head in heads.items()]
    runs.sort(key=lambda r: (mode_rank(r.mode), r.config["p"], r.config["dropout"], r.seed,
                             r.name))
    return Results(runs, [f for f in DEFAULTS if f not in header])


def curve(values_by_step):
    """(steps, values), by step."""
    steps = sorted(values_by_step)
    return np.array(steps, dtype=float), np.array([values_by_step[k] for k in steps])


def mode_rank(mode):
    return (MODES.index(mode), mode) if mode in MODES else (len(MODES), mode)


def meta_path(csv_path):
    return os.path.splitext(csv_path)[0] + "_meta.json"


def load_meta(csv_path):
    """(the export's meta dict or None, a note saying why it is None)."""
    path = meta_path(csv_path)
    try:
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except FileNotFoundError:
        return None, f"`{path}` is absent: commands, flagfiles, versions and data hash unknown."
    except (OSError, ValueError) as error:
        return None, f"`{path}` could not be read ({error}); provenance unknown."
    return (meta, "") if isinstance(meta, dict) else (None, f"`{path}` is not a JSON object.")
