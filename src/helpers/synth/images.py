"""Synthetic image rows, generated chunk by chunk."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from .models import ModelCatalog
from .params import STREAM_IMAGES, STREAM_LINK, IMAGES_SCHEMA, IMAGE_ID_BASE, IMAGE_ID_STRIDE, NSFW_LEVELS, PROMPT_LEVELS, SFW_LEVELS, SynthParams
from .people import ImageDraws, Population, image_draws
from .plan import SnapshotPlan, WeightedPool, sample_rows, seeded_rng
from .text import fake_image_urls, iso_utc_ms
from .vocabulary import EMPTY_NEGATIVE_SHARE, PONY_BASE, PromptPools

# --------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageContext:
    """Everything image chunks share: the plan, pools, users and models."""

    params: SynthParams
    plan: SnapshotPlan
    pools: PromptPools
    people: Population
    catalog: ModelCatalog
    month_first_row: np.ndarray  # (M+1,) cumulative image counts


def _image_levels(rng: np.random.Generator, plan: SnapshotPlan, month: np.ndarray,
                  is_nsfw: np.ndarray) -> np.ndarray:
    """``browsingLevel`` bit per image: a level of its class by the month's level mix."""
    nsfw_bits = np.array([schema.LEVEL_BITS[x] for x in NSFW_LEVELS])
    sfw_bits = np.array([schema.LEVEL_BITS[x] for x in SFW_LEVELS])
    top_nsfw = nsfw_bits[sample_rows(rng, np.cumsum(plan.nsfw_level_mix[month], axis=1))]
    top_sfw = sfw_bits[sample_rows(rng, np.cumsum(plan.sfw_level_mix[month], axis=1))]
    return np.where(is_nsfw, top_nsfw, top_sfw)


def _pick(rng: np.random.Generator, pools: tuple[WeightedPool, WeightedPool], month: np.ndarray,
          want_nsfw: np.ndarray) -> np.ndarray:
    """Models-table positions from the (SFW, NSFW) ``pools`` by each row's wanted class (the other
    pool when one is empty)."""
    positions = np.empty(len(month), dtype=np.int64)
    for flag, pool in ((False, pools[0]), (True, pools[1])):
        sel = want_nsfw == flag
        source = pool if len(pool) else pools[1 - int(flag)]
        positions[sel] = source.sample(rng, month[sel])
    return positions


def _lora_calls(rng: np.random.Generator, ctx: ImageContext, month: np.ndarray,
                n_calls: np.ndarray, is_nsfw: np.ndarray, uses_person: np.ndarray,
                link_rng: np.random.Generator) -> list[pa.Array]:
    """Columns of ``", <lora:…>"`` call text to append (empty where the image has fewer calls).

    The first call of an image drawn to use a real-person adapter names one; every other call
    names an adapter that depicts no real person. ``link_rng`` (a stream of its own, so the
    other draws stay as they were) picks the calls that name their adapter by a file name the
    models table does not hold.
    """
    columns = []
    for k in range(1, 1 + len(ctx.params.lora_extra_call_probs) + 1):
        rows = np.flatnonzero(n_calls >= k)
        # Calls mostly name models of the image's own class (NSFW images call NSFW LoRAs).
        want_nsfw = np.where(rng.random(len(rows)) < ctx.params.lora_class_match,
                             is_nsfw[rows], ~is_nsfw[rows])
        person = uses_person[rows] if k == 1 else np.zeros(len(rows), dtype=bool)
        positions = np.empty(len(rows), dtype=np.int64)
        for flag, pools in ((False, ctx.catalog.lora_pools), (True, ctx.catalog.person_pools)):
            sel = person == flag
            positions[sel] = _pick(rng, pools, month[rows][sel], want_nsfw[sel])
        index = np.zeros(len(month), dtype=np.int64)
        index[rows] = positions
        missing = n_calls < k
        taken = ctx.catalog.lora_call_suffixes.take(pa.array(index, mask=missing))
        renamed = ctx.catalog.lora_alias_suffixes.take(pa.array(index, mask=missing))
        alias = link_rng.random(len(month)) < ctx.params.unresolvable_call_share
        columns.append(pc.fill_null(pc.if_else(pa.array(alias), renamed, taken), ""))
    return columns


_DECIMALS_CACHE: list[pa.StringArray] = []
_DECIMALS_MAX = 100_000


def decimal_strings(values: np.ndarray) -> pa.Array:
    """Decimal text of non-negative integers; small ones by lookup (much faster than a cast)."""
    if len(values) and int(values.max()) < _DECIMALS_MAX:
        if not _DECIMALS_CACHE:
            _DECIMALS_CACHE.append(pa.array([str(i) for i in range(_DECIMALS_MAX)], pa.string()))
        return _DECIMALS_CACHE[0].take(pa.array(values))
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def _stats_json(rng: np.random.Generator, params: SynthParams, is_nsfw: np.ndarray) -> pa.Array:
    """``statsSummary`` JSON text with heavy-tailed reactions (more for NSFW images)."""
    mu, sigma = params.image_likes_lognormal
    n = len(is_nsfw)
    likes = np.floor(np.exp(mu + np.log(params.nsfw_like_ratio) * is_nsfw
                            + sigma * rng.standard_normal(n))).astype(np.int64) - 1
    likes = np.maximum(likes, 0)
    counts = {"likeCount": likes, "heartCount": rng.binomial(likes, 0.35),
              "laughCount": rng.binomial(likes, 0.02), "cryCount": rng.binomial(likes, 0.01),
              "commentCount": rng.poisson(likes * 0.03)}
    pieces: list[Any] = []
    for i, (key, values) in enumerate(counts.items()):
        pieces.append(pa.scalar(("{" if i == 0 else ",") + f'"{key}":'))
        pieces.append(decimal_strings(values))
    pieces.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*pieces, "")


