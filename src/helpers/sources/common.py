"""What every source adapter shares: constants, errors, the result record, text and file helpers."""
from __future__ import annotations

import gzip
import hashlib
import html
import json
import os
import re
import zlib
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import schema

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
#: Rows per Arrow batch read from an image file. Smaller batches keep fewer rows in flight and
#: so lower acquisition's peak memory, at no measurable cost in time (benchmarks/README.md).
IMAGE_BATCH = 25_000


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
    #: Names of the input files the adapter looked at (for messages; not part of the report).
    inputs: list[str] = field(default_factory=list, compare=False)

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


@lru_cache(maxsize=4096)
def _alias_of(keys: tuple[str, ...], table: str, canonical: str) -> str | None:
    """:func:`schema.find_alias` for one set of record keys (records of a file share their keys,
    so the alias table is consulted once per key set, not once per record)."""
    return schema.find_alias(keys, table, canonical)


def _get(record: dict, table: str, canonical: str) -> Any:
    """Value of ``canonical`` in a source record, looked up through the alias table."""
    alias = _alias_of(tuple(record), table, canonical)
    return record.get(alias) if alias is not None else None


# --------------------------------------------------------------------------- files
def _require_gzip_magic(path: Path) -> None:
    """A ``.gz`` file must start with the gzip magic bytes; say so clearly if it does not."""
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as probe:
            if probe.read(2) != b"\x1f\x8b":
                raise SourceError(f"{path.name}: ends in .gz but is not gzip data; rename it "
                                  f"without .gz or re-compress it")



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
    """'images' or 'models' for a Hub-format file: by folder/file name, else by its columns.

    A file directly in a folder named ``images/`` or ``models/`` belongs there whatever the
    snapshot's own folder is called (e.g. ``no_real_person_models/images/``).
    """
    parent = path.parent.name.lower()
    if parent in ("images", "models") and not any(w in path.name.lower() for w in ("image", "model")):
        return parent
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


