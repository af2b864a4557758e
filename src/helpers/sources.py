"""Source adapters: every input ends in the raw canonical tables ``data/raw/{images,models}.parquet``.

Four sources, one contract:

``sample``  the embedded synthetic snapshot (:mod:`helpers.synth`), written in the Hub's raw
            column format and then read by the ``local`` adapter, so the real path runs.
``hf``      ``datasets.load_dataset`` of the ``pm-paper-datasets`` repositories, revision pinned,
            resolved commit recorded; Arrow-backed, read in batches.
``local``   a folder or file of Parquet, CSV or JSON Lines in the Hub's column format.
``api``     raw JSON / JSON Lines (optionally gzipped) as CivitAI's REST API returns them.

Images can be tens of millions of rows, so they are never held in Python objects: each
adapter exposes an Arrow ``RecordBatchReader`` and one DuckDB ``COPY`` maps its columns to the
raw canonical names (:func:`image_select_sql`). Models (hundreds of thousands at most) are
flattened record by record (:func:`flatten_model`). Column aliases and encodings come from
:mod:`helpers.schema`; this module is the only one that touches the network.
"""
from __future__ import annotations

import gzip
import hashlib
import html
import inspect
import json
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from . import schema
from .paths import RunPaths

SOURCES: tuple[str, ...] = ("sample", "hf", "local", "api")
#: Environment variable holding the salt for hashing clear usernames. It is never a notebook
#: parameter, so it never appears in an executed notebook, a report or the manifest.
SALT_ENV = "HELPERS_USERNAME_SALT"

#: Hub repositories of the study's data (gated, CC BY-NC 4.0).
HUB_IMAGES = "pm-paper-datasets/Civ-40M"
HUB_IMAGES_SAMPLE = "pm-paper-datasets/Civ-40K"
HUB_MODELS = "pm-paper-datasets/Civ-Models"
#: Revision used when none is given. Pin a commit sha for a publishable run.
DEFAULT_REVISION = "main"

DATA_SUFFIXES = (".parquet", ".csv", ".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz",
                 ".json.gz", ".csv.gz")
MODEL_BATCH = 5_000
#: Rows per Arrow batch read from an image file. Smaller batches keep fewer rows in flight
#: (acquire's peak at 4M rows: 1.45 GB with 100k-row batches, 0.87 GB with 25k), at no cost.
IMAGE_BATCH = 25_000
#: Rows per batch (and per Parquet row group) when a query's result streams into a file.
WRITE_BATCH_ROWS = 100_000


class SourceError(RuntimeError):
    """A snapshot cannot be read; the message says which file, what is wrong and what to do."""


@dataclass
class AcquireResult:
    """What an adapter wrote: row counts per table, provenance, and repairs made on the way."""

    source: str
    location: str
    revision: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "location": self.location, "revision": self.revision,
                "rows": dict(sorted(self.rows.items())),
                "files": {k: sorted(v) for k, v in sorted(self.files.items())},
                "repairs": dict(sorted(self.repairs.items()))}


# --------------------------------------------------------------------------- small helpers
def username_salt() -> str:
    """The salt for hashing clear usernames, from ``HELPERS_USERNAME_SALT`` (empty if unset)."""
    return os.environ.get(SALT_ENV, "")


def hash_username(name: str | None, salt: str) -> str | None:
    """Salted SHA-256 of a clear username, 16 hex characters (same as the SQL in this module)."""
    if name is None or name == "":
        return None
    # surrogatepass: a lone surrogate (from a JSON escape) hashes instead of crashing.
    return hashlib.sha256((salt + str(name)).encode("utf-8", "surrogatepass")).hexdigest()[:16]


_TAG_RE = re.compile(r"<[^>]+>")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_SPACE_RE = re.compile(r"\s+")


def strip_html(text: str | None) -> str | None:
    """Plain text of an HTML fragment: tags removed, entities decoded, white space folded."""
    if text is None:
        return None
    plain = html.unescape(_TAG_RE.sub(" ", str(text)))
    plain = _SPACE_RE.sub(" ", plain).strip()
    return plain


def _valid_text(text: str) -> str:
    """``text`` that Arrow can store: lone surrogates (JSON ``\\ud800`` escapes) become U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATE_RE.sub("\ufffd", text)


def _text(value: Any) -> str | None:
    """A scalar as raw text; dicts/lists as JSON so nothing is lost before cleaning."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _valid_text(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _valid_text(str(value))


