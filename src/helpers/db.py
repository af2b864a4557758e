"""Plumbing shared by every stage: DuckDB connections, SQL quoting and atomic file writes.

Nothing else in the package opens a DuckDB connection, quotes a value into SQL or moves a
temporary file into place: they call these functions. That keeps three promises in one place:

* a connection has bounded memory, two threads, UTC time and spills under the run's folder;
* any text reaching SQL (paths included: a run folder may be called ``O'Brien's run``) is quoted;
* a file is either absent or complete: it is written under a temporary name unique to the
  process and renamed into place, so two processes never share a temporary file.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

#: Rows per Arrow batch when a query result streams into a Parquet file.
WRITE_BATCH_ROWS = 100_000
#: Suffix of every temporary file (the runner removes leftovers of an interrupted run by it).
TEMP_SUFFIX = ".tmp"


# --------------------------------------------------------------------------- quoting
def sql_literal(text: str | os.PathLike[str]) -> str:
    """``text`` as a SQL string literal (single quotes doubled); paths in POSIX form."""
    value = Path(text).as_posix() if isinstance(text, os.PathLike) else str(text)
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (double quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def read_parquet_sql(files: Path | str | Sequence[Path | str], **options: Any) -> str:
    """SQL table expression reading one Parquet file or a list of them, every path quoted.

    ``options`` become named arguments, e.g. ``union_by_name=True``.
    """
    if isinstance(files, (str, os.PathLike)):
        target = sql_literal(Path(files))
    else:
        target = "[" + ", ".join(sql_literal(Path(f)) for f in files) + "]"
    extra = "".join(f", {k}={_option(v)}" for k, v in options.items())
    return f"read_parquet({target}{extra})"


def _option(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return sql_literal(str(value))


# --------------------------------------------------------------------------- connections
def connect(temp_dir: Path | None = None, memory_limit: str = "3GB",
            threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with bounded memory, UTC time and spill space in ``temp_dir``."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    try:
        con.execute("SET enable_progress_bar=false")
    except duckdb.Error:
        pass  # inside Jupyter DuckDB refuses the setting (wants ipywidgets) and shows no bar anyway
    con.execute(f"SET memory_limit={sql_literal(memory_limit)}")
    con.execute(f"SET threads={int(threads)}")
    con.execute("SET preserve_insertion_order=true")
    # Hand memory a finished query freed back to the system at once, so the analyses' Python
    # tables do not stack on top of DuckDB's high-water mark.
    con.execute("SET allocator_background_threads=true")
    if temp_dir is not None:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory={sql_literal(Path(temp_dir))}")
    return con


def connection_or_default(con: duckdb.DuckDBPyConnection | None) -> duckdb.DuckDBPyConnection:
    """The given connection, or a fresh in-memory one for a one-off call."""
    return con if con is not None else connect(None)


# --------------------------------------------------------------------------- atomic writes
def temp_name(dest: Path) -> Path:
    """A temporary path beside ``dest``, unique to this process and call."""
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path; on success move it to ``dest``, on failure remove it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(text: str, dest: Path) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``dest`` atomically; return ``dest``."""
    with atomic_path(dest) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    return dest


def write_json_atomic(data: Any, dest: Path) -> Path:
    """Write JSON (sorted keys, indented, trailing newline) to ``dest`` atomically."""
    return write_text_atomic(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", dest)


def write_parquet_atomic(data: pa.Table | Iterable[pa.RecordBatch], dest: Path,
                         schema: pa.Schema | None = None, store_schema: bool = True,
                         row_group_size: int | None = None, **writer_options: Any) -> int:
    """Write a table or a stream of batches to ``dest`` (zstd Parquet) atomically; return rows.

    ``schema`` is required for a stream of batches; ``writer_options`` go to
    :class:`pyarrow.parquet.ParquetWriter` (e.g. ``use_dictionary``).
    """
    if schema is None:
        if not isinstance(data, pa.Table):
            raise TypeError("write_parquet_atomic needs a schema for a stream of batches")
        schema = data.schema
    rows = 0
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd", store_schema=store_schema,
                              **writer_options) as writer:
            if isinstance(data, pa.Table):
                writer.write_table(data, row_group_size=row_group_size)
                rows = data.num_rows
            else:
                for batch in data:
                    if batch.num_rows:
                        writer.write_batch(batch)
                        rows += batch.num_rows
    return rows


