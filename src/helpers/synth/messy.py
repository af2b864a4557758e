"""Planted bad rows, named exactly as the cleaning report names them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from .params import STREAM_MESSY, IMAGES_SCHEMA, IMAGE_ID_BASE, IMAGE_ID_STRIDE, MODELS_SCHEMA, MODEL_STATS_TYPE, SynthParams
from .plan import SnapshotPlan, seeded_rng
from .text import fake_image_urls


# --------------------------------------------------------------------------- messy rows
#: Kinds of bad image rows, in the order they are dealt out (messy row ``k`` has kind
#: ``k mod 13``), each as (the name :mod:`helpers.clean` reports, True if the row is
#: quarantined / False if it is kept with a repair). Date, level, count and prompt problems come
#: first, so that even a handful of messy rows shows each main kind. Each row has one defect.
MESSY_IMAGE_KINDS: tuple[tuple[str, bool], ...] = (
    ("unparseable_created_at", True),
    ("created_at_after_window", True),
    ("created_at_before_window", True),
    ("invalid_level", True),
    ("like_count_negative_set_null", False),
    ("like_count_non_numeric_set_null", False),
    ("empty_prompt_set_null", False),
    ("duplicate_id_exact", True),
    ("duplicate_id_conflict", True),
    ("missing_created_at", True),
    ("missing_level", True),
    ("missing_id", True),
    ("invalid_id", True),
)
#: Kinds of bad model rows, dealt out the same way.
MESSY_MODEL_KINDS: tuple[tuple[str, bool], ...] = (
    ("duplicate_id_conflict", True),
    ("html_in_name_stripped", False),
    ("download_count_negative_set_null", False),
    ("duplicate_id_exact", True),
)
UNPARSEABLE_CREATED_AT = "not a date"
#: After the default cleaning window (which ends 2025-12-31) and before CivitAI existed
#: (2022-11): outside any sensible study window.
AFTER_WINDOW_CREATED_AT = "2031-01-01T00:00:00.000Z"
BEFORE_WINDOW_CREATED_AT = "2021-06-01T00:00:00.000Z"
#: ``browsingLevel`` values that are no level: an unknown bit and zero (dealt out in turn).
INVALID_LEVELS: tuple[int, ...] = (128, 0)
NEGATIVE_LIKES = '"likeCount":-1'
NON_NUMERIC_LIKES = '"likeCount":"many"'
#: A conflicting duplicate is the same image re-posted with an edited prompt.
CONFLICT_PROMPT_SUFFIX = ", (edited:1.1)"
CONFLICT_PROMPT_IF_NONE = "masterpiece, best quality"
#: A conflicting duplicate model is the same id re-uploaded under an edited name.
CONFLICT_NAME_SUFFIX = " (re-upload)"


@dataclass(frozen=True)
class MessyPlan:
    """Which bad rows to append: a kind per row and the good row each one is a copy of."""

    kinds: np.ndarray      # (n,) index into the kinds tuple
    templates: np.ndarray  # (n,) row of the good table (global row index) the bad row copies


def deal_kinds(n_rows: int, n_kinds: int) -> np.ndarray:
    """Kind index of each of ``n_rows`` messy rows: the kinds in turn, so counts are exact."""
    return np.arange(n_rows, dtype=np.int64) % n_kinds


def last_chunk_first_row(params: SynthParams) -> int:
    """Global row index of the first row of the last images chunk (where messy rows go)."""
    return (params.n_images - 1) // params.chunk_rows * params.chunk_rows


def messy_image_plan(params: SynthParams) -> MessyPlan:
    """Kinds and template rows of the messy image rows; templates lie in the last chunk.

    Templates are drawn from the last chunk only because it is the one still in memory when
    the messy rows are written; a duplicate's original thus always precedes it in the files.
    """
    rng = seeded_rng(params.seed, STREAM_MESSY, 0)
    templates = rng.integers(last_chunk_first_row(params), params.n_images, params.messy_rows)
    return MessyPlan(deal_kinds(params.messy_rows, len(MESSY_IMAGE_KINDS)), templates)


def messy_model_plan(params: SynthParams) -> MessyPlan:
    """Kinds and template rows (positions in the good models table) of the messy model rows."""
    rng = seeded_rng(params.seed, STREAM_MESSY, 1)
    templates = rng.integers(0, params.n_models, params.messy_model_rows)
    return MessyPlan(deal_kinds(params.messy_model_rows, len(MESSY_MODEL_KINDS)), templates)


def messy_counts(plan: MessyPlan, kinds: Sequence[tuple[str, bool]],
                 quarantined: bool | None = None) -> dict[str, int]:
    """Planted rows per cleaning reason (sorted, zeros left out), optionally of one outcome."""
    counts = np.bincount(plan.kinds, minlength=len(kinds))
    return {name: int(c) for (name, q), c in sorted(zip(kinds, counts))
            if c and (quarantined is None or q == quarantined)}


def _kind_mask(plan: MessyPlan, kinds: Sequence[tuple[str, bool]], name: str) -> np.ndarray:
    """True for the messy rows of kind ``name``."""
    return plan.kinds == [k for k, _ in kinds].index(name)


def _columns(rows: pa.Table) -> dict[str, pa.Array]:
    """The columns of ``rows`` as single arrays (``rows`` is small: the messy rows)."""
    rows = rows.combine_chunks()
    return {name: rows.column(name).chunk(0) if rows.column(name).num_chunks else
            pa.array([], rows.schema.field(name).type) for name in rows.column_names}


def _replace_where(mask: np.ndarray, replacement: Any, column: pa.Array) -> pa.Array:
    """``column`` with ``replacement`` (a scalar or an array) where ``mask`` is true."""
    return pc.if_else(pa.array(mask, pa.bool_()), replacement, column)


def messy_image_rows(params: SynthParams, last_chunk: pa.Table, first_row: int) -> pa.Table:
    """The ``messy_rows`` bad image rows: copies of last-chunk rows, each with one defect.

    Rows other than duplicates get fresh ids above every good id (and fresh URLs), so a kept
    (repaired) row is a new image and a quarantined one collides with nothing.
    """
    plan = messy_image_plan(params)
    n = len(plan.kinds)
    col = _columns(last_chunk.take(pa.array(plan.templates - first_row)))

    def kind(name: str) -> np.ndarray:
        return _kind_mask(plan, MESSY_IMAGE_KINDS, name)

    duplicate = kind("duplicate_id_exact") | kind("duplicate_id_conflict")

    fresh = IMAGE_ID_BASE + IMAGE_ID_STRIDE * (params.n_images + np.arange(n, dtype=np.int64))
    ids = np.where(duplicate, col["id"].to_numpy(zero_copy_only=False), fresh)
    ids = np.where(kind("invalid_id"), -fresh, ids)
    created = col["createdAt"]
    for name, text in (("unparseable_created_at", UNPARSEABLE_CREATED_AT),
                       ("created_at_after_window", AFTER_WINDOW_CREATED_AT),
                       ("created_at_before_window", BEFORE_WINDOW_CREATED_AT),
                       ("missing_created_at", None)):
        created = _replace_where(kind(name), pa.scalar(text, pa.string()), created)
    invalid = kind("invalid_level")
    turn = (np.cumsum(invalid) - 1) % len(INVALID_LEVELS)  # alternate the invalid values
    level = np.where(invalid, np.array(INVALID_LEVELS)[turn],
                     col["browsingLevel"].to_numpy(zero_copy_only=False))
    stats = col["statsSummary"]
    for name, text in (("like_count_negative_set_null", NEGATIVE_LIKES),
                       ("like_count_non_numeric_set_null", NON_NUMERIC_LIKES)):
        edited = pc.replace_substring_regex(stats, pattern='"likeCount":[0-9]+', replacement=text)
        stats = _replace_where(kind(name), edited, stats)
    prompt = col["positivePrompt"]
    conflicting = pc.coalesce(pc.binary_join_element_wise(prompt, CONFLICT_PROMPT_SUFFIX, ""),
                              pa.scalar(CONFLICT_PROMPT_IF_NONE))
    prompt = _replace_where(kind("duplicate_id_conflict"), conflicting, prompt)
    prompt = _replace_where(kind("empty_prompt_set_null"), pa.scalar("", pa.string()), prompt)
    urls = fake_image_urls(seeded_rng(params.seed, STREAM_MESSY, 2), n)
    return pa.table({
        **col,
        "id": pa.array(ids, pa.int64(), mask=kind("missing_id")),
        "createdAt": created,
        "url": _replace_where(duplicate, col["url"], urls),
        "positivePrompt": prompt,
        "browsingLevel": pa.array(level, pa.int64(), mask=kind("missing_level")),
        "statsSummary": stats,
    }, schema=IMAGES_SCHEMA)


def messy_model_rows(params: SynthParams, models: pa.Table) -> pa.Table:
    """The ``messy_model_rows`` bad model rows: copies of good models, each with one defect.

    Kept (repaired) rows get fresh ids above every good id; duplicates keep their original's.
    """
    plan = messy_model_plan(params)
    n = len(plan.kinds)
    col = _columns(models.take(pa.array(plan.templates, pa.int64())))

    def kind(name: str) -> np.ndarray:
        return _kind_mask(plan, MESSY_MODEL_KINDS, name)

    duplicate = kind("duplicate_id_exact") | kind("duplicate_id_conflict")

    fresh = int(pc.max(models.column("id")).as_py()) + 1 + np.arange(n, dtype=np.int64)
    ids = np.where(duplicate, col["id"].to_numpy(zero_copy_only=False), fresh)
    name = col["name"]
    name = _replace_where(kind("duplicate_id_conflict"),
                          pc.binary_join_element_wise(name, CONFLICT_NAME_SUFFIX, ""), name)
    name = _replace_where(kind("html_in_name_stripped"),
                          pc.binary_join_element_wise("<b>", name, "</b>", ""), name)
    stats = col["stats"]
    downloads = _replace_where(kind("download_count_negative_set_null"), pa.scalar(-1, pa.int64()),
                               stats.field("downloadCount"))
    stats = pa.StructArray.from_arrays(
        [downloads if f.name == "downloadCount" else stats.field(f.name) for f in MODEL_STATS_TYPE],
        fields=list(MODEL_STATS_TYPE))
    return pa.table({**col, "id": pa.array(ids, pa.int64()), "name": name, "stats": stats},
                    schema=MODELS_SCHEMA)


def messy_truth(params: SynthParams, plan: SnapshotPlan) -> dict[str, Any]:
    """The planted messy rows as the cleaning stage must report them (default window).

    Assumes the cleaning window holds the synthetic window (the default 2022-11-01..2025-12-31
    does), so the good rows are all kept and every messy row ends exactly as its kind says.
    """
    images, models = messy_image_plan(params), messy_model_plan(params)
    image_repairs = messy_counts(images, MESSY_IMAGE_KINDS, quarantined=False)
    model_repairs = messy_counts(models, MESSY_MODEL_KINDS, quarantined=False)
    # Repaired rows are kept and copy their template's createdAt, so they add to its month.
    kept = np.isin(images.kinds, [i for i, (_, q) in enumerate(MESSY_IMAGE_KINDS) if not q])
    month_first_row = np.concatenate([[0], np.cumsum(plan.image_counts)])
    kept_month = np.searchsorted(month_first_row, images.templates[kept], side="right") - 1
    clean_counts = plan.image_counts + np.bincount(kept_month, minlength=len(plan.months))
    return {
        "messy_rows": params.messy_rows,
        "raw_image_rows": params.n_images + params.messy_rows,
        "clean_image_rows": params.n_images + int(kept.sum()),
        "clean_images_per_month": {m: int(c) for m, c in zip(plan.months, clean_counts)},
        "messy_rows_by_reason": messy_counts(images, MESSY_IMAGE_KINDS),
        "messy_rows_by_outcome": {"quarantined": messy_counts(images, MESSY_IMAGE_KINDS, True),
                                  "repaired": image_repairs},
        "messy_model_rows": params.messy_model_rows,
        "raw_model_rows": params.n_models + params.messy_model_rows,
        "clean_model_rows": params.n_models + sum(model_repairs.values()),
        "messy_models_by_reason": messy_counts(models, MESSY_MODEL_KINDS),
        "messy_models_by_outcome": {"quarantined": messy_counts(models, MESSY_MODEL_KINDS, True),
                                    "repaired": model_repairs},
    }


