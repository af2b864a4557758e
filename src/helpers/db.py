"""Plumbing shared by every stage: DuckDB connections, SQL quoting and atomic file writes.

Nothing else in the package opens a DuckDB connection, quotes a value into SQL or moves a
temporary file into place: they call these functions. That keeps three promises in one place:

* a connection has bounded memory, two threads, UTC time and spills under the run's folder;
* any text reaching SQL (paths included: a run folder may be called ``O'Brien's run``) is quoted;
* a file is either absent or complete: it is written under a temporary name unique to the
  process and renamed into place, so two processes never share a temporary file.
"""
from __future__ import annotations

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