def stream_query_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, dest: Path,
                            batch_rows: int = WRITE_BATCH_ROWS,
                            transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> int:
    """Write the result of ``sql`` to ``dest`` (zstd Parquet), atomically; return its rows.

    The result streams out of DuckDB in Arrow batches into one pyarrow writer, so memory holds
    a few batches whatever the table's size (DuckDB's own parallel ``COPY … TO``, not used
    here, keeps more row groups in flight as a table grows). The Arrow schema is not stored in the file, so it reads
    back exactly as a file DuckDB wrote (``list<element>``, timestamps in UTC). ``transform``,
    if given, is applied to every batch before it is written (in order; it may drop rows or
    columns).
    """
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    if transform is None:
        return write_parquet_atomic(reader, dest, reader.schema, store_schema=False)
    out_schema = transform(pa.RecordBatch.from_pylist([], schema=reader.schema)).schema
    return write_parquet_atomic((transform(batch) for batch in reader), dest, out_schema,
                                store_schema=False)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- study tables
#: A table that is not written as one Parquet file is described by a small JSON file beside
#: where the file would be (``images.parquet`` → ``images.view.json``).
VIEW_SUFFIX = ".view.json"


class TableMissing(FileNotFoundError):
    """A study table has neither its Parquet file nor a stored view."""


class TableChanged(RuntimeError):
    """A file a stored view reads in place is not the file it was made from."""


def view_path(table: Path) -> Path:
    """Where the stored view of the table ``table`` (a ``….parquet`` path) lives."""
    table = Path(table)
    return table.with_name(table.name.removesuffix(".parquet") + VIEW_SUFFIX)


def stored_path(table: Path) -> Path:
    """The file that stores a study table: its Parquet file, else its view (which may not exist)."""
    return Path(table) if Path(table).exists() else view_path(table)


def table_exists(table: Path) -> bool:
    """True when the study table is there, as a Parquet file or as a stored view."""
    return Path(table).exists() or view_path(table).exists()


def remove_table(table: Path) -> None:
    """Remove a study table in either form (a stale one would mislead later stages)."""
    Path(table).unlink(missing_ok=True)
    view_path(table).unlink(missing_ok=True)


def write_view(table: Path, view: dict[str, Any]) -> Path:
    """Store ``view`` as the table ``table`` (replacing its Parquet file, if any).

    Two kinds exist (see :func:`table_sql`): ``positional`` (Parquet files of equal length read
    side by side, e.g. the cleaned images and their labels) and ``select`` (a ``SELECT`` over
    Parquet files read in place, e.g. a snapshot's images mapped to the raw columns).
    """
    if view.get("kind") not in ("positional", "select"):
        raise ValueError(f"unknown view kind {view.get('kind')!r}")
    dest = write_json_atomic(view, view_path(table))
    Path(table).unlink(missing_ok=True)
    return dest


def read_view(table: Path) -> dict[str, Any]:
    """The stored view of ``table`` (raises :class:`TableMissing` when there is none)."""
    path = view_path(table)
    if not path.exists():
        raise TableMissing(f"{Path(table).name} is missing (no file and no {path.name}); run the "
                           f"earlier notebooks first (python -m helpers run)")
    return json.loads(path.read_text(encoding="utf-8"))


def view_file(table: Path, name: str) -> Path:
    """A file named in a view: relative names are relative to the view's folder."""
    path = Path(name)
    return path if path.is_absolute() else Path(table).parent / path


def _select_view_sql(table: Path, view: dict[str, Any], row_numbers: bool) -> str:
    """``select`` view: ``view['select']`` over its files, read one after another; ``_row``
    numbers the rows across the files in order (each file's row number plus the rows before it)."""
    parts, offset = [], 0
    for f in view["files"]:
        source = read_parquet_sql(view_file(table, f["path"]), file_row_number=True)
        parts.append(f"SELECT *, file_row_number + {offset} AS _row FROM {source}")
        offset += int(f["rows"])
    source = parts[0] if len(parts) == 1 else " UNION ALL ".join(f"({p})" for p in parts)
    select = view["select"].replace("{source}", f"({source})")
    return f"({select})" if row_numbers else f"(SELECT * EXCLUDE (_row) FROM ({select}))"