def _checkpoints(rng: np.random.Generator, ctx: ImageContext, month: np.ndarray,
                 base_idx: np.ndarray) -> np.ndarray:
    """Models-table position of the checkpoint each image was made with (of its base model)."""
    positions = np.zeros(len(month), dtype=np.int64)
    for b, pool in enumerate(ctx.catalog.checkpoint_pools):
        sel = base_idx == b
        positions[sel] = pool.sample(rng, month[sel])
    return positions


def _positive_prompts(rng: np.random.Generator, ctx: ImageContext, month: np.ndarray,
                      level: np.ndarray, base_idx: np.ndarray, draws: ImageDraws,
                      link_rng: np.random.Generator) -> pa.Array:
    """Pooled prompt of the image's (level, base model) class plus its LoRA calls; null if none."""
    prompt_bits = [schema.LEVEL_BITS[x] for x in PROMPT_LEVELS]
    prompt_level = np.searchsorted(prompt_bits, np.minimum(level, prompt_bits[-1]))  # Blocked → XXX
    prompt_class = prompt_level * len(ctx.plan.base_names) + base_idx
    index = prompt_class * ctx.pools.size + rng.integers(0, ctx.pools.size, len(month))
    base_prompt = ctx.pools.positive.take(pa.array(index, mask=~draws.has_prompt))
    extra = rng.random(len(month))
    n_calls = draws.has_lora * (1 + sum((extra < p).astype(np.int64) for p in ctx.params.lora_extra_call_probs))
    calls = _lora_calls(rng, ctx, month, n_calls, draws.is_nsfw, draws.uses_person, link_rng)
    # A null base prompt (no metadata) stays null: the join emits null when any input is null.
    return pc.binary_join_element_wise(base_prompt, *calls, "")


def _negative_prompts(rng: np.random.Generator, ctx: ImageContext, base_idx: np.ndarray,
                      has_prompt: np.ndarray) -> pa.Array:
    """Pooled negative prompts (Pony-style for Pony images), a fifth empty, null without prompt."""
    pools, n = ctx.pools, len(base_idx)
    pony = np.array([name == PONY_BASE for name in ctx.plan.base_names])[base_idx]
    index = np.where(pony, 1 + pools.n_negative_general + rng.integers(0, pools.n_negative_pony, n),
                     1 + rng.integers(0, pools.n_negative_general, n))
    index = np.where(rng.random(n) < EMPTY_NEGATIVE_SHARE, 0, index)
    return pools.negative.take(pa.array(index, mask=~has_prompt))


def image_chunk(ctx: ImageContext, chunk_index: int, first_row: int, n_rows: int) -> pa.Table:
    """Rows ``first_row .. first_row + n_rows`` of the images table (global row order)."""
    params, plan = ctx.params, ctx.plan
    rng = seeded_rng(params.seed, STREAM_IMAGES, chunk_index)
    rows = np.arange(first_row, first_row + n_rows, dtype=np.int64)
    month = np.searchsorted(ctx.month_first_row, rows, side="right") - 1
    # Row j of a month with c images sits in slot j of c equal slots: times increase with rows.
    slot = (rows - ctx.month_first_row[month] + rng.random(n_rows)) / plan.image_counts[month]
    created = plan.bounds_ms[month] + (slot * np.diff(plan.bounds_ms)[month]).astype(np.int64)
    ids = IMAGE_ID_BASE + IMAGE_ID_STRIDE * rows + rng.integers(0, IMAGE_ID_STRIDE, n_rows)

    draws = image_draws(params, plan, ctx.people, chunk_index, month)
    is_nsfw, has_prompt = draws.is_nsfw, draws.has_prompt
    level = _image_levels(rng, plan, month, is_nsfw)
    pg13_flag = (level == schema.LEVEL_BITS["PG13"]) & (rng.random(n_rows) < params.pg13_flagged_share)
    base_cum = np.where(is_nsfw[:, None], np.cumsum(plan.base_mix_nsfw, axis=1)[month],
                        np.cumsum(plan.base_mix, axis=1)[month])
    base_idx = sample_rows(rng, base_cum)
    checkpoint = _checkpoints(rng, ctx, month, base_idx)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "createdAt": iso_utc_ms(created),
        "url": fake_image_urls(rng, n_rows),
        "positivePrompt": _positive_prompts(rng, ctx, month, level, base_idx, draws,
                                            seeded_rng(params.seed, STREAM_LINK, chunk_index)),
        "negativePrompt": _negative_prompts(rng, ctx, base_idx, has_prompt),
        "nsfw": pa.array(is_nsfw | pg13_flag, pa.bool_()),
        "browsingLevel": pa.array(level, pa.int64()),
        "statsSummary": _stats_json(rng, params, is_nsfw),
        "usernameHash": ctx.people.hashes.take(pa.array(draws.user)),
        "baseModel": pa.array(plan.base_names, pa.string()).take(pa.array(base_idx)),
        "modelId": pa.array(ctx.catalog.ids[checkpoint], pa.int64()),
    }, schema=IMAGES_SCHEMA)


