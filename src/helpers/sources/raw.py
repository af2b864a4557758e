"""A source's rows mapped to the raw canonical tables: images through SQL, models record by record."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import db, schema
from ..db import sql_identifier, sql_literal
from ..paths import RunPaths
from .common import (IMAGE_BATCH, MODEL_BATCH, SourceError, _get, _require_gzip_magic, _text, _text_list,
                     _valid_text, file_format, hash_username, iter_json_records)

# --------------------------------------------------------------------------- images → raw (SQL)
def _field_type(arrow_schema: pa.Schema, name: str) -> pa.DataType:
    return arrow_schema.field(name).type


def _as_text_sql(expr: str, typ: pa.DataType) -> str:
    if pa.types.is_floating(typ):
        # A whole float is written as an integer, as :func:`_text` does: pandas stores integer
        # ids and counts with gaps as floats, and "12.0" must still be id 12.
        return (f"(CASE WHEN isfinite({expr}) AND {expr} = trunc({expr}) AND abs({expr}) < 1e18 "
                f"THEN CAST(CAST({expr} AS BIGINT) AS VARCHAR) ELSE CAST({expr} AS VARCHAR) END)")
    if pa.types.is_timestamp(typ):
        return f"strftime(CAST({expr} AS TIMESTAMP), '%Y-%m-%dT%H:%M:%S.%gZ')"
    if pa.types.is_struct(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ) \
            or pa.types.is_map(typ):
        return f"CAST(to_json({expr}) AS VARCHAR)"
    return f"CAST({expr} AS VARCHAR)"


def image_select_sql(arrow_schema: pa.Schema, relation: str, salt: str, keep: str = "") -> str:
    """SELECT mapping a source's image columns to the raw canonical images columns.

    Resolves aliases, nested reaction counts (struct or JSON text), Civiverse ``Resource1..3``,
    string NSFW levels in ``nsfw``, and hashes clear usernames with ``salt``. ``keep`` names
    source columns passed through unchanged after the canonical ones (e.g. ``_row``).
    """
    names = arrow_schema.names
    exprs: dict[str, str] = {}
    for col in schema.IMAGES:
        alias = schema.find_alias(names, "images", col.name)
        if alias is not None:
            typ = _field_type(arrow_schema, alias)
            if col.name == "resources":
                exprs[col.name] = (f"CAST({sql_identifier(alias)} AS VARCHAR[])" if pa.types.is_list(typ)
                                   or pa.types.is_large_list(typ) else f"[CAST({sql_identifier(alias)} AS VARCHAR)]")
            else:
                exprs[col.name] = _as_text_sql(sql_identifier(alias), typ)
    # Reaction counts nested in statsSummary / stats.
    for stats_col in schema.IMAGE_STATS_COLUMNS:
        if stats_col not in names:
            continue
        typ = _field_type(arrow_schema, stats_col)
        for col, key in (("like_count", "likeCount"), ("heart_count", "heartCount"),
                         ("laugh_count", "laughCount"), ("cry_count", "cryCount"),
                         ("comment_count", "commentCount")):
            if col in exprs:
                continue
            if pa.types.is_struct(typ):
                if typ.get_field_index(key) >= 0:
                    exprs[col] = f"CAST({sql_identifier(stats_col)}.{sql_identifier(key)} AS VARCHAR)"
            elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
                exprs[col] = (f"CASE WHEN json_valid({sql_identifier(stats_col)}) THEN "
                              f"json_extract_string({sql_identifier(stats_col)}, {sql_literal('$.' + key)}) END")
    # Civiverse lists up to three resources in separate columns.
    if "resources" not in exprs:
        res = [c for c in schema.RESOURCE_COLUMNS if c in names]
        if res:
            items = ", ".join(f"CAST({sql_identifier(c)} AS VARCHAR)" for c in res)
            exprs["resources"] = f"list_filter([{items}], lambda x: x IS NOT NULL AND x <> '')"
    # A clear username is hashed here and never written.
    if "user_hash" not in exprs:
        clear = next((c for c in schema.CLEAR_USERNAME_COLUMNS if c in names
                      and not pa.types.is_struct(_field_type(arrow_schema, c))), None)
        if clear is not None:
            exprs["user_hash"] = (f"CASE WHEN {sql_identifier(clear)} IS NULL OR CAST({sql_identifier(clear)} AS VARCHAR) = '' "
                                  f"THEN NULL ELSE left(sha256({sql_literal(salt)} || CAST({sql_identifier(clear)} AS VARCHAR)), 16) END")
    select = []
    for col in schema.IMAGES:
        expr = exprs.get(col.name)
        if expr is None:
            expr = "CAST(NULL AS VARCHAR[])" if col.name in schema.LIST_COLUMNS else "CAST(NULL AS VARCHAR)"
        select.append(f"{expr} AS {sql_identifier(col.name)}")
    if keep:
        select.append(keep)
    return f"SELECT {', '.join(select)} FROM {relation}"


def needs_salt(arrow_schema: pa.Schema) -> bool:
    """True when the source's users are clear usernames that acquisition must hash."""
    names = arrow_schema.names
    return schema.find_alias(names, "images", "user_hash") is None and any(
        c in names and not pa.types.is_struct(_field_type(arrow_schema, c))
        for c in schema.CLEAR_USERNAME_COLUMNS)


