"""One acquisition contract for every source, the dispatcher, and summaries of what was acquired.

Whatever the source, :func:`acquire` runs the adapter and then the same checks: a table whose
files hold no rows is absent (and counted), raw tables a previous run left are removed, an empty
snapshot is refused, and a required column that no row fills (a missing or misnamed column) is
refused with the aliases that were looked for.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from .. import db, schema
from ..db import sql_identifier
from ..paths import RunPaths
from .api import acquire_api
from .common import SALT_ENV, SOURCES, AcquireResult, SourceError
from .hf import acquire_hf
from .local import acquire_local
from .sample import acquire_sample

#: Columns without which no row of a table can be kept; a source that fills none of them
#: lacks (or misnames) the column, which is an error rather than a table of quarantined rows.
REQUIRED_RAW: dict[str, tuple[str, ...]] = {
    "images": ("image_id", "created_at"),
    "models": ("model_id", "name", "type", "created_at"),
}
#: Where :func:`~helpers.sources.raw.flatten_model` looks for model columns that have no alias entry.
MODEL_DERIVED_SOURCES: dict[str, tuple[str, ...]] = {
    "created_at": ("modelVersions[].createdAt", "createdAt", "publishedAt"),
}


# --------------------------------------------------------------------------- the contract
def _shown(names: list[str], most: int = 3) -> str:
    """File names for a message: the first few, then an ellipsis."""
    return ", ".join(Path(n).name for n in names[:most]) + (" …" if len(names) > most else "")


def drop_empty_tables(result: AcquireResult, paths: RunPaths) -> None:
    """A table whose files hold no rows is treated as absent from the snapshot (and counted)."""
    repairs = Counter(result.repairs)
    for table, rows in list(result.rows.items()):
        if rows == 0:
            del result.rows[table]
            db.remove_table(paths.table("raw", table))
            repairs[f"{table}_files_without_rows"] += 1
    result.repairs = dict(repairs)


def remove_stale_tables(paths: RunPaths, keep: set[str]) -> None:
    """Delete raw tables a previous run left that this source does not provide."""
    for table in schema.CANONICAL:
        if table not in keep:
            db.remove_table(paths.table("raw", table))


def require_rows(result: AcquireResult) -> None:
    """Refuse a snapshot with no rows at all: nothing could be studied, so say so now."""
    if not result.rows:
        raise SourceError(f"{result.location}: the snapshot is empty (no image or model rows in "
                          f"{_shown(result.inputs or [result.location], 5)}); "
                          f"check that the export or download finished, or point --path at the "
                          f"folder that holds the data")


def require_columns(result: AcquireResult, paths: RunPaths) -> None:
    """Raise :class:`SourceError` if a required column is null in every raw row of a table.

    Reads only the Parquet footer's null counts (no data) of a written table, so it costs
    nothing at scale.
    """
    for table, rows in result.rows.items():
        nulls = raw_null_counts(paths.table("raw", table), REQUIRED_RAW[table], rows)
        empty = [c for c in REQUIRED_RAW[table] if rows and nulls[c] == rows]
        if empty:
            looked = {c: schema.ALIASES[table].get(c) or MODEL_DERIVED_SOURCES.get(c, (c,))
                      for c in empty}
            for written in result.rows:  # unusable: leave no raw table of this snapshot behind
                db.remove_table(paths.table("raw", written))
            files = result.files.get(table) or result.files.get("api") or [result.location]
            raise SourceError(f"{_shown(files)}: no {table} row has a value for the required "
                              f"column(s) {empty} (looked for {looked}); the column is missing or "
                              f"misnamed in the snapshot: rename it (see data/README.md) or use "
                              f"another --source")


def raw_null_counts(raw: Path, columns: tuple[str, ...], rows: int) -> Counter:
    """Nulls per column of a raw table: from the Parquet footer's statistics (no data read), or,
    for a table read in place, by counting the few columns asked for."""
    nulls: Counter = Counter()
    if not raw.exists():
        con = db.connect(None)
        try:
            values = con.execute(f"SELECT {', '.join(f'count({sql_identifier(c)})' for c in columns)} "
                                 f"FROM {db.table_sql(raw)}").fetchone()
        finally:
            con.close()
        nulls.update({c: rows - int(v) for c, v in zip(columns, values)})
        return nulls
    meta = pq.ParquetFile(raw).metadata
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for i in range(group.num_columns):
            col = group.column(i)
            stats = col.statistics
            nulls[col.path_in_schema] += (stats.null_count if stats is not None and
                                          stats.has_null_count else 0)
    return nulls


def enforce_contract(result: AcquireResult, paths: RunPaths) -> AcquireResult:
    """The checks every source's output passes, whichever adapter wrote it."""
    drop_empty_tables(result, paths)
    remove_stale_tables(paths, set(result.rows))
    require_rows(result)
    require_columns(result, paths)
    return result