def _text_list(value: Any, repairs: Counter, what: str) -> list[str] | None:
    """A list of strings from a list, a JSON list in a string, or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_valid_text(str(v)) for v in value if v is not None]
    if isinstance(value, str):
        repairs[f"{what}_string_to_list"] += 1
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
                if isinstance(parsed, list):
                    return [_valid_text(str(v)) for v in parsed if v is not None]
            except json.JSONDecodeError:
                pass
        return [_valid_text(part.strip()) for part in stripped.strip("[]").split(",") if part.strip()]
    repairs[f"{what}_not_a_list"] += 1
    return [_valid_text(str(value))]


def _get(record: dict, table: str, canonical: str) -> Any:
    """Value of ``canonical`` in a source record, looked up through the alias table."""
    alias = schema.find_alias(record.keys(), table, canonical)
    return record.get(alias) if alias is not None else None


def write_parquet_atomic(table_or_batches: pa.Table | Iterable[pa.RecordBatch], dest: Path,
                         schema_: pa.Schema, store_schema: bool = True) -> int:
    """Write batches to ``dest`` through a temporary file and an atomic rename; return rows."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema_, compression="zstd", store_schema=store_schema) as writer:
            batches = table_or_batches.to_batches() if isinstance(table_or_batches, pa.Table) \
                else table_or_batches
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def duckdb_connection(paths: RunPaths | None = None, memory_limit: str = "3GB",
                      threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with bounded memory, UTC time and spill space under the run."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    try:
        con.execute("SET enable_progress_bar=false")
    except duckdb.Error:
        pass  # inside Jupyter DuckDB refuses the setting (wants ipywidgets) and shows no bar anyway
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute(f"SET threads={int(threads)}")
    con.execute("SET preserve_insertion_order=true")
    if paths is not None:
        paths.tmp.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory='{paths.tmp.as_posix()}'")
    return con


def stream_query_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, dest: Path,
                            batch_rows: int = WRITE_BATCH_ROWS,
                            transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> int:
    """Write the result of ``sql`` to ``dest`` (zstd Parquet), atomically; return its rows.

    The result streams out of DuckDB in Arrow batches into one pyarrow writer, so memory holds
    a few batches whatever the table's size. DuckDB's own parallel ``COPY … TO`` keeps more
    row groups in flight as a table grows (peak 1.27 GB at 4M rows, more at 8M) and slows
    down sharply under a lower memory limit; streaming measured the same speed at 0.65-0.78 GB
    at both sizes. The Arrow schema is not stored in the file, so it reads back exactly as a
    file DuckDB wrote (``list<element>``, timestamps in UTC). ``transform``, if given, is
    applied to every batch before it is written (in order; it may drop rows or columns).
    """
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    if transform is None:
        return write_parquet_atomic(reader, dest, reader.schema, store_schema=False)
    out_schema = transform(pa.RecordBatch.from_pylist([], schema=reader.schema)).schema
    return write_parquet_atomic((transform(batch) for batch in reader), dest, out_schema,
                                store_schema=False)


# --------------------------------------------------------------------------- files
def list_data_files(path: Path) -> list[Path]:
    """Data files under ``path`` (a file or a folder), sorted, hidden and temp files skipped."""
    if not path.exists():
        raise SourceError(f"snapshot path {path} does not exist; give --path a folder or file "
                          f"of Parquet/CSV/JSON Lines (see data/README.md)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts)
                   and p.name.lower().endswith(DATA_SUFFIXES))
    if not files:
        raise SourceError(f"no Parquet, CSV or JSON Lines files under {path}; expected e.g. "
                          f"images/*.parquet and models/*.parquet (see data/README.md)")
    return files


def file_format(path: Path) -> str:
    """'parquet', 'csv' or 'json' from the file name (JSON Lines and JSON both are 'json')."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "json"
    raise SourceError(f"{path.name}: unknown file type; use .parquet, .csv, .jsonl or .json")


def open_text(path: Path):
    """Open a text file, transparently gunzipping ``.gz``; a bad gzip gives a clear error."""
    if path.name.lower().endswith(".gz"):
        _require_gzip_magic(path)
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "rt", encoding="utf-8", errors="replace")


def iter_json_records(path: Path, repairs: Counter) -> Iterator[dict]:
    """Records of a JSON Lines file, or of a JSON file holding a list or an API page (``items``).

    An empty file holds no records. A truncated or corrupt gzip stream is a :class:`SourceError`
    naming the file (found part-way through, so records before it may already be yielded).
    """
    try:
        yield from _json_records(path, repairs)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SourceError(f"{path.name}: the gzip data is truncated or corrupt ({exc}); "
                          f"re-download or re-compress the file, or remove it") from exc


def _json_records(path: Path, repairs: Counter) -> Iterator[dict]:
    """Body of :func:`iter_json_records` (without the gzip error translation)."""
    single = _is_single_json_document(path)
    with open_text(path) as handle:
        if single:
            text = handle.read()
            if not text.strip():
                return  # an empty file: no records (the caller decides if that is a problem)
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path.name}: not valid JSON or JSON Lines ({exc}); fix or "
                                  f"remove the file") from exc
            items = doc.get("items", [doc]) if isinstance(doc, dict) else doc
            for item in items if isinstance(items, list) else [items]:
                if isinstance(item, dict):
                    yield item
                else:
                    repairs["json_record_not_an_object"] += 1
            return
        for lineno, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                repairs["json_line_unparseable"] += 1
                continue
            if isinstance(item, dict):
                yield item
            else:
                repairs["json_record_not_an_object"] += 1


def _is_single_json_document(path: Path) -> bool:
    """True if the file is one JSON document (a page or list) rather than JSON Lines."""
    with open_text(path) as handle:
        first = handle.readline()
        second = handle.readline()
        while second and not second.strip():
            second = handle.readline()
    if not second:
        return True  # one line: a single document and one JSON line read the same
    try:
        json.loads(first)
        return False
    except json.JSONDecodeError:
        return True


def _columns_of(path: Path) -> list[str]:
    fmt = file_format(path)
    try:
        if fmt == "parquet":
            return pq.ParquetFile(path).schema_arrow.names
        if fmt == "csv":
            return pacsv.open_csv(path).schema.names
        for record in iter_json_records(path, Counter()):
            return list(record.keys())
        return []
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path.name}: cannot be read as {fmt} ({exc}); the file may be "
                          f"truncated or not {fmt}: re-download it or remove it") from exc


MODEL_MARKERS = frozenset({"modelVersions", "poi", "tags", "downloadCount", "trainedWords"})
IMAGE_MARKERS = frozenset({"positivePrompt", "prompt", "browsingLevel", "nsfwLevel", "statsSummary",
                           "negativePrompt", "usernameHash", "meta"})


def classify_file(path: Path) -> str:
    """'images' or 'models' for a Hub-format file: by folder/file name, else by its columns."""
    lowered = [part.lower() for part in path.parts[-3:]]
    if any("model" in part for part in lowered) and not any("image" in p for p in lowered[-1:]):
        return "models"
    if any("image" in part for part in lowered):
        return "images"
    cols = set(_columns_of(path))
    if cols & MODEL_MARKERS:
        return "models"
    if cols & IMAGE_MARKERS:
        return "images"
    raise SourceError(f"{path.name}: cannot tell whether it holds images or models (columns: "
                      f"{sorted(cols)[:12]}); put it in a folder named images/ or models/")


# --------------------------------------------------------------------------- images → raw (SQL)
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def image_select_sql(arrow_schema: pa.Schema, relation: str, salt: str) -> str:
    """SELECT mapping a source's image columns to the raw canonical images columns.

    Resolves aliases, nested reaction counts (struct or JSON text), Civiverse ``Resource1..3``,
    string NSFW levels in ``nsfw``, and hashes clear usernames with ``salt``.
    """
    names = arrow_schema.names
    exprs: dict[str, str] = {}
    for col in schema.IMAGES:
        alias = schema.find_alias(names, "images", col.name)
        if alias is not None:
            typ = _field_type(arrow_schema, alias)
            if col.name == "resources":
                exprs[col.name] = (f"CAST({_q(alias)} AS VARCHAR[])" if pa.types.is_list(typ)
                                   or pa.types.is_large_list(typ) else f"[CAST({_q(alias)} AS VARCHAR)]")
            else:
                exprs[col.name] = _as_text_sql(_q(alias), typ)
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
                    exprs[col] = f"CAST({_q(stats_col)}.{_q(key)} AS VARCHAR)"
            elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
                exprs[col] = (f"CASE WHEN json_valid({_q(stats_col)}) THEN "
                              f"json_extract_string({_q(stats_col)}, '$.{key}') END")
    # Civiverse lists up to three resources in separate columns.
    if "resources" not in exprs:
        res = [c for c in schema.RESOURCE_COLUMNS if c in names]
        if res:
            items = ", ".join(f"CAST({_q(c)} AS VARCHAR)" for c in res)
            exprs["resources"] = f"list_filter([{items}], lambda x: x IS NOT NULL AND x <> '')"
    # A clear username is hashed here and never written.
    if "user_hash" not in exprs:
        clear = next((c for c in schema.CLEAR_USERNAME_COLUMNS if c in names
                      and not pa.types.is_struct(_field_type(arrow_schema, c))), None)
        if clear is not None:
            salt_sql = salt.replace("'", "''")
            exprs["user_hash"] = (f"CASE WHEN {_q(clear)} IS NULL OR CAST({_q(clear)} AS VARCHAR) = '' "
                                  f"THEN NULL ELSE left(sha256('{salt_sql}' || CAST({_q(clear)} AS VARCHAR)), 16) END")
    select = []
    for col in schema.IMAGES:
        expr = exprs.get(col.name)
        if expr is None:
            expr = "CAST(NULL AS VARCHAR[])" if col.name in schema.LIST_COLUMNS else "CAST(NULL AS VARCHAR)"
        select.append(f"{expr} AS {_q(col.name)}")
    return f"SELECT {', '.join(select)} FROM {relation}"


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
    con = duckdb_connection(paths)
    reader_errors: list[Exception] = []
    try:
        con.register("source_images", _recording_errors(reader, reader_errors))
        sql = image_select_sql(reader.schema, "source_images", salt)
        return stream_query_to_parquet(con, sql, dest)
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


def _file_reader(path: Path, batch_size: int = IMAGE_BATCH,
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


def _require_gzip_magic(path: Path) -> None:
    """A ``.gz`` file must start with the gzip magic bytes; say so clearly if it does not."""
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as probe:
            if probe.read(2) != b"\x1f\x8b":
                raise SourceError(f"{path.name}: ends in .gz but is not gzip data; rename it "
                                  f"without .gz or re-compress it")


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


def _concat_readers(readers: list[pa.RecordBatchReader],
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

    return write_parquet_atomic(batches(), dest, raw_schema)


def iter_file_records(path: Path, repairs: Counter) -> Iterator[dict]:
    """Records (dicts) of any supported file, batch by batch for Parquet/CSV."""
    fmt = file_format(path)
    if fmt == "json":
        yield from iter_json_records(path, repairs)
        return
    reader = _file_reader(path, MODEL_BATCH, repairs)
    try:
        for batch in reader:
            yield from batch.to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path.name}: reading failed part-way ({exc}); the file is truncated "
                          f"or corrupt: re-download or remove it") from exc


# --------------------------------------------------------------------------- adapters
def _remove_stale(paths: RunPaths, keep: set[str]) -> None:
    """Delete raw tables a previous run left that this source does not provide."""
    for table in ("images", "models"):
        target = paths.table("raw", table)
        if table not in keep and target.exists():
            target.unlink()


def _drop_empty_tables(result: AcquireResult, paths: RunPaths, repairs: Counter) -> None:
    """A table whose files hold no rows is treated as absent from the snapshot (and counted)."""
    for table, rows in list(result.rows.items()):
        if rows == 0:
            del result.rows[table]
            paths.table("raw", table).unlink(missing_ok=True)
            repairs[f"{table}_files_without_rows"] += 1


#: Columns without which no row of a table can be kept; a source that fills none of them
#: lacks (or misnames) the column, which is an error rather than a table of quarantined rows.
REQUIRED_RAW: dict[str, tuple[str, ...]] = {
    "images": ("image_id", "created_at"),
    "models": ("model_id", "name", "type", "created_at"),
}


#: Where :func:`flatten_model` looks for model columns that have no alias entry.
MODEL_DERIVED_SOURCES: dict[str, tuple[str, ...]] = {
    "created_at": ("modelVersions[].createdAt", "createdAt", "publishedAt"),
}


def _require_columns(result: AcquireResult, paths: RunPaths, where: dict[str, str]) -> None:
    """Raise :class:`SourceError` if a required column is null in every raw row of a table.

    Reads only the Parquet footer's null counts (no data), so it costs nothing at scale.
    """
    for table, rows in result.rows.items():
        meta = pq.ParquetFile(paths.table("raw", table)).metadata
        nulls: Counter = Counter()
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for i in range(group.num_columns):
                col = group.column(i)
                stats = col.statistics
                nulls[col.path_in_schema] += (stats.null_count if stats is not None and
                                              stats.has_null_count else 0)
        empty = [c for c in REQUIRED_RAW[table] if rows and nulls[c] == rows]
        if empty:
            looked = {c: schema.ALIASES[table].get(c) or MODEL_DERIVED_SOURCES.get(c, (c,))
                      for c in empty}
            for written in result.rows:  # unusable: leave no raw table of this snapshot behind
                paths.table("raw", written).unlink(missing_ok=True)
            raise SourceError(f"{where.get(table, table)}: no {table} row has a value for the required column(s) "
                              f"{empty} (looked for {looked}); the column is missing or "
                              f"misnamed in the snapshot: rename it (see data/README.md) or use "
                              f"another --source")


def _shown(files: list[Path], most: int = 3) -> str:
    """File names for a message: the first few, then an ellipsis."""
    return ", ".join(f.name for f in files[:most]) + (" …" if len(files) > most else "")


def _require_rows(result: AcquireResult, where: str, files: list[Path]) -> None:
    """Refuse a snapshot with no rows at all: nothing could be studied, so say so now."""
    if not result.rows:
        raise SourceError(f"{where}: the snapshot is empty (no image or model rows in "
                          f"{_shown(files, 5)}); "
                          f"check that the export or download finished, or point --path at the "
                          f"folder that holds the data")


def acquire_local(path: Path, paths: RunPaths, salt: str = "", source: str = "local",
                  location: str | None = None) -> AcquireResult:
    """Read a folder or file of Hub-format Parquet/CSV/JSON Lines into the raw tables.

    Zero-byte files are skipped (counted as ``empty_files_skipped``); a table whose files hold
    no rows is absent; a snapshot with no rows at all is a :class:`SourceError`.
    """
    all_files = list_data_files(path)
    files = [f for f in all_files if f.stat().st_size > 0]
    groups: dict[str, list[Path]] = {"images": [], "models": []}
    for f in files:
        groups[classify_file(f)].append(f)
    result = AcquireResult(source=source, location=location or path.name)
    repairs: Counter = Counter()
    if len(files) < len(all_files):
        repairs["empty_files_skipped"] = len(all_files) - len(files)
    if groups["images"]:
        readers = [_file_reader(f, repairs=repairs) for f in groups["images"]]
        reader = readers[0] if len(readers) == 1 else _concat_readers(readers, groups["images"])
        result.rows["images"] = write_raw_images(reader, paths.table("raw", "images"), salt,
                                                 where=", ".join(f.name for f in groups["images"][:3]),
                                                 paths=paths)
    if groups["models"]:
        records = (rec for f in groups["models"] for rec in iter_file_records(f, repairs))
        result.rows["models"] = write_raw_models(records, paths.table("raw", "models"), salt, repairs)
    result.files = {t: [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in fs]
                    for t, fs in groups.items() if fs}
    _drop_empty_tables(result, paths, repairs)
    result.repairs = dict(repairs)
    _remove_stale(paths, set(result.rows))
    _require_rows(result, path.name, all_files)
    _require_columns(result, paths, {t: _shown(fs) for t, fs in groups.items()})
    return result


def acquire_api(path: Path, paths: RunPaths, salt: str = "") -> AcquireResult:
    """Read raw CivitAI REST API JSON / JSON Lines (models with nested images, or image items)."""
    files = [f for f in list_data_files(path) if file_format(f) == "json"]
    if not files:
        raise SourceError(f"{path}: no .json/.jsonl(.gz) files; the api source reads raw JSON as "
                          f"CivitAI's REST API returns it (use --source local for Parquet/CSV)")
    repairs: Counter = Counter()
    images_tmp = paths.source_cache / "api_images.jsonl"
    images_tmp.parent.mkdir(parents=True, exist_ok=True)
    n_models = 0

    def model_records() -> Iterator[dict]:
        nonlocal n_models
        with open(images_tmp.with_name(images_tmp.name + ".tmp"), "w", encoding="utf-8") as spill:
            for f in files:
                for record in iter_json_records(f, repairs):
                    if "modelVersions" in record or "poi" in record:
                        n_models += 1
                        for image in model_images(record):
                            if image.pop("_created_at_from_version", False):
                                repairs["image_created_at_from_version"] += 1
                            spill.write(json.dumps(image) + "\n")
                        yield record
                    else:
                        spill.write(json.dumps(record) + "\n")
        os.replace(images_tmp.with_name(images_tmp.name + ".tmp"), images_tmp)

    result = AcquireResult(source="api", location=path.name)
    try:
        written = write_raw_models(model_records(), paths.table("raw", "models"), salt, repairs)
    finally:  # a bad file stops the spill part-way: leave no temporary file behind
        images_tmp.with_name(images_tmp.name + ".tmp").unlink(missing_ok=True)
    if n_models:
        result.rows["models"] = written
    else:
        paths.table("raw", "models").unlink(missing_ok=True)
    # Images (nested in models or image items) were spilled to JSON Lines so that models
    # and images are read in one pass without holding either in memory.
    image_reader = _records_reader(iter_json_records(images_tmp, repairs),
                                   lambda r: flatten_api_image(r, salt))
    n_images = write_raw_images(image_reader, paths.table("raw", "images"), salt,
                                where=path.name, paths=paths)
    images_tmp.unlink(missing_ok=True)
    if n_images:
        result.rows["images"] = n_images
    else:
        paths.table("raw", "images").unlink(missing_ok=True)
    result.files = {"api": [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in files]}
    result.repairs = dict(repairs)
    _require_rows(result, path.name, files)
    _require_columns(result, paths, {t: _shown(files) for t in schema.CANONICAL})
    return result


def acquire_sample(paths: RunPaths, n_images: int, n_models: int, seed: int,
                   salt: str = "") -> AcquireResult:
    """Generate the embedded synthetic snapshot (Hub raw format) and read it as ``local``."""
    from . import synth  # local import: generating is only needed for this source

    params = synth.default_params(n_images=n_images, n_models=n_models, seed=seed)
    folder = paths.source_cache / "sample"
    synth.write_snapshot(folder, params)
    result = acquire_local(folder, paths, salt=salt, source="sample",
                           location=f"synthetic sample (seed {seed}, {n_images} images, "
                                    f"{n_models} models)")
    return result


HF_HELP = ("The Hub datasets are gated (CC BY-NC 4.0): accept the terms on the dataset page, then "
           "log in with `huggingface-cli login` or set HF_TOKEN. Without network access, download "
           "the Parquet files by hand and use `--source local --path DIR` instead.")


def resolve_hub_revision(repo_id: str, revision: str) -> str:
    """The commit sha a Hub revision (branch, tag or sha) resolves to; a local folder has none."""
    if Path(repo_id).exists():
        return f"local:{revision or 'none'}"
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(repo_id, revision=revision or None)
    return info.sha or revision


def hf_dataset_reader(repo_id: str, revision: str, split: str = "train",
                      batch_size: int = IMAGE_BATCH, streaming: bool = False) -> pa.RecordBatchReader:
    """Arrow batches of a Hub dataset through ``datasets.load_dataset``, never a pandas frame.

    ``repo_id`` may be a local folder in the Hub's layout (used by the offline tests).
    Non-streaming mode keeps the data memory-mapped in the ``datasets`` cache.
    """
    import datasets

    kwargs: dict[str, Any] = {"split": split, "streaming": streaming}
    if "trust_remote_code" in inspect.signature(datasets.load_dataset).parameters:
        # datasets < 4 can run a loading script shipped with a dataset: never allow it.
        # Later versions dropped scripts (and the argument) altogether.
        kwargs["trust_remote_code"] = False
    if not Path(repo_id).exists():
        kwargs["revision"] = revision or DEFAULT_REVISION
    ds = datasets.load_dataset(repo_id, **kwargs)
    arrow_ds = ds.with_format("arrow")
    first: list[pa.Table] = []
    iterator = iter(arrow_ds.iter(batch_size=batch_size))
    for table in iterator:
        first.append(table)
        break
    if not first:
        return pa.RecordBatchReader.from_batches(pa.schema([]), iter([]))
    table_schema = first[0].schema

    def batches() -> Iterator[pa.RecordBatch]:
        for table in first:
            yield from table.cast(table_schema).to_batches()
        for table in iterator:
            yield from table.cast(table_schema).to_batches()

    return pa.RecordBatchReader.from_batches(table_schema, batches())


def acquire_hf(paths: RunPaths, revision: str = "", images_repo: str = HUB_IMAGES,
               models_repo: str = HUB_MODELS, salt: str = "",
               tables: tuple[str, ...] = ("images", "models")) -> AcquireResult:
    """Load the study's Hub datasets (images and models) into the raw tables."""
    result = AcquireResult(source="hf", location=f"{images_repo} + {models_repo}")
    repairs: Counter = Counter()
    resolved: dict[str, str] = {}
    try:
        if "images" in tables and images_repo:
            resolved[images_repo] = resolve_hub_revision(images_repo, revision)
            reader = hf_dataset_reader(images_repo, revision)
            result.rows["images"] = write_raw_images(reader, paths.table("raw", "images"), salt,
                                                     where=images_repo, paths=paths)
        if "models" in tables and models_repo:
            resolved[models_repo] = resolve_hub_revision(models_repo, revision)
            reader = hf_dataset_reader(models_repo, revision, batch_size=MODEL_BATCH)
            records = (rec for batch in reader for rec in batch.to_pylist())
            result.rows["models"] = write_raw_models(records, paths.table("raw", "models"),
                                                     salt, repairs)
    except SourceError:
        raise
    except Exception as exc:  # datasets / hub raise many types; all mean "cannot load"
        name = type(exc).__name__
        raise SourceError(f"loading from the Hugging Face Hub failed ({name}: "
                          f"{str(exc).splitlines()[0][:300] if str(exc) else ''}). {HF_HELP}") from exc
    result.revision = json.dumps(resolved, sort_keys=True)
    result.repairs = dict(repairs)
    _remove_stale(paths, set(result.rows))
    return result


def acquire(source: str, paths: RunPaths, path: str = "", revision: str = "",
            sample_images: int = 30_000, sample_models: int = 3_000, seed: int = 20250507,
            salt: str = "") -> AcquireResult:
    """Run the adapter for ``source`` and write ``data/raw/{images,models}.parquet``."""
    paths.ensure()
    if source not in SOURCES:
        raise SourceError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if source == "sample":
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


# --------------------------------------------------------------------------- summaries
def raw_coverage(paths: RunPaths) -> "pd.DataFrame":
    """For each raw table present: how many rows have a value in each canonical column.

    Shows at a glance which canonical columns this source provides (e.g. the 2023 API has
    no reactions for nested images, the Hub images have no tags).
    """
    import pandas as pd

    frames = []
    con = duckdb_connection(paths)
    try:
        for table, cols in schema.CANONICAL.items():
            path = paths.table("raw", table)
            if not path.exists():
                continue
            counts = ", ".join(f'count("{c.name}") AS "{c.name}"' for c in cols)
            cur = con.execute(f"SELECT count(*) AS n, {counts} FROM read_parquet('{path.as_posix()}')")
            values = cur.fetchone()
            n = values[0]
            for (name, *_), v in zip(cur.description[1:], values[1:]):
                frames.append({"table": table, "column": name, "rows with a value": int(v),
                               "share": round(v / n, 4) if n else 0.0})
    finally:
        con.close()
    return pd.DataFrame(frames, columns=["table", "column", "rows with a value", "share"])


def acquire_summary(result: AcquireResult) -> "pd.DataFrame":
    """What the adapter wrote, one row per table (tables the snapshot lacks say so)."""
    import pandas as pd

    return pd.DataFrame([{"table": t, "raw rows": result.rows.get(t, 0),
                          "note": "" if t in result.rows else "not in this snapshot"}
                         for t in schema.CANONICAL])