def decode_every_value_sql(field: pa.Field) -> str:
    """An aggregate that makes DuckDB decode (and check as UTF-8) every value of a column:
    ``count`` may be answered from the file's statistics and ``strlen`` skips the UTF-8 check."""
    return f"bit_xor(hash({sql_identifier(field.name)}))"


def in_place_images_view(files: list[Path], paths: RunPaths, where: str) -> dict[str, Any] | None:
    """The raw images table as a view reading the snapshot's Parquet files in place, or None when
    they must be converted and written instead (not Parquet, files with different columns, clear
    usernames to hash, or text that is not valid UTF-8 and must be repaired).

    The view names every file with its rows and SHA-256 (checked again before cleaning reads
    it), and the ``SELECT`` mapping the source's columns to the raw columns; no row is copied.
    """
    if not files or any(file_format(f) != "parquet" for f in files):
        return None
    try:
        schemas = [pq.read_schema(f) for f in files]
    except (pa.ArrowInvalid, OSError):
        return None  # the copying reader names the bad file
    first = schemas[0].remove_metadata()
    if any(not s.remove_metadata().equals(first) for s in schemas[1:]) or needs_salt(first):
        return None
    missing = missing_image_columns(first)
    if missing:
        raise SourceError(f"{where}: images have no column for {missing} (looked for "
                          f"{[schema.IMAGE_ALIASES[m] for m in missing]}); the snapshot is not in "
                          f"a supported format — rename the column or use another --source")
    con = db.connect(paths.tmp)
    try:  # every value decoded once: a damaged page fails here, and DuckDB refuses invalid UTF-8
        con.execute(f"SELECT {', '.join(decode_every_value_sql(f) for f in first)} "
                    f"FROM {db.read_parquet_sql(files)}").fetchall()
    except duckdb.Error:
        return None  # invalid UTF-8 or a damaged file: the copying reader repairs or explains
    finally:
        con.close()
    dest = paths.table("raw", "images")
    return {"kind": "select",
            "files": [db.in_place_file(f, dest, paths.root) for f in files],
            "select": image_select_sql(first, "{source}", "", keep="_row")}


def missing_image_columns(arrow_schema: pa.Schema) -> list[str]:
    """Required image columns that no alias in the source provides."""
    names = arrow_schema.names
    missing = []
    for col in schema.IMAGES:
        if not col.required or col.name == "nsfw_level":
            continue
        if schema.find_alias(names, "images", col.name) is None:
            if col.name == "browsing_level" and "nsfw" in names:
                continue  # old API images carry the level as a string in `nsfw`
            missing.append(col.name)
    return missing


def write_raw_images(reader: pa.RecordBatchReader, dest: Path, salt: str, where: str,
                     paths: RunPaths | None = None) -> int:
    """Stream a source's image batches through the alias mapping into ``dest`` (atomic)."""
    missing = missing_image_columns(reader.schema)
    if missing:
        raise SourceError(f"{where}: images have no column for {missing} (looked for "
                          f"{[schema.IMAGE_ALIASES[m] for m in missing]}); the snapshot is not in "
                          f"a supported format — rename the column or use another --source")
    db.view_path(dest).unlink(missing_ok=True)  # a view of an earlier run's snapshot is stale
    con = db.connect(paths.tmp if paths is not None else None)
    reader_errors: list[Exception] = []
    try:
        con.register("source_images", _recording_errors(reader, reader_errors))
        sql = image_select_sql(reader.schema, "source_images", salt)
        return db.stream_query_to_parquet(con, sql, dest)
    except Exception as exc:
        # A failure while reading the files surfaces through DuckDB as text with a traceback;
        # the original error says which file is bad and what to do.
        if reader_errors and isinstance(reader_errors[0], SourceError):
            raise reader_errors[0] from None
        if reader_errors:
            first = reader_errors[0]
            raise SourceError(f"{where}: reading images failed part-way ({type(first).__name__}: "
                              f"{str(first)[:300]}); a file is truncated or corrupt: re-download "
                              f"or remove it") from first
        if isinstance(exc, duckdb.Error):
            raise SourceError(f"{where}: reading images failed: {exc}") from exc
        raise
    finally:
        con.close()


