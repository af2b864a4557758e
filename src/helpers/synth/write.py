"""Writing the snapshot, and the planted truth the pipeline must recover."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import db
from .images import ImageContext, image_chunk
from .messy import messy_image_rows, messy_model_rows, messy_truth
from .models import build_models
from .params import SynthParams
from .people import build_population
from .plan import make_plan
from .vocabulary import build_prompt_pools


# --------------------------------------------------------------------------- writing
def write_part(table: pa.Table, dest: Path) -> None:
    """Write one part file atomically, dictionary-encoding only the columns whose values repeat
    (pooled prompts, users): unique columns such as url and createdAt would only pay for a
    dictionary that is thrown away."""
    db.write_parquet_atomic(table, dest, row_group_size=250_000,
                            use_dictionary=[c for c in DICTIONARY_COLUMNS if c in table.column_names])


#: Columns whose values repeat a lot and so gain from Parquet dictionary encoding.
DICTIONARY_COLUMNS: tuple[str, ...] = ("positivePrompt", "negativePrompt", "usernameHash", "baseModel",
                                       "statsSummary", "type", "tags", "name")


def _remove_stale_parts(folder: Path, keep: set[str]) -> None:
    """Delete part files of an earlier, larger snapshot in the same folder."""
    if folder.exists():
        for old in folder.glob("part-*.parquet*"):
            if old.name not in keep:
                old.unlink()


def part_name(index: int) -> str:
    """File name of chunk ``index``."""
    return f"part-{index:05d}.parquet"


def write_snapshot(out_dir: Path, params: SynthParams) -> dict[str, Any]:
    """Write the synthetic snapshot under ``out_dir``; return rows and files per table.

    Models are written first (images reference them), then images chunk by chunk; the messy
    rows follow the good rows of the models file and of the last images chunk.
    """
    out_dir = Path(out_dir)
    plan = make_plan(params)
    people = build_population(params, plan)
    catalog = build_models(params, plan, people.hashes)
    model_file = out_dir / "models" / part_name(0)
    models = catalog.table
    if params.messy_model_rows:
        models = pa.concat_tables([models, messy_model_rows(params, models)])
    write_part(models, model_file)
    _remove_stale_parts(model_file.parent, {model_file.name})

    ctx = ImageContext(params, plan, build_prompt_pools(params, plan.base_names), people, catalog,
                       np.concatenate([[0], np.cumsum(plan.image_counts)]))
    image_files: list[str] = []
    # One writer thread overlaps compressing chunk k with generating chunk k + 1 (Arrow
    # releases the GIL while writing); at most two chunks are alive, so memory stays bounded.
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future | None = None
        for chunk_index, first in enumerate(range(0, params.n_images, params.chunk_rows)):
            n_rows = min(params.chunk_rows, params.n_images - first)
            table = image_chunk(ctx, chunk_index, first, n_rows)
            if first + n_rows == params.n_images and params.messy_rows:  # the last chunk
                table = pa.concat_tables([table, messy_image_rows(params, table, first)])
            if pending is not None:
                pending.result()
            dest = out_dir / "images" / part_name(chunk_index)
            pending = writer.submit(write_part, table, dest)
            del table
            image_files.append(dest.name)
        if pending is not None:
            pending.result()
    _remove_stale_parts(out_dir / "images", set(image_files))
    return {
        "rows": {"images": params.n_images + params.messy_rows, "models": models.num_rows},
        "messy_rows": {"images": params.messy_rows, "models": params.messy_model_rows},
        "files": {"images": [f"images/{f}" for f in image_files], "models": [f"models/{model_file.name}"]},
        "seed": params.seed,
    }
