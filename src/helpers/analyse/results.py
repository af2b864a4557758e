"""The results object of an analysis notebook, and how it is stored in a run folder.

A results object is a frozen dataclass whose fields are frames (stored as Parquet, one file
per field), summaries (flat dicts of numbers and text) and the parameters it was computed
with (both stored in one ``results.json``). A field (or a summary value) that this snapshot
cannot estimate is a :class:`~helpers.stats.NotEstimable` and is stored in ``results.json``
with its reason. Plain data formats only: nothing read back can run
code. Notebook 06 and the benchmark's figure stage read a notebook's results back this way.
The results objects: ``ImageResults`` (notebook 03), ``ModelResults`` (04) and
``InterventionResults`` (05, :mod:`.interventions`), each saved under ``data/reports/results_<part>``.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import db
from ..paths import RunPaths
from ..stats import NotEstimable, stored_float, stored_floats

#: Name of the file holding a results object's summaries and parameters.
SUMMARY_FILE = "results.json"

R = TypeVar("R", bound="Results")


def stored_value(value: Any) -> Any:
    """A summary value as plain JSON data (numpy scalars unwrapped, dicts and lists walked,
    floats to :data:`~helpers.stats.STORED_DIGITS` significant digits)."""
    if isinstance(value, NotEstimable):
        return value.as_json()
    if isinstance(value, dict):
        return {str(k): stored_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [stored_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return stored_float(value)
    return value


def stored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as it is stored: float columns to :data:`~helpers.stats.STORED_DIGITS`
    significant digits (:func:`~helpers.stats.stored_floats`), everything else as it is."""
    floats = [c for c in frame.columns
              if isinstance(frame[c].dtype, np.dtype) and frame[c].dtype.kind == "f"]
    if not floats:
        return frame
    out = frame.copy()
    for c in floats:
        out[c] = stored_floats(frame[c]).to_numpy(frame[c].dtype)
    return out


class Results:
    """Base of the results objects: save to and load from a folder, located under a run."""

    #: Which notebook's results these are; names the folder under ``data/reports``.
    part: ClassVar[str] = ""

    @classmethod
    def folder(cls, paths: RunPaths) -> Path:
        """Where a run keeps these results: ``data/reports/results_<part>/``."""
        return paths.reports / f"results_{cls.part}"

    def save(self, folder: Path) -> Path:
        """Write every frame as ``<field>.parquet`` and the rest into ``results.json``, floats to
        :data:`~helpers.stats.STORED_DIGITS` significant digits (the last bits of a sum depend on
        the CPU's linear-algebra kernels; a run's files must not)."""
        folder = Path(folder)
        summary: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            frame = folder / f"{f.name}.parquet"
            if isinstance(value, pd.DataFrame):
                db.write_parquet_atomic(pa.Table.from_pandas(stored_frame(value)), frame)
            else:
                frame.unlink(missing_ok=True)  # an earlier run's frame must not come back
                summary[f.name] = stored_value(value)
        # allow_nan: an estimate that cannot be made is NaN, and stays NaN when read back.
        text = json.dumps({"part": self.part, "fields": summary}, indent=1, sort_keys=True,
                          ensure_ascii=False, allow_nan=True)
        db.write_text_atomic(text + "\n", folder / SUMMARY_FILE)
        return folder

    @classmethod
    def load(cls: type[R], folder: Path) -> R:
        """The results :meth:`save` wrote into ``folder``."""
        folder = Path(folder)
        stored = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
        if stored.get("part") != cls.part:
            raise ValueError(f"{folder} holds {stored.get('part')!r} results, not {cls.part!r}")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            frame = folder / f"{f.name}.parquet"
            if f.name in stored["fields"]:
                values[f.name] = NotEstimable.from_json(stored["fields"][f.name])
            elif frame.exists():
                values[f.name] = pd.read_parquet(frame)
            else:
                raise FileNotFoundError(f"{folder} lacks the results field {f.name!r}")
        return cls(**values)

    def save_to_run(self, paths: RunPaths) -> Path:
        """Save into the run's results folder (:meth:`folder`)."""
        return self.save(self.folder(paths))

    @classmethod
    def load_from_run(cls: type[R], paths: RunPaths) -> R | None:
        """The run's saved results, or None when the notebook did not produce any."""
        folder = cls.folder(paths)
        return cls.load(folder) if (folder / SUMMARY_FILE).exists() else None

    @classmethod
    def discard(cls, paths: RunPaths) -> None:
        """Remove the run's saved results (a run whose snapshot lacks the table has none, and
        must not leave an earlier run's behind for notebook 05)."""
        shutil.rmtree(cls.folder(paths), ignore_errors=True)