def _positional_view_sql(table: Path, view: dict[str, Any], row_numbers: bool) -> str:
    """``positional`` view: its Parquet parts side by side, row i with row i."""
    items, scans = [], []
    for i, part in enumerate(view["parts"]):
        options = {"file_row_number": True} if row_numbers and i == 0 else {}
        scans.append(f"{read_parquet_sql(view_file(table, part['path']), **options)} p{i}")
        exclude = [*part.get("exclude", []), *(["file_row_number"] if options else [])]
        items.append(f"p{i}.*" + (f" EXCLUDE ({', '.join(sql_identifier(c) for c in exclude)})"
                                   if exclude else ""))
    if row_numbers:
        items.append("p0.file_row_number AS _row")
    return f"(SELECT {', '.join(items)} FROM {' POSITIONAL JOIN '.join(scans)})"


def in_place_file(path: Path, table: Path, root: Path) -> dict[str, Any]:
    """How a ``select`` view names a file it reads in place: its path (relative to the view's
    folder when it is inside the run folder ``root``, so the run can move), rows and SHA-256."""
    path = Path(path).resolve()
    try:
        path.relative_to(Path(root).resolve())
        shown = os.path.relpath(path, Path(table).parent.resolve())
    except ValueError:
        shown = str(path)
    return {"path": Path(shown).as_posix(), "rows": pq.ParquetFile(path).metadata.num_rows,
            "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def verify_view(table: Path) -> None:
    """Check that every file a ``select`` view reads in place is still the file it was made from
    (size and SHA-256); raise :class:`TableChanged` saying which one and what to do."""
    view = read_view(table)
    for f in view.get("files", []):
        path = view_file(table, f["path"])
        if not path.exists():
            raise TableChanged(f"{view_path(table).name} reads {path} in place, which is gone; restore "
                               f"the snapshot or acquire again (re-run notebook 00)")
        if path.stat().st_size != f["bytes"] or sha256_file(path) != f["sha256"]:
            raise TableChanged(f"{view_path(table).name} reads {path} in place, which changed since "
                               f"it was acquired (SHA-256 differs); acquire again (re-run notebook 00) "
                               f"or restore the file")


def table_sql(table: Path, row_numbers: bool = False) -> str:
    """SQL relation reading one study table: its Parquet file, or the view stored in its place.

    Every stage reads the tables of earlier stages through this function, so a table may be a
    file or a view without its readers knowing. ``row_numbers`` adds ``_row``, each row's
    position in the table (its stable identity in cleaning).
    """
    table = Path(table)
    if table.exists():
        if row_numbers:
            return f"(SELECT *, file_row_number AS _row FROM {read_parquet_sql(table, file_row_number=True)})"
        return read_parquet_sql(table)
    view = read_view(table)
    build = _positional_view_sql if view["kind"] == "positional" else _select_view_sql
    return build(table, view, row_numbers)


def table_arrow_schema(table: Path, con: duckdb.DuckDBPyConnection | None = None) -> pa.Schema:
    """The Arrow schema of a study table (no rows read)."""
    table = Path(table)
    if table.exists():
        return pq.read_schema(table)
    own = con is None
    con = con or connect(None)
    try:
        return con.sql(f"SELECT * FROM {table_sql(table)} LIMIT 0").to_arrow_table().schema
    finally:
        if own:
            con.close()


def table_rows(table: Path) -> int:
    """Rows of a study table, from Parquet metadata (no rows read)."""
    table = Path(table)
    if table.exists():
        return pq.ParquetFile(table).metadata.num_rows
    view = read_view(table)
    if view["kind"] == "positional":
        return pq.ParquetFile(view_file(table, view["parts"][0]["path"])).metadata.num_rows
    return sum(int(f["rows"]) for f in view["files"])


def read_table(table: Path, columns: Sequence[str] | None = None,
               con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """A whole study table (or some of its columns) as Arrow, for small tables and tests."""
    table = Path(table)
    if table.exists():
        return pq.read_table(table, columns=list(columns) if columns is not None else None)
    own = con is None
    con = con or connect(None)
    try:
        cols = "*" if columns is None else ", ".join(sql_identifier(c) for c in columns)
        return con.sql(f"SELECT {cols} FROM {table_sql(table)}").to_arrow_table()
    finally:
        if own:
            con.close()


def register_views(con: duckdb.DuckDBPyConnection, tables: dict[str, Path]) -> list[str]:
    """Create one DuckDB view per study table that exists (``name`` → its path); return the
    names created, so a notebook can inspect each stage's table with plain SQL."""
    made = []
    for name, path in tables.items():
        if table_exists(path):
            con.execute(f"CREATE OR REPLACE VIEW {sql_identifier(name)} AS SELECT * FROM {table_sql(path)}")
            made.append(name)
    return made


def describe_storage(table: Path) -> str:
    """How a study table is stored, in words: a Parquet file, a view of snapshot files read in
    place, or a view of Parquet files read side by side."""
    table = Path(table)
    if table.exists():
        return "Parquet file"
    view = read_view(table)
    if view["kind"] == "select":
        n = len(view["files"])
        return f"view of {n} snapshot file{'s' if n != 1 else ''} read in place (SHA-256 recorded)"
    names = " + ".join(Path(p["path"]).name for p in view["parts"])
    return f"view: {names} side by side"


def storage_rows(tables: dict[str, Path], root: Path) -> list[dict[str, Any]]:
    """One row per study table that exists: its view name, where it lives (relative to the run
    folder ``root``), how it is stored, its rows and the bytes the run wrote for it (a view's
    own small file; the files it reads are counted where they were written)."""
    rows = []
    for name, path in tables.items():
        if not table_exists(path):
            continue
        stored = stored_path(path)
        try:
            shown = stored.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            shown = stored.name
        rows.append({"view": name, "file": shown, "stored as": describe_storage(path),
                     "rows": table_rows(path), "bytes written": stored.stat().st_size})
    return rows


# --------------------------------------------------------------------------- split streams
def stream_query_split_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, dests: Sequence[Path],
                                  split: Callable[[pa.RecordBatch], Sequence[pa.RecordBatch]],
                                  batch_rows: int = WRITE_BATCH_ROWS, prefetch: int = 2) -> list[int]:
    """Stream the result of ``sql`` once into several Parquet files (zstd), atomically.

    ``split`` turns each batch into one batch per file of ``dests`` (in order; it may drop rows
    and columns), so one pass over the rows feeds, say, the kept rows and the set-aside rows.
    Written as :func:`stream_query_to_parquet` writes (Arrow schema not stored); every file is
    complete or absent. ``prefetch`` batches are computed ahead by a thread while one is
    written (see :func:`prefetched`). Returns the rows written to each file.
    """
    from contextlib import ExitStack  # imported here to keep this section self-contained

    reader = con.sql(sql).to_arrow_reader(batch_rows)
    rows = [0] * len(dests)
    with ExitStack() as stack:
        stack.callback(reader.close)  # whatever fails, the connection takes new work after
        schemas = [b.schema for b in split(pa.RecordBatch.from_pylist([], schema=reader.schema))]
        tmps = [stack.enter_context(atomic_path(Path(d))) for d in dests]
        writers = [stack.enter_context(pq.ParquetWriter(t, s, compression="zstd", store_schema=False))
                   for t, s in zip(tmps, schemas)]
        batches = stack.enter_context(prefetched(reader, prefetch))
        for batch in batches:
            for i, part in enumerate(split(batch)):
                if part.num_rows:
                    writers[i].write_batch(part)
                    rows[i] += part.num_rows
    return rows


@contextmanager
def prefetched(reader: pa.RecordBatchReader, depth: int) -> Iterator[Iterator[pa.RecordBatch]]:
    """Batches of ``reader`` read ahead by a thread, at most ``depth`` waiting (0: no thread).

    The query computes the next batches while the caller compresses and writes the last one
    (both release the GIL), so the two overlap; memory holds ``depth`` more batches. On leaving,
    the thread is stopped and joined, and the reader closed.
    """
    import queue
    import threading

    if depth <= 0:
        try:
            yield iter(reader)
        finally:
            reader.close()
        return
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def offer(item: object) -> bool:
        """Queue ``item`` unless the consumer has left; False once it has."""
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in reader:
                if not offer(batch):
                    return
            item: object = end
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        offer(item)

    def consume() -> Iterator[pa.RecordBatch]:
        while True:
            item = waiting.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
        reader.close()