def _recording_errors(reader: pa.RecordBatchReader, errors: list[Exception]) -> pa.RecordBatchReader:
    """``reader`` unchanged, but the first exception its batches raise is appended to ``errors``."""
    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except Exception as exc:
            errors.append(exc)
            raise

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def file_reader(path: Path, batch_size: int = IMAGE_BATCH,
                 repairs: Counter | None = None) -> pa.RecordBatchReader:
    """A streaming Arrow reader over one Parquet/CSV/JSON Lines file.

    Text columns always come out as valid UTF-8: bytes that are not are replaced (U+FFFD) and
    counted in ``repairs`` as ``non_utf8_text_replaced``, so a stray Latin-1 byte costs one
    character, not the file.
    """
    fmt = file_format(path)
    repairs = repairs if repairs is not None else Counter()
    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(path)
            return pa.RecordBatchReader.from_batches(
                pf.schema_arrow,
                _utf8_batches(pf.iter_batches(batch_size), pf.schema_arrow, repairs, path))
        if fmt == "csv":
            _require_gzip_magic(path)
            # Every CSV column is read as bytes, then as UTF-8 text: cleaning decides what parses.
            names = pacsv.open_csv(path).schema.names
            reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in names}))
            text_schema = pa.schema([pa.field(n, pa.string()) for n in names])
            return pa.RecordBatchReader.from_batches(text_schema,
                                                     _utf8_batches(reader, text_schema, repairs, path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path.name}: cannot be read as {fmt} ({exc}); the file may be "
                          f"truncated or corrupt: re-download or remove it") from exc
    # JSON Lines of images: flattened records (API shape) in batches with a fixed text schema.
    return _records_reader(iter_json_records(path, repairs), flatten_api_image)


def _utf8_batches(batches: Iterable[pa.RecordBatch], target: pa.Schema,
                  repairs: Counter, path: Path) -> Iterator[pa.RecordBatch]:
    """``batches`` of the file ``path`` with every top-level text column of ``target`` as valid
    UTF-8 (see :func:`_valid_utf8`); a read failure part-way names the file. Checking is a fast
    vectorised pass; only a bad batch goes through Python."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{path.name}: reading failed part-way ({exc}); the file is "
                              f"truncated or corrupt: re-download or remove it") from exc
        columns = [_valid_utf8(column, field.type, repairs)
                   if pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
                   else column for field, column in zip(target, batch.columns)]
        yield pa.RecordBatch.from_arrays(columns, schema=target)


def _valid_utf8(column: pa.Array, text_type: pa.DataType, repairs: Counter) -> pa.Array:
    """``column`` (text or bytes) as ``text_type``, invalid UTF-8 replaced by U+FFFD and counted."""
    try:
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            return column.cast(text_type)  # the cast validates UTF-8
        column.validate(full=True)
        return column
    except pa.ArrowInvalid:
        as_bytes = column if not pa.types.is_string(column.type) and \
            not pa.types.is_large_string(column.type) else column.view(
                pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())
        values = []
        for value in as_bytes.to_pylist():
            if value is None:
                values.append(None)
                continue
            try:
                values.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                repairs["non_utf8_text_replaced"] += 1
                values.append(value.decode("utf-8", errors="replace"))
        return pa.array(values, type=text_type)


def _records_reader(records: Iterable[dict], flatten: Callable[[dict], dict]) -> pa.RecordBatchReader:
    """Arrow reader over flattened records, in the raw canonical images schema."""
    raw_schema = schema.arrow_schema("images", "raw")

    def batches() -> Iterator[pa.RecordBatch]:
        buf: list[dict] = []
        for record in records:
            buf.append(flatten(record))
            if len(buf) >= MODEL_BATCH:
                yield pa.RecordBatch.from_pylist(buf, schema=raw_schema)
                buf = []
        if buf:
            yield pa.RecordBatch.from_pylist(buf, schema=raw_schema)

    return pa.RecordBatchReader.from_batches(raw_schema, batches())


def concat_readers(readers: list[pa.RecordBatchReader],
                    files: list[Path] | None = None) -> pa.RecordBatchReader:
    """One reader over several with the same schema (files of one snapshot)."""
    first = readers[0].schema
    for i, r in enumerate(readers[1:], 1):
        if not r.schema.equals(first):
            names = (f"{files[0].name} and {files[i].name}" if files else "image files")
            differ = sorted(f"{n} ({first.field(n).type if n in first.names else 'absent'} vs "
                            f"{r.schema.field(n).type if n in r.schema.names else 'absent'})"
                            for n in set(first.names) ^ set(r.schema.names)
                            | {n for n in set(first.names) & set(r.schema.names)
                               if not first.field(n).type.equals(r.schema.field(n).type)})
            raise SourceError(f"{names} have different columns or column types: "
                              f"{', '.join(differ[:8])}; convert the files to one layout or load "
                              f"them as separate runs")

    def batches() -> Iterator[pa.RecordBatch]:
        for r in readers:
            yield from r

    return pa.RecordBatchReader.from_batches(first, batches())


# --------------------------------------------------------------------------- models → raw (Python)
def _first_version_field(versions: list[dict], key: str) -> Any:
    dated = [v for v in versions if isinstance(v, dict)]
    dated.sort(key=lambda v: str(v.get("createdAt") or "~"))
    for v in dated:
        if v.get(key) not in (None, ""):
            return v.get(key)
    return None


def version_names(versions: list, repairs: Counter) -> list[str]:
    """Names of a model's versions (``modelVersions[].name``), first seen first."""
    names = [_text(v.get("name")) for v in versions if isinstance(v, dict)]
    return list(dict.fromkeys(n for n in names if n))


