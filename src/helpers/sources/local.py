"""The ``local`` source: a folder or file of Hub-format Parquet/CSV/JSON Lines."""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import db
from ..paths import RunPaths
from .common import AcquireResult, classify_file, list_data_files
from .raw import (concat_readers, file_reader, in_place_images_view, iter_file_records, write_raw_images,
                  write_raw_models)


def acquire_local(path: Path, paths: RunPaths, salt: str = "", source: str = "local",
                  location: str | None = None, in_place: bool = True) -> AcquireResult:
    """Read a folder or file of Hub-format Parquet/CSV/JSON Lines into the raw tables.

    Parquet image files that need no conversion are read in place: the raw images table is a
    stored view of them (each file's SHA-256 recorded, checked again by cleaning) and no row is
    copied; ``in_place=False`` copies them anyway. Other files are converted and written.

    Zero-byte files are skipped (counted as ``empty_files_skipped``); each file is classified as
    images or models by its folder or columns.
    """
    all_files = list_data_files(path)
    files = [f for f in all_files if f.stat().st_size > 0]
    groups: dict[str, list[Path]] = {"images": [], "models": []}
    for f in files:
        groups[classify_file(f)].append(f)
    result = AcquireResult(source=source, location=location or path.name,
                           inputs=[f.name for f in all_files])
    repairs: Counter = Counter()
    if len(files) < len(all_files):
        repairs["empty_files_skipped"] = len(all_files) - len(files)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The images (mostly DuckDB work, outside the GIL) and the models (Python, record by
        # record) are read at the same time.
        images = (pool.submit(_acquire_images, groups["images"], paths, salt, in_place)
                  if groups["images"] else None)
        try:
            if groups["models"]:
                records = (rec for f in groups["models"] for rec in iter_file_records(f, repairs))
                result.rows["models"] = write_raw_models(records, paths.table("raw", "models"), salt,
                                                         repairs)
        finally:
            failed_images = images is not None and images.exception() is not None
        if failed_images:  # as if the images had been read first: no raw table of this snapshot
            db.remove_table(paths.table("raw", "models"))
        if images is not None:
            result.rows["images"], image_repairs = images.result()
            repairs.update(image_repairs)
    result.files = {t: [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in fs]
                    for t, fs in groups.items() if fs}
    result.repairs = {k: v for k, v in repairs.items() if v}
    return result


def _acquire_images(files: list[Path], paths: RunPaths, salt: str, in_place: bool) -> tuple[int, Counter]:
    """The raw images table of ``files``: a view of them read in place when they need no
    conversion, else the converted rows written. Returns the rows and the repairs made."""
    repairs: Counter = Counter()
    where = ", ".join(f.name for f in files[:3])
    view = in_place_images_view(files, paths, where) if in_place else None
    if view is not None:
        db.write_view(paths.table("raw", "images"), view)
        return sum(f["rows"] for f in view["files"]), repairs
    readers = [file_reader(f, repairs=repairs) for f in files]
    reader = readers[0] if len(readers) == 1 else concat_readers(readers, files)
    return write_raw_images(reader, paths.table("raw", "images"), salt, where=where, paths=paths), repairs


