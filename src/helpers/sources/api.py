"""The ``api`` source: raw JSON / JSON Lines as CivitAI's REST API returns them."""
from __future__ import annotations

import json
from contextlib import closing
from collections import Counter
from pathlib import Path
from typing import Iterator

from .. import db
from ..paths import RunPaths
from .common import AcquireResult, SourceError, file_format, iter_json_records, list_data_files
from .raw import _records_reader, flatten_api_image, model_images, write_raw_images, write_raw_models


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
        with db.atomic_path(images_tmp) as spill_path, open(spill_path, "w", encoding="utf-8") as spill:
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

    result = AcquireResult(source="api", location=path.name, inputs=[f.name for f in files])
    # Closing the generator ends the spill: a bad file that stops it part-way leaves no
    # temporary file behind.
    with closing(model_records()) as records:
        written = write_raw_models(records, paths.table("raw", "models"), salt, repairs)
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
    return result


