"""Writing the snapshot, and the planted truth the pipeline must recover."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .. import db
from .images import ImageContext, image_chunk
from .messy import messy_image_rows, messy_model_rows, messy_truth
from .models import build_models
from .params import CIVIVERSE_NSFW_SHARE, NSFW_LEVELS, SFW_LEVELS, SynthParams
from .plan import make_plan, n_forced_models
from .text import user_hash_pool, zipf_cdf
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
    users = user_hash_pool(params.seed, max(1, params.n_images // params.images_per_user))
    catalog = build_models(params, plan, users)
    model_file = out_dir / "models" / part_name(0)
    models = catalog.table
    if params.messy_model_rows:
        models = pa.concat_tables([models, messy_model_rows(params, models)])
    write_part(models, model_file)
    _remove_stale_parts(model_file.parent, {model_file.name})

    ctx = ImageContext(params, plan, build_prompt_pools(params, plan.base_names), users,
                       zipf_cdf(len(users), params.user_zipf_exponent), catalog,
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


# --------------------------------------------------------------------------- planted truth
def _by_month(months: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """``{month: value}`` with plain floats (JSON-ready)."""
    return {m: float(v) for m, v in zip(months, values)}


def _mix_by_month(months: Sequence[str], names: Sequence[str], mix: np.ndarray) -> dict[str, dict[str, float]]:
    """``{month: {category: share}}`` with plain floats (JSON-ready)."""
    return {m: {k: float(v) for k, v in zip(names, row)} for m, row in zip(months, mix)}


def expected_truth(params: SynthParams) -> dict[str, Any]:
    """The planted values the generated snapshot reproduces (up to sampling error).

    Image shares are over all images of a month unless named otherwise; ``lora_share`` is over
    images with a prompt. Model shares are over all models (real-person ones are never
    checkpoints). Engagement ratios are ratios of medians before rounding to integers.
    ``n_images`` / ``images_per_month`` / ``n_models`` count the good rows; the ``messy_*``,
    ``raw_*`` and ``clean_*`` entries (:func:`messy_truth`) say what cleaning must report.
    """
    plan = make_plan(params)
    months = plan.months
    level_names = list(SFW_LEVELS) + list(NSFW_LEVELS)
    level_mix = np.hstack([(1 - plan.nsfw_share)[:, None] * plan.sfw_level_mix,
                           plan.nsfw_share[:, None] * plan.nsfw_level_mix])
    pg13 = level_mix[:, level_names.index("PG13")]
    x_or_more = level_mix[:, [level_names.index(x) for x in ("X", "XXX", "Blocked")]].sum(axis=1)
    weights = plan.image_counts / plan.image_counts.sum()
    male = 1 - params.real_person_female_share - params.real_person_mixed_share
    return {
        "months": months,
        "images_per_month": {m: int(c) for m, c in zip(months, plan.image_counts)},
        "n_images": params.n_images,
        "n_models": params.n_models,
        "nsfw_share_by_month": _by_month(months, plan.nsfw_share),
        "nsfw_share_overall": float(np.dot(weights, plan.nsfw_share)),
        "x_share_by_month": _by_month(months, x_or_more),
        "platform_flag_share_by_month": _by_month(months, plan.nsfw_share + params.pg13_flagged_share * pg13),
        "pg13_flagged_share": params.pg13_flagged_share,
        "level_mix_by_month": _mix_by_month(months, level_names, level_mix),
        "nsfw_level_mix_by_month": _mix_by_month(months, NSFW_LEVELS, plan.nsfw_level_mix),
        "sfw_level_mix_by_month": _mix_by_month(months, SFW_LEVELS, plan.sfw_level_mix),
        "civiverse_nsfw_share": {m: params.nsfw_share_by_month[m] for m in CIVIVERSE_NSFW_SHARE
                                 if m in params.nsfw_share_by_month},
        "missing_prompt_share": params.missing_prompt_share,
        "lora_share_by_month": _by_month(months, plan.lora_share),
        "lora_nsfw_odds_ratio": params.lora_nsfw_odds_ratio,
        "adapter_call_unresolvable_share": params.unresolvable_call_share,
        "nsfw_share_by_month_lora": _by_month(months, plan.nsfw_share_lora),
        "nsfw_share_by_month_no_lora": _by_month(months, plan.nsfw_share_no_lora),
        "mean_lora_calls_given_lora": 1.0 + float(sum(params.lora_extra_call_probs)),
        "base_model_mix_by_month": _mix_by_month(months, plan.base_names, plan.base_mix),
        "base_model_mix_nsfw_by_month": _mix_by_month(months, plan.base_names, plan.base_mix_nsfw),
        "model_type_mix_by_month": _mix_by_month(months, plan.type_names, plan.type_mix),
        "real_person_share": params.real_person_share * (1 - n_forced_models(params) / params.n_models),
        "real_person_female_share": params.real_person_female_share,
        "real_person_male_share": male,
        "real_person_mixed_share": params.real_person_mixed_share,
        "model_nsfw_share_by_month": _by_month(months, plan.model_nsfw_share),
        "real_person_nsfw_odds_ratio": params.real_person_nsfw_odds_ratio,
        "nsfw_like_ratio": params.nsfw_like_ratio,
        "real_person_download_ratio": params.real_person_download_ratio,
        "n_users_pool": max(1, params.n_images // params.images_per_user),
        "user_zipf_exponent": params.user_zipf_exponent,
        **messy_truth(params, plan),
    }
