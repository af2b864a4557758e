"""The ``hf`` source: ``datasets.load_dataset`` of the study's Hub repositories, revision pinned."""
from __future__ import annotations

import inspect
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from ..paths import RunPaths
from .common import (DEFAULT_REVISION, HUB_IMAGES, HUB_MODELS, IMAGE_BATCH, MODEL_BATCH, AcquireResult,
                     SourceError)
from .raw import write_raw_images, write_raw_models


HF_HELP = ("The Hub datasets are gated (CC BY-NC 4.0): accept the terms on the dataset page, then "
           "log in with `hf auth login` or set HF_TOKEN. Without network access, download "
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
        detail = f"({name}: {str(exc).splitlines()[0][:300] if str(exc) else ''})"
        local = [r for r in (images_repo, models_repo) if r and Path(r).exists()]
        if local:  # a Hub-layout folder on disk: no login can help, the files are the problem
            raise SourceError(f"reading the Hub-layout folder {Path(local[0]).parent} with `datasets` "
                              f"failed {detail}; check that its Parquet files are complete and "
                              f"not empty, or read them with `--source local --path DIR`") from exc
        raise SourceError(f"loading from the Hugging Face Hub failed {detail}. {HF_HELP}") from exc
    result.revision = json.dumps(resolved, sort_keys=True)
    result.repairs = dict(repairs)
    return result


