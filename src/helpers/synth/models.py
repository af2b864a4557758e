"""Synthetic models in the nested shape of CivitAI's ``/api/v1/models``."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import schema
from .params import STREAM_CREATORS, STREAM_MODELS, ADAPTER_KINDS, MODEL_FILE_TYPE, GENDERS, LORA_CALLABLE_TYPES, MODELS_SCHEMA, MODEL_ID_BASE, MODEL_STATS_TYPE, MODEL_VERSION_TYPE, MS_PER_DAY, NSFW_LEVELS, PERSON_TYPES, SFW_LEVELS, SynthParams, VERSION_ID_BASE
from .plan import (SnapshotPlan, WeightedPool, n_forced_models, n_forced_person_models, sample_rows,
                   seeded_python_random, seeded_rng)
from .text import iso_utc_ms, sample_zipf, zipf_cdf
from .vocabulary import ModelText, adapter_model_text, checkpoint_text, person_model_text, slugify

# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelCatalog:
    """The models table and what image generation needs from it."""

    table: pa.Table
    checkpoint_pools: tuple[WeightedPool, ...]   # one per base model
    lora_pools: tuple[WeightedPool, WeightedPool]  # (sfw, nsfw) callable models of no real person
    person_pools: tuple[WeightedPool, WeightedPool]  # (sfw, nsfw) callable real-person models
    lora_call_suffixes: pa.StringArray           # ", <lora:…>" per model (null if not callable)
    lora_alias_suffixes: pa.StringArray          # the same call under a name no file has
    ids: np.ndarray


def _model_level_bits(rng: np.random.Generator, plan: SnapshotPlan, month: np.ndarray,
                      nsfw: np.ndarray) -> np.ndarray:
    """``nsfwLevel`` bitmask per model: its highest level plus some milder levels."""
    cum_nsfw = np.cumsum(plan.nsfw_level_mix[month], axis=1)
    cum_sfw = np.cumsum(plan.sfw_level_mix[month], axis=1)
    top_nsfw = np.array([schema.LEVEL_BITS[x] for x in NSFW_LEVELS])[sample_rows(rng, cum_nsfw)]
    top_sfw = np.array([schema.LEVEL_BITS[x] for x in SFW_LEVELS])[sample_rows(rng, cum_sfw)]
    top = np.where(nsfw, top_nsfw, top_sfw)
    mask = top.copy()
    for bit in (1, 2, 4, 8, 16):
        keep = rng.random(len(top)) < (0.9 if bit == 1 else 0.5)
        mask |= np.where((bit < top) & keep, bit, 0)
    return mask


def version_dates(rng: np.random.Generator, created: np.ndarray, n_versions: np.ndarray,
                  end_ms: int) -> np.ndarray:
    """Creation time of every version, model by model: the first at the model's creation,
    later ones after exponential gaps (mean 30 days), squeezed to end inside the window."""
    owner = np.repeat(np.arange(len(created)), n_versions)
    first = np.concatenate([[0], np.cumsum(n_versions)[:-1]])
    gaps = rng.exponential(30 * MS_PER_DAY, len(owner)).astype(np.int64)
    gaps[first] = 0
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first], n_versions)
    last = elapsed[first + n_versions - 1]
    room = np.maximum(end_ms - created, 0)
    scale = np.minimum(1.0, room / np.maximum(last, 1))  # keep order, stay before the end
    return created[owner] + (elapsed * scale[owner]).astype(np.int64)


@dataclass(frozen=True)
class ModelDraws:
    """Per-model random attributes, sorted by creation time (ids increase with time)."""

    ids: np.ndarray
    month: np.ndarray
    created: np.ndarray
    poi: np.ndarray
    type_idx: np.ndarray
    base_idx: np.ndarray
    nsfw: np.ndarray
    level_bits: np.ndarray
    gender: np.ndarray
    kind: np.ndarray
    downloads: np.ndarray
    favorites: np.ndarray
    comments: np.ndarray
    ratings: np.ndarray
    rating: np.ndarray
    n_versions: np.ndarray
    creator_rank: np.ndarray


def draw_models(params: SynthParams, plan: SnapshotPlan, rng: np.random.Generator,
                n_users: int) -> ModelDraws:
    """Draw every numeric and categorical attribute of the models, vectorised.

    Forced models guarantee that images always find a checkpoint of their base model and a
    LoRA to call: one checkpoint per base model at its launch, one SFW and one NSFW LoRA first,
    and (when there are real people) one SFW and one NSFW real-person LoRA first. Real-person
    models are made by their own pool of creators (:func:`real_person_creators`).
    """
    n_person = n_forced_person_models(params)
    forced_month = np.array(list(plan.base_launch_month) + [0, 0] + [0] * n_person)
    month = np.concatenate([np.repeat(np.arange(len(plan.months)), plan.model_counts), forced_month])
    n = len(month)
    forced = np.zeros(n, dtype=bool)
    forced[-len(forced_month):] = True
    span = np.diff(plan.bounds_ms)[month]
    offset = np.where(forced, rng.random(n) * 2 * MS_PER_DAY, rng.random(n) * span)
    created = plan.bounds_ms[month] + offset.astype(np.int64)

    poi = (rng.random(n) < params.real_person_share) & ~forced
    person_mix = plan.type_mix * np.array([t in PERSON_TYPES for t in plan.type_names])
    type_idx = np.where(poi, sample_rows(rng, np.cumsum(person_mix[month], axis=1)),
                        sample_rows(rng, np.cumsum(plan.type_mix[month], axis=1)))
    base_idx = sample_rows(rng, np.cumsum(plan.base_mix[month], axis=1))
    nsfw = rng.random(n) < np.where(poi, plan.model_nsfw_share_person[month],
                                    plan.model_nsfw_share_other[month])
    forced_rows = np.flatnonzero(forced)
    n_base = len(plan.base_names)
    type_idx[forced_rows[:n_base]] = plan.type_names.index("Checkpoint") if "Checkpoint" in plan.type_names else 0
    base_idx[forced_rows[:n_base]] = np.arange(n_base)
    type_idx[forced_rows[n_base:]] = next(i for i, t in enumerate(plan.type_names) if t in LORA_CALLABLE_TYPES)
    nsfw[forced_rows[n_base:]] = [False, True] * (1 + n_person // 2)
    poi[forced_rows[n_base + 2:]] = True

    gender_p = np.array([params.real_person_female_share,
                         1 - params.real_person_female_share - params.real_person_mixed_share,
                         params.real_person_mixed_share])
    kind_w = np.array([w for _, w in ADAPTER_KINDS])
    mu, sigma = params.model_downloads_lognormal
    downloads = np.floor(np.exp(mu + np.log(params.real_person_download_ratio) * poi
                                + sigma * rng.standard_normal(n))).astype(np.int64)
    ratings = rng.binomial(downloads, 0.02)
    draws = dict(
        month=month, created=created, poi=poi, type_idx=type_idx, base_idx=base_idx, nsfw=nsfw,
        level_bits=_model_level_bits(rng, plan, month, nsfw),
        gender=np.array(GENDERS)[rng.choice(len(GENDERS), size=n, p=gender_p / gender_p.sum())],
        kind=np.array([k for k, _ in ADAPTER_KINDS])[rng.choice(len(kind_w), size=n, p=kind_w / kind_w.sum())],
        downloads=downloads, favorites=rng.binomial(downloads, 0.08),
        comments=rng.poisson(downloads * 0.004), ratings=ratings,
        rating=np.where(ratings > 0, np.round(rng.uniform(3.6, 5.0, n), 2), 0.0),
        n_versions=np.minimum(rng.geometric(0.55, n), params.max_versions),
        creator_rank=np.where(poi, real_person_creators(params, poi, n_users),
                              sample_zipf(rng, zipf_cdf(n_users, params.user_zipf_exponent), n)),
    )
    order = np.argsort(created, kind="stable")
    return ModelDraws(ids=MODEL_ID_BASE + np.cumsum(rng.integers(1, 8, n)),
                      **{name: values[order] for name, values in draws.items()})


def real_person_creator_pool(params: SynthParams, n_users: int) -> int:
    """Creators of real-person models: about one per ``real_person_models_per_creator`` of the
    real-person models expected, at most every user."""
    expected = (params.n_models - n_forced_models(params)) * params.real_person_share \
        + n_forced_person_models(params)
    return int(min(n_users, max(1, round(expected / params.real_person_models_per_creator))))


def real_person_creators(params: SynthParams, poi: np.ndarray, n_users: int) -> np.ndarray:
    """Creator (user rank) of every model, meaningful where ``poi``: a pool of users chosen at
    random, each real-person model made by one of them by Zipf activity (stream of its own)."""
    rng = seeded_rng(params.seed, STREAM_CREATORS)
    size = real_person_creator_pool(params, n_users)
    pool = rng.choice(n_users, size=size, replace=False)
    return pool[sample_zipf(rng, zipf_cdf(size, params.real_person_creator_zipf_exponent), len(poi))]


def model_text(rnd: random.Random, draws: ModelDraws, i: int, type_name: str, base: str) -> ModelText:
    """Name, description, tags and trained words of model ``i``, by what it is."""
    if draws.poi[i]:
        return person_model_text(rnd, str(draws.gender[i]), bool(draws.nsfw[i]), base)
    if type_name == "Checkpoint":
        return checkpoint_text(rnd, base, bool(draws.nsfw[i]))
    return adapter_model_text(rnd, str(draws.kind[i]), bool(draws.nsfw[i]), base)


def file_stem(name: str, seen: dict[str, int]) -> str:
    """The stem of a model's file names: its name's slug, made unique with ``_2``, ``_3`` … as an
    upload would be (``seen`` counts the slugs so far), so a call by file name names one model."""
    slug = slugify(name)
    key = slug.replace("_", "")  # names are matched with separators ignored
    seen[key] = seen.get(key, 0) + 1
    return slug if seen[key] == 1 else f"{slug}_x{seen[key]}"


def lora_call_suffix(rnd: random.Random, text: ModelText, stem: str) -> str:
    """``", <lora:stem:w>"`` (sometimes followed by a trained word), appended to prompts as is."""
    call = f"<lora:{stem}:{rnd.choice(('0.6', '0.7', '0.8', '0.9', '1'))}>"
    if text.trained_words and rnd.random() < 0.5:
        call += f", {text.trained_words[0]}"
    return ", " + call


def file_name(stem: str, version_rank: int, version_id: int) -> str:
    """File name of a version as uploaded: the stem, then the version id from the second version
    on (so no later version's file takes another model's name)."""
    return f"{stem}.safetensors" if version_rank == 0 else f"{stem}_{version_id}.safetensors"


def alias_call(call: str, slug: str, model_id: int) -> str:
    """``call`` naming the adapter by a renamed file (slug + a hex tag): resolves to no model."""
    return call.replace(f"<lora:{slug}:", f"<lora:{slug}_{model_id:x}:", 1)


def model_versions(draws: ModelDraws, plan: SnapshotPlan, texts: list[ModelText],
                   rng: np.random.Generator, stems: list[str]) -> pa.ListArray:
    """``modelVersions`` lists built from flat per-version arrays (first version = oldest)."""
    owner = np.repeat(np.arange(len(draws.ids)), draws.n_versions)
    offsets = np.concatenate([[0], np.cumsum(draws.n_versions)]).astype(np.int32)
    rank = np.arange(len(owner)) - offsets[:-1][owner]
    names = pa.array([f"v{k + 1}.0" for k in range(int(draws.n_versions.max()))], pa.string())
    trained = pa.array([t.trained_words for t in texts], pa.list_(pa.string()))
    version_ids = VERSION_ID_BASE + np.arange(len(owner))
    files = pa.array([[{"name": file_name(stems[m], int(r), int(v)), "type": "Model"}]
                      for m, r, v in zip(owner, rank, version_ids)], pa.list_(MODEL_FILE_TYPE))
    flat = pa.StructArray.from_arrays([
        pa.array(version_ids, pa.int64()),
        names.take(pa.array(rank)),
        iso_utc_ms(version_dates(rng, draws.created, draws.n_versions, int(plan.bounds_ms[-1]) - 1)),
        pa.array(plan.base_names, pa.string()).take(pa.array(draws.base_idx[owner])),
        trained.take(pa.array(owner)),
        files,
    ], fields=list(MODEL_VERSION_TYPE))
    return pa.ListArray.from_arrays(pa.array(offsets), flat, type=pa.list_(MODEL_VERSION_TYPE))


def models_table(draws: ModelDraws, plan: SnapshotPlan, texts: list[ModelText],
                 users: pa.StringArray, rng: np.random.Generator, stems: list[str]) -> pa.Table:
    """The models table in the nested shape of ``/api/v1/models`` (first version = oldest)."""
    versions = model_versions(draws, plan, texts, rng, stems)
    return pa.table({
        "id": pa.array(draws.ids, pa.int64()),
        "name": pa.array([t.name for t in texts], pa.string()),
        "description": pa.array([t.description for t in texts], pa.string()),
        "type": pa.array(plan.type_names, pa.string()).take(pa.array(draws.type_idx)),
        "nsfw": pa.array(draws.nsfw, pa.bool_()),
        "nsfwLevel": pa.array(draws.level_bits, pa.int64()),
        "poi": pa.array(draws.poi, pa.bool_()),
        "tags": pa.array([t.tags for t in texts], pa.list_(pa.string())),
        "usernameHash": users.take(pa.array(draws.creator_rank)),
        "stats": pa.StructArray.from_arrays(
            [pa.array(draws.downloads, pa.int64()), pa.array(draws.favorites, pa.int64()),
             pa.array(draws.comments, pa.int64()), pa.array(draws.ratings, pa.int64()),
             pa.array(draws.rating, pa.float64())], fields=list(MODEL_STATS_TYPE)),
        "modelVersions": versions,
    }, schema=MODELS_SCHEMA)


def build_models(params: SynthParams, plan: SnapshotPlan, users: pa.StringArray) -> ModelCatalog:
    """Generate the models table and the popularity-weighted pools that images draw from."""
    rng = seeded_rng(params.seed, STREAM_MODELS)
    rnd = seeded_python_random(params.seed, STREAM_MODELS)
    draws = draw_models(params, plan, rng, len(users))
    texts: list[ModelText] = []
    calls: list[str | None] = []
    stems: list[str] = []
    seen: dict[str, int] = {}
    for i in range(len(draws.ids)):  # one loop per model (thousands), never per image
        type_name, base = plan.type_names[draws.type_idx[i]], plan.base_names[draws.base_idx[i]]
        texts.append(model_text(rnd, draws, i, type_name, base))
        stems.append(file_stem(texts[-1].name, seen))
        calls.append(lora_call_suffix(rnd, texts[-1], stems[-1]) if type_name in LORA_CALLABLE_TYPES
                     else None)
    table = models_table(draws, plan, texts, users, rng, stems)

    popularity = draws.downloads + 1.0
    is_checkpoint = np.array([plan.type_names[t] == "Checkpoint" for t in draws.type_idx])
    callable_ = np.array([c is not None for c in calls])
    checkpoint_pools = tuple(
        WeightedPool.of(np.flatnonzero(is_checkpoint & (draws.base_idx == b)), draws.month, popularity)
        for b in range(len(plan.base_names)))

    def pools(person: bool) -> tuple[WeightedPool, WeightedPool]:
        members = callable_ & (draws.poi == person)
        return (WeightedPool.of(np.flatnonzero(members & ~draws.nsfw), draws.month, popularity),
                WeightedPool.of(np.flatnonzero(members & draws.nsfw), draws.month, popularity))

    aliases = [None if c is None else alias_call(c, stem, int(i))
               for c, stem, i in zip(calls, stems, draws.ids)]
    return ModelCatalog(table, checkpoint_pools, pools(False), pools(True), pa.array(calls, pa.string()),
                        pa.array(aliases, pa.string()), draws.ids)