def salt_advice(source: str, salt: str) -> str | None:
    """A warning when clear usernames of real data would be hashed without a salt (an unsalted
    hash of a username can be reversed by hashing a list of known usernames), else None."""
    if salt or source == "sample":
        return None
    return (f"{SALT_ENV} is not set: clear usernames in this {source} snapshot are hashed without "
            f"a salt, which a list of known usernames can reverse. Set it to a secret, e.g. "
            f"`export {SALT_ENV}=$(python -c 'import secrets; print(secrets.token_hex(16))')`, "
            f"and keep it to re-run with the same hashes.")


# --------------------------------------------------------------------------- dispatcher
def run_adapter(source: str, paths: RunPaths, path: str, revision: str, sample_images: int | None,
                sample_models: int | None, seed: int | None, salt: str) -> AcquireResult:
    """Run the adapter of ``source`` (no checks: :func:`acquire` applies the contract)."""
    if source not in SOURCES:
        raise SourceError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "sample":
        if None in (sample_images, sample_models, seed):
            raise SourceError("--source sample needs sample_images, sample_models and seed "
                              "(python -m helpers params lists their defaults)")
        return acquire_sample(paths, sample_images, sample_models, seed, salt)
    if source == "hf":
        if path:
            # A local folder in the Hub's layout: images/ and models/ subfolders.
            base = Path(path)
            return acquire_hf(paths, revision, images_repo=str(base / "images")
                              if (base / "images").exists() else "",
                              models_repo=str(base / "models") if (base / "models").exists() else "",
                              salt=salt)
        return acquire_hf(paths, revision, salt=salt)
    if not path:
        raise SourceError(f"--source {source} needs --path (a folder or file of the snapshot)")
    if source == "local":
        return acquire_local(Path(path), paths, salt=salt)
    return acquire_api(Path(path), paths, salt=salt)


def acquire(source: str, paths: RunPaths, path: str = "", revision: str = "",
            sample_images: int | None = None, sample_models: int | None = None,
            seed: int | None = None, salt: str = "") -> AcquireResult:
    """Run the adapter for ``source``, check its output, and leave ``data/raw/{images,models}.parquet``.

    The sample's sizes and seed have no defaults here: they come from the run's parameters.
    """
    paths.ensure()
    result = run_adapter(source, paths, path, revision, sample_images, sample_models, seed, salt)
    return enforce_contract(result, paths)


# --------------------------------------------------------------------------- summaries
def raw_coverage(paths: RunPaths) -> pd.DataFrame:
    """For each raw table present: how many rows have a value in each canonical column.

    Shows at a glance which canonical columns this source provides (e.g. the 2023 API has
    no reactions for nested images, the Hub images have no tags).
    """
    frames = []
    con = db.connect(paths.tmp)
    try:
        for table, cols in schema.CANONICAL.items():
            path = paths.table("raw", table)
            if not db.table_exists(path):
                continue
            counts = ", ".join(f"count({sql_identifier(c.name)}) AS {sql_identifier(c.name)}"
                               for c in cols)
            cur = con.execute(f"SELECT count(*) AS n, {counts} FROM {db.table_sql(path)}")
            values = cur.fetchone()
            n = values[0]
            for (name, *_), v in zip(cur.description[1:], values[1:]):
                frames.append({"table": table, "column": name, "rows with a value": int(v),
                               "share": round(v / n, 4) if n else 0.0})
    finally:
        con.close()
    return pd.DataFrame(frames, columns=["table", "column", "rows with a value", "share"])


def acquire_summary(result: AcquireResult) -> pd.DataFrame:
    """What the adapter wrote, one row per table (tables the snapshot lacks say so)."""
    return pd.DataFrame([{"table": t, "raw rows": result.rows.get(t, 0),
                          "note": "" if t in result.rows else "not in this snapshot"}
                         for t in schema.CANONICAL])
