"""One place that knows where every file of a run lives.

Paths are built from a *run root*: the repository itself (the default, used by
the committed notebooks and ``make reproduce``) or the ``--out`` folder of a
``python -m helpers run``. Nothing here looks at the current working directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TABLES: tuple[str, ...] = ("images", "models")
STAGES: tuple[str, ...] = ("raw", "interim", "processed")


def repo_root() -> Path:
    """The repository root, found from this file (``src/helpers/paths.py``).

    ``HELPERS_REPO_ROOT`` overrides it for installs that are not editable.
    """
    env = os.environ.get("HELPERS_REPO_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunPaths:
    """Every location a run reads or writes, relative to its root."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def reports(self) -> Path:
        """Per-stage JSON reports (row counts, cleaning reasons, labels)."""
        return self.data / "reports"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    @property
    def source_cache(self) -> Path:
        """Files a source adapter materialises before mapping (e.g. the synthetic snapshot)."""
        return self.data / "source"

    @property
    def tmp(self) -> Path:
        """Spill space for DuckDB and temporary files of atomic writes."""
        return self.data / "tmp"

    @property
    def paper(self) -> Path:
        return self.root / "paper"

    @property
    def figures(self) -> Path:
        return self.paper / "figures"

    @property
    def tables(self) -> Path:
        return self.paper / "tables"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def links(self) -> Path:
        """The image → model link table written by :mod:`helpers.link`."""
        return self.data / "processed" / "links.parquet"

    @property
    def image_labels(self) -> Path:
        """The narrow image labels table (``image_id`` + label columns) written by the label stage."""
        return self.data / "processed" / "image_labels.parquet"

    def table(self, stage: str, table: str) -> Path:
        """``data/<stage>/<table>.parquet``, e.g. ``table("raw", "images")``: the table's name. A
        table may be stored as a view beside it (``<table>.view.json``); read it with
        :func:`helpers.db.table_sql`, test it with :func:`helpers.db.table_exists`."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
        return self.data / stage / f"{table}.parquet"

    def study_tables(self) -> dict[str, Path]:
        """Every table a run's stages make, by the name a notebook's DuckDB view gives it
        (:func:`helpers.db.register_views`): ``raw_images`` … ``processed_models``, the image
        labels and the image → model links."""
        tables = {f"{stage}_{table}": self.table(stage, table) for stage in STAGES for table in TABLES}
        return {**tables, "image_labels": self.image_labels, "links": self.links}

    def quarantined(self, table: str) -> Path:
        return self.quarantine / f"{table}.parquet"

    def report(self, name: str) -> Path:
        return self.reports / f"{name}.json"

    def relative(self, path: Path) -> str:
        """A path as shown in notebooks: relative to the run root, never absolute."""
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return Path(path).name

    def ensure(self) -> "RunPaths":
        for folder in (self.reports, self.quarantine, self.source_cache, self.tmp,
                       self.figures, self.tables, *(self.data / s for s in STAGES)):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def run_paths(out_dir: str | os.PathLike[str] = "") -> RunPaths:
    """Paths of a run: ``out_dir`` if given (relative to the repo root), else the repo root."""
    if not out_dir:
        return RunPaths(repo_root())
    out = Path(out_dir)
    if not out.is_absolute():
        out = repo_root() / out
    return RunPaths(out.resolve())