def file_names(versions: list, repairs: Counter) -> list[str]:
    """Names of the files of every version (``modelVersions[].files[].name``), first seen first."""
    names: list[str] = []
    for v in versions:
        files = v.get("files") if isinstance(v, dict) else None
        if isinstance(files, list):
            names += [_text(f.get("name")) for f in files if isinstance(f, dict)]
        elif files is not None:
            repairs["model_files_not_a_list"] += 1
    return list(dict.fromkeys(n for n in names if n))


def flatten_model(record: dict, salt: str, repairs: Counter) -> dict[str, Any]:
    """One raw canonical models row from an API/Hub model object (nested or flat)."""
    stats = record.get("stats") if isinstance(record.get("stats"), dict) else {}
    versions = record.get("modelVersions") or []
    if isinstance(versions, str):
        try:
            versions = json.loads(versions)
        except json.JSONDecodeError:
            repairs["model_versions_unparseable"] += 1
            versions = []
    if not isinstance(versions, list):
        versions = []
    row: dict[str, Any] = {}
    for col in schema.MODELS:
        value = _get(record, "models", col.name)
        if value is None and col.name in ("download_count", "favorite_count", "comment_count",
                                          "rating_count", "rating"):
            value = _get(stats, "models", col.name) if stats else None
        row[col.name] = value
    if row["nsfw_level"] is None and isinstance(record.get("nsfw"), str) \
            and record["nsfw"].strip().lower() not in schema.TRUE_SPELLINGS + schema.FALSE_SPELLINGS:
        row["nsfw_level"] = record["nsfw"]
    if row["creator_hash"] is None:
        creator = record.get("creator")
        clear = creator.get("username") if isinstance(creator, dict) else \
            (creator if isinstance(creator, str) else record.get("username"))
        row["creator_hash"] = hash_username(clear, salt)
    words: list[str] = []
    for v in versions:
        if isinstance(v, dict):
            for w in _text_list(v.get("trainedWords"), repairs, "trained_words") or []:
                if w not in words:
                    words.append(w)
    if not words and record.get("trainedWords") is not None:
        words = _text_list(record.get("trainedWords"), repairs, "trained_words") or []
    row["trigger_words"] = words
    row["version_names"] = version_names(versions, repairs)
    row["file_names"] = file_names(versions, repairs)
    row["created_at"] = _first_version_field(versions, "createdAt") or record.get("createdAt") \
        or record.get("publishedAt")
    row["base_model"] = _first_version_field(versions, "baseModel") or record.get("baseModel")
    row["n_versions"] = len(versions) if versions else record.get("n_versions")
    row["tags"] = _text_list(row["tags"], repairs, "tags")
    out: dict[str, Any] = {}
    for col in schema.MODELS:
        value = row.get(col.name)
        out[col.name] = value if col.name in schema.LIST_COLUMNS else _text(value)
    return out


