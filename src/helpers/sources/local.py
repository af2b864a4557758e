"""The ``local`` source: a folder or file of Hub-format Parquet/CSV/JSON Lines."""
from __future__ import annotations

from collections import Counter
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
    if groups["images"]:
        where = ", ".join(f.name for f in groups["images"][:3])
        view = in_place_images_view(groups["images"], paths, where) if in_place else None
        if view is not None:
            db.write_view(paths.table("raw", "images"), view)
            result.rows["images"] = sum(f["rows"] for f in view["files"])
        else:
            readers = [file_reader(f, repairs=repairs) for f in groups["images"]]
            reader = readers[0] if len(readers) == 1 else concat_readers(readers, groups["images"])
            db.view_path(paths.table("raw", "images")).unlink(missing_ok=True)
            result.rows["images"] = write_raw_images(reader, paths.table("raw", "images"), salt,
                                                     where=where, paths=paths)
    if groups["models"]:
        records = (rec for f in groups["models"] for rec in iter_file_records(f, repairs))
        result.rows["models"] = write_raw_models(records, paths.table("raw", "models"), salt, repairs)
    result.files = {t: [f.relative_to(path).as_posix() if path.is_dir() else f.name for f in fs]
                    for t, fs in groups.items() if fs}
    result.repairs = dict(repairs)
    return result


