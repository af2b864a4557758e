"""Images linked to the models they use: the checkpoint and every adapter the prompt calls.

This is what lets the study speak of *personalisation*: which images use which adapters (and so
which real-person adapters), and which base-model family carries which content.

Three ways an image names a model, each resolved against the models table of the same snapshot:

``model_id``       the model the platform recorded for the image: the checkpoint, or for a
                   model's showcase image the model itself (kind by the model's type);
``resources``      resource names the source lists for the image (Civiverse ``Resource1..3``);
``<lora:NAME:w>``  adapter calls in the prompt (kind ``adapter``; every kind of
                   :data:`helpers.schema.ADAPTER_KINDS`).

A name is matched after normalisation (:func:`name_key`: case, file extension and separators
ignored) first to the models' file names, then to their version names, then to their names. A
key that names exactly one model is *resolved*; one that names several is *ambiguous* (never
guessed); one that names none is *unresolved*. Calls are extracted in SQL (tens of millions of
prompts); only the distinct names are normalised and matched in Python, so memory grows with the
number of distinct names, not of images.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from . import db, schema
from .paths import RunPaths

#: File extensions stripped from names before matching (model files as uploaded).
MODEL_FILE_EXTENSIONS: tuple[str, ...] = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
#: Sources of a model's names, in the order a name is looked up.
NAME_SOURCES: tuple[str, ...] = ("file_name", "version_name", "model_name")
#: Outcomes of matching one name.
STATUSES: tuple[str, ...] = ("resolved", "ambiguous", "unresolved")
#: The link table written to ``data/processed/links.parquet``.
LINK_SCHEMA = pa.schema([
    pa.field("image_id", pa.int64()),
    pa.field("model_id", pa.int64()),
    pa.field("kind", pa.string()),   # checkpoint | adapter (by the linked model's type)
    pa.field("how", pa.string()),    # model_id | resources | file_name | version_name | model_name
])

_EXTENSION_RE = re.compile("(?:" + "|".join(re.escape(e) for e in MODEL_FILE_EXTENSIONS) + r")$",
                           re.IGNORECASE)
_SEPARATORS_RE = re.compile(r"[\W_]+")


# --------------------------------------------------------------------------- names
def name_key(name: str | None) -> str | None:
    """Normalised form of a model, file or call name: ``Lucy-From_CP v1.safetensors`` →
    ``lucyfromcpv1``. Letters of every script are kept; None when nothing is left."""
    if name is None:
        return None
    text = _EXTENSION_RE.sub("", name.strip())
    key = _SEPARATORS_RE.sub("", text.casefold())
    return key or None


def name_index(models: pd.DataFrame) -> pd.DataFrame:
    """Every (key, model_id, how) a model can be called by, one row per distinct triple.

    ``models`` needs ``model_id``, ``name`` and, where the snapshot has them, ``file_names``
    and ``version_names`` (lists).
    """
    rows: list[tuple[str, int, str]] = []
    for model_id, name, files, versions in zip(
            models["model_id"], models["name"],
            models["file_names"] if "file_names" in models else [None] * len(models),
            models["version_names"] if "version_names" in models else [None] * len(models)):
        for how, names in (("file_name", files), ("version_name", versions), ("model_name", [name])):
            for n in (list(names) if names is not None else []):
                key = name_key(n)
                if key is not None:
                    rows.append((key, int(model_id), how))
    return (pd.DataFrame(rows, columns=["key", "model_id", "how"]).drop_duplicates()
            .sort_values(["key", "how", "model_id"], kind="stable").reset_index(drop=True))


def candidate_ids(index: pd.DataFrame) -> dict[str, list[int]]:
    """Key -> the sorted distinct ids of the models that key names, in one sorted pass."""
    part = index.drop_duplicates(["key", "model_id"]).sort_values(["key", "model_id"], kind="stable")
    keys = part["key"].to_numpy()
    ids = part["model_id"].to_numpy(dtype="int64")
    if not len(keys):
        return {}
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return {keys[i]: group.tolist() for i, group in zip(starts, np.split(ids, starts[1:]))}


def resolve_names(names: pd.Series, index: pd.DataFrame) -> pd.DataFrame:
    """For each distinct name: ``status``, ``model_id`` (resolved only) and ``how``.

    The first source in :data:`NAME_SOURCES` that knows the key decides: one model there
    resolves the name, several make it ambiguous, whatever later sources say.
    """
    distinct = pd.Series(pd.unique(names.dropna()), dtype="object")
    keys = distinct.map(name_key)
    candidates = {how: candidate_ids(part) for how, part in index.groupby("how")}
    out = []
    for name, key in zip(distinct, keys):
        status, model_id, how = "unresolved", None, None
        for source in NAME_SOURCES:
            found = candidates.get(source)
            ids = found.get(key) if found is not None and key is not None else None
            if ids:
                status = "resolved" if len(ids) == 1 else "ambiguous"
                model_id, how = (ids[0] if len(ids) == 1 else None), source
                break
        out.append({"name": name, "status": status, "model_id": model_id, "how": how})
    frame = pd.DataFrame(out, columns=["name", "status", "model_id", "how"])
    frame["model_id"] = frame["model_id"].astype("Int64")
    return frame


# --------------------------------------------------------------------------- SQL
def call_names_sql(images: str) -> str:
    """``(image_id, created_at, name)`` of every adapter call in the prompts of ``images``."""
    pattern = db.sql_literal(schema.ADAPTER_CALL_NAME_PATTERN)
    return (f"SELECT image_id, created_at, trim(unnest(regexp_extract_all(prompt, {pattern}, 1))) AS name "
            f"FROM {images} WHERE prompt IS NOT NULL AND contains(prompt, '<')")


def resource_names_sql(images: str) -> str:
    """``(image_id, created_at, name)`` of every resource name the source lists for an image."""
    return (f"SELECT image_id, created_at, trim(unnest(resources)) AS name FROM {images} "
            f"WHERE resources IS NOT NULL AND len(resources) > 0")


def _distinct_names(con: duckdb.DuckDBPyConnection, sql: str) -> pd.Series:
    return con.execute(f"SELECT DISTINCT name FROM ({sql}) WHERE name IS NOT NULL AND name <> '' "
                       f"ORDER BY name").df()["name"]


def _mapping_table(resolved: pd.DataFrame) -> pa.Table:
    """The resolved names as an Arrow table for DuckDB (model id null unless resolved)."""
    return pa.Table.from_pandas(resolved[["name", "status", "model_id", "how"]], preserve_index=False)


# --------------------------------------------------------------------------- the stage
def link_images(paths: RunPaths, memory_limit: str = "3GB") -> dict[str, Any]:
    """Write ``data/processed/links.parquet`` and return the linkage report.

    Needs the interim images; without a models table every name is unresolved and only the
    report is written (the link table is then empty). Without images nothing is written.
    """
    images_file = paths.table("interim", "images")
    links_file = paths.links
    if not db.table_exists(images_file):
        links_file.unlink(missing_ok=True)
        return {"images": 0, "calls": {}, "resources": {}, "checkpoints": {}, "by_month": []}
    models_file = paths.table("interim", "models")
    con = db.connect(paths.tmp, memory_limit=memory_limit)
    try:
        images = db.table_sql(images_file)
        if models_file.exists():
            models = con.execute(f"SELECT model_id, name, type, file_names, version_names "
                                 f"FROM {db.table_sql(models_file)}").df()
        else:
            models = pd.DataFrame({"model_id": pd.Series([], dtype="int64"),
                                   **{c: pd.Series([], dtype="object")
                                      for c in ("name", "type", "file_names", "version_names")}})
        index = name_index(models)
        # The prompts are scanned for calls once: the names, the link table and the report all
        # read the narrow extracted rows (DuckDB spills them under the run's tmp folder).
        con.execute(f"CREATE TEMP TABLE image_calls AS {call_names_sql(images)}")
        con.execute(f"CREATE TEMP TABLE image_resources AS {resource_names_sql(images)}")
        calls, resources = "SELECT * FROM image_calls", "SELECT * FROM image_resources"
        names = pd.concat([_distinct_names(con, calls), _distinct_names(con, resources)])
        con.register("name_map", _mapping_table(resolve_names(names, index)))
        con.register("known_models", pa.table({
            "model_id": pa.array(models["model_id"].tolist(), pa.int64()),
            "is_checkpoint": pa.array(models["type"].fillna("").str.lower()
                                      .isin(["checkpoint"]).tolist(), pa.bool_())}))
        # The three sources differ in ``how``, so none repeats another's rows, and image and model
        # ids are unique after cleaning: only the name sources (a name called twice, two names of
        # one model) repeat a link, so only they are de-duplicated.
        link_sql = f"""
            SELECT * FROM (
                SELECT i.image_id, i.model_id,
                       CASE WHEN k.is_checkpoint THEN 'checkpoint' ELSE 'adapter' END AS kind,
                       'model_id' AS how
                FROM {images} i JOIN known_models k ON i.model_id = k.model_id
                UNION ALL
                SELECT DISTINCT c.image_id, m.model_id, 'adapter' AS kind, m.how
                FROM ({calls}) c JOIN name_map m ON c.name = m.name WHERE m.status = 'resolved'
                UNION ALL
                SELECT DISTINCT r.image_id, m.model_id,
                       CASE WHEN k.is_checkpoint THEN 'checkpoint' ELSE 'adapter' END AS kind,
                       'resources' AS how
                FROM ({resources}) r JOIN name_map m ON r.name = m.name
                JOIN known_models k ON k.model_id = m.model_id WHERE m.status = 'resolved'
            ) ORDER BY image_id, kind, model_id"""
        rows = db.stream_query_to_parquet(con, link_sql, links_file)
        report = linkage_report(con, images, calls, resources)
        report["links"] = rows
        return report
    finally:
        con.close()


def linkage_report(con: duckdb.DuckDBPyConnection, images: str, calls: str,
                   resources: str) -> dict[str, Any]:
    """Calls and resource names found, resolved, ambiguous and unresolved (overall and by month),
    and images whose checkpoint id matches a model. Needs ``name_map`` and ``known_models``."""
    month = "strftime(created_at, '%Y-%m')"
    by_month = con.execute(f"""
        SELECT {month} AS month, 'call' AS what, m.status, count(*) AS n
        FROM ({calls}) c JOIN name_map m ON c.name = m.name GROUP BY ALL
        UNION ALL
        SELECT {month} AS month, 'resource' AS what, m.status, count(*) AS n
        FROM ({resources}) r JOIN name_map m ON r.name = m.name GROUP BY ALL
        ORDER BY month, what, status""").df()
    totals = by_month.groupby(["what", "status"])["n"].sum()

    def counts(what: str) -> dict[str, int]:
        found = {s: int(totals.get((what, s), 0)) for s in STATUSES}
        return {"found": sum(found.values()), **found}

    n_images, with_id, matched = con.execute(f"""
        SELECT count(*), count(model_id),
               count_if(model_id IN (SELECT model_id FROM known_models)) FROM {images}""").fetchone()
    return {"images": int(n_images), "calls": counts("call"), "resources": counts("resource"),
            "checkpoints": {"with_model_id": int(with_id), "resolved": int(matched)},
            "by_month": by_month.to_dict("records")}


def linkage_by_month(report: dict[str, Any], what: str = "call") -> pd.DataFrame:
    """The report's monthly counts as a table: month, found, resolved, ambiguous, unresolved,
    resolved share (of what was found)."""
    frame = pd.DataFrame(report.get("by_month") or [], columns=["month", "what", "status", "n"])
    frame = frame[frame["what"] == what]
    wide = (frame.pivot_table(index="month", columns="status", values="n", aggfunc="sum")
            .reindex(columns=list(STATUSES)).fillna(0).astype("int64"))
    wide.insert(0, "found", wide.sum(axis=1))
    wide["resolved_share"] = (wide["resolved"] / wide["found"]).where(wide["found"] > 0)
    return wide.reset_index().rename_axis(columns=None)


def link_counts(links: pd.DataFrame) -> Counter:
    """How many links of each (kind, how): a small summary for notebooks and tests."""
    return Counter(zip(links["kind"], links["how"]))