def model_images(record: dict) -> Iterator[dict]:
    """The showcase images nested in an API model object, as API-shaped image records.

    The 2023 API gives these images no ``createdAt``; they were posted with their version,
    so the version's ``createdAt`` stands in (counted as a repair by the caller).
    """
    versions = record.get("modelVersions")
    for version in versions if isinstance(versions, list) else []:
        if not isinstance(version, dict):
            continue
        images = version.get("images")
        for image in images if isinstance(images, list) else []:
            if not isinstance(image, dict):
                continue
            item = dict(image)
            item.setdefault("modelId", record.get("id"))
            item.setdefault("baseModel", version.get("baseModel"))
            if not item.get("createdAt") and version.get("createdAt"):
                item["createdAt"] = version.get("createdAt")
                item["_created_at_from_version"] = True
            yield item


def flatten_api_image(record: dict, salt: str = "") -> dict[str, Any]:
    """One raw canonical images row from an ``/api/v1/images`` item or a nested model image."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    stats = record.get("stats") if isinstance(record.get("stats"), dict) else {}
    if not stats and isinstance(record.get("statsSummary"), dict):
        stats = record["statsSummary"]
    row: dict[str, Any] = {}
    for col in schema.IMAGES:
        value = _get(record, "images", col.name)
        if value is None and col.name in ("prompt", "negative_prompt") and meta:
            value = _get(meta, "images", col.name)
        if value is None and col.name.endswith("_count") and stats:
            value = _get(stats, "images", col.name)
        row[col.name] = value
    nsfw = record.get("nsfw")
    if isinstance(nsfw, str) and nsfw.strip().lower() not in schema.TRUE_SPELLINGS + schema.FALSE_SPELLINGS:
        # Old API: `nsfw` is the level ("None", "Soft", "Mature", "X"), not a flag.
        row["browsing_level"] = row["browsing_level"] if row["browsing_level"] is not None else nsfw
        row["nsfw"] = None
    if row["base_model"] is None and meta:
        row["base_model"] = meta.get("Model")
    if row["user_hash"] is None:
        row["user_hash"] = hash_username(record.get("username"), salt) \
            if isinstance(record.get("username"), str) else None
    if isinstance(row["resources"], list):
        row["resources"] = [_text(r.get("name")) if isinstance(r, dict) else _valid_text(str(r))
                            for r in row["resources"] if r is not None]
        row["resources"] = [r for r in row["resources"] if r]
    elif row["resources"] is not None:
        row["resources"] = [_valid_text(str(row["resources"]))]
    if row["resources"] is None and isinstance(meta.get("resources"), list):
        row["resources"] = [_text(r.get("name")) for r in meta["resources"]
                            if isinstance(r, dict) and r.get("name")]
    return {c.name: (row[c.name] if c.name in schema.LIST_COLUMNS else _text(row[c.name]))
            for c in schema.IMAGES}


def write_raw_models(records: Iterable[dict], dest: Path, salt: str, repairs: Counter) -> int:
    """Flatten model records into ``dest`` in batches (atomic)."""
    raw_schema = schema.arrow_schema("models", "raw")

    def batches() -> Iterator[pa.RecordBatch]:
        buf: list[dict] = []
        for record in records:
            buf.append(flatten_model(record, salt, repairs))
            if len(buf) >= MODEL_BATCH:
                yield pa.RecordBatch.from_pylist(buf, schema=raw_schema)
                buf = []
        if buf:
            yield pa.RecordBatch.from_pylist(buf, schema=raw_schema)

    return db.write_parquet_atomic(batches(), dest, raw_schema)


def iter_file_records(path: Path, repairs: Counter) -> Iterator[dict]:
    """Records (dicts) of any supported file, batch by batch for Parquet/CSV."""
    fmt = file_format(path)
    if fmt == "json":
        yield from iter_json_records(path, repairs)
        return
    reader = file_reader(path, MODEL_BATCH, repairs)
    try:
        for batch in reader:
            yield from batch.to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path.name}: reading failed part-way ({exc}); the file is truncated "
                          f"or corrupt: re-download or remove it") from exc


