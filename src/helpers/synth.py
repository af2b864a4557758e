"""The embedded synthetic snapshot: seeded CivitAI-like images and models in the Hub's raw format.

The default source of the pipeline is this generator. It writes what a Hub snapshot looks like
*before* the adapter (:mod:`helpers.sources`) maps it, so the real path runs on it: camelCase
columns, ``browsingLevel`` bits, the platform's boolean ``nsfw`` flag, reaction counts as JSON
text in ``statsSummary``, and models in the nested shape of CivitAI's ``/api/v1/models``.

Layout written by :func:`write_snapshot`::

    out_dir/images/part-00000.parquet, part-00001.parquet, ...   (``chunk_rows`` rows each)
    out_dir/models/part-00000.parquet

Every planted quantity is a field of :class:`SynthParams` (the one place for parameters), and
:func:`expected_truth` returns the values the generated data must reproduce, for tests and for
the narrative ("the pipeline recovers what was planted").

Design choices, and why:

* **Streaming.** Images are generated and written chunk by chunk; only per-month tables, a
  pool of prompts and a pool of hashed users live across chunks, so memory does not grow
  with ``n_images``.
* **Vectorised.** No Python loop per image row: prompts are drawn from a seeded pool of
  distinct prompts per (level, base model) class with ``pyarrow.compute.take``; LoRA calls
  are appended with one element-wise join; dates, URLs and hashes are formatted by writing
  ASCII bytes into fixed-width numpy buffers.
* **Deterministic.** Chunk ``k`` draws from ``SeedSequence(seed, spawn_key=(IMAGES, k))``;
  row positions, months, timestamps and ids are functions of the global row index, so the
  same parameters give byte-identical files.
* **Realistically messy.** ``messy_rows`` bad image rows (and ``messy_model_rows`` bad model
  rows) are appended after the good rows of the last part file: unparseable or out-of-window
  dates, unknown level bits, negative or non-numeric likes, empty prompts, exact and
  conflicting duplicates, missing ids… Each kind is named exactly as :mod:`helpers.clean`
  reports it, kinds are dealt out in turn, and :func:`expected_truth` gives the planted count
  per reason, so the cleaning report can be checked to the row. ``n_images`` / ``n_models``
  stay the counts of *good* rows.
* **Ethical.** Real-person models carry fictional names (a common or invented given name and
  an invented surname); no content involving minors is generated (no minor-coded terms at all).

Known simplifications: a LoRA call may name a model of another base model than the image's;
a model's ``nsfwLevel`` is drawn for the model, not derived from the images that use it; a
model used in month ``m`` may have been created later in that same month.
"""
from __future__ import annotations

import os
import random
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import schema

# --------------------------------------------------------------------------- constants
DEFAULT_SEED = 20250507
DEFAULT_START = "2022-11"
DEFAULT_END = "2024-12"

#: Monthly share of images at level >= R in the Civiverse-6M dataset card (2023-10..2024-04).
#: The default NSFW path passes through these values exactly.
CIVIVERSE_NSFW_SHARE: dict[str, float] = {
    "2023-10": 0.5519, "2023-11": 0.5829, "2023-12": 0.5597, "2024-01": 0.5859,
    "2024-02": 0.6121, "2024-03": 0.6504, "2024-04": 0.7294,
}
#: Anchors of the default NSFW path outside the Civiverse months: a plausible start and end.
NSFW_PATH_START = 0.35
NSFW_PATH_END = 0.75

#: Levels inside the NSFW (>= R) and SFW (< R) parts of the image population, mildest first.
NSFW_LEVELS: tuple[str, ...] = ("R", "X", "XXX", "Blocked")
SFW_LEVELS: tuple[str, ...] = ("PG", "PG13")
#: Prompt classes: one pool per level (Blocked images use the XXX pool).
PROMPT_LEVELS: tuple[str, ...] = ("PG", "PG13", "R", "X", "XXX")

#: Model types that are called as ``<lora:slug:weight>`` in prompts.
LORA_CALLABLE_TYPES: frozenset[str] = frozenset({"LORA", "LoCon", "DoRA"})
#: Types a real-person model can have (people are trained as adapters, not checkpoints).
PERSON_TYPES: frozenset[str] = frozenset({"LORA", "LoCon", "DoRA", "TextualInversion"})
#: Kinds of non-person adapter models and their shares.
ADAPTER_KINDS: tuple[tuple[str, float], ...] = (
    ("style", 0.30), ("character", 0.28), ("concept", 0.20), ("clothing", 0.13), ("pose", 0.09),
)
GENDERS: tuple[str, ...] = ("female", "male", "mixed")

# Stream ids of the seed sequence: each consumer of randomness has its own stream.
_STREAM_MODELS, _STREAM_POOLS, _STREAM_USERS, _STREAM_IMAGES, _STREAM_MESSY = 0, 1, 2, 3, 4

#: ``messy_rows`` / ``messy_model_rows`` value meaning "derive from the table size".
AUTO_MESSY = -1
#: Automatic messy rows: one per this many good images (0.4 %) and models.
IMAGES_PER_MESSY_ROW = 250
MODELS_PER_MESSY_ROW = 300

IMAGE_ID_BASE = 1_000_000
IMAGE_ID_STRIDE = 4  # ids are base + stride * row + jitter(0..stride-1): unique and increasing
MODEL_ID_BASE = 1_000
VERSION_ID_BASE = 10_000
URL_PREFIX = b"https://image.civitai.invalid/"
URL_SUFFIX = b".jpeg"
MS_PER_DAY = 86_400_000

IMAGES_SCHEMA = pa.schema([
    pa.field("id", pa.int64()),
    pa.field("createdAt", pa.string()),
    pa.field("url", pa.string()),
    pa.field("positivePrompt", pa.string()),
    pa.field("negativePrompt", pa.string()),
    pa.field("nsfw", pa.bool_()),
    pa.field("browsingLevel", pa.int64()),
    pa.field("statsSummary", pa.string()),
    pa.field("usernameHash", pa.string()),
    pa.field("baseModel", pa.string()),
    pa.field("modelId", pa.int64()),
])
MODEL_STATS_TYPE = pa.struct([
    pa.field("downloadCount", pa.int64()), pa.field("favoriteCount", pa.int64()),
    pa.field("commentCount", pa.int64()), pa.field("ratingCount", pa.int64()),
    pa.field("rating", pa.float64()),
])
MODEL_VERSION_TYPE = pa.struct([
    pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("createdAt", pa.string()),
    pa.field("baseModel", pa.string()), pa.field("trainedWords", pa.list_(pa.string())),
])
MODELS_SCHEMA = pa.schema([
    pa.field("id", pa.int64()),
    pa.field("name", pa.string()),
    pa.field("description", pa.string()),
    pa.field("type", pa.string()),
    pa.field("nsfw", pa.bool_()),
    pa.field("nsfwLevel", pa.int64()),
    pa.field("poi", pa.bool_()),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("usernameHash", pa.string()),
    pa.field("stats", MODEL_STATS_TYPE),
    pa.field("modelVersions", pa.list_(MODEL_VERSION_TYPE)),
])


# --------------------------------------------------------------------------- month helpers
def month_range(start_month: str, end_month: str) -> list[str]:
    """Months ``YYYY-MM`` from ``start_month`` to ``end_month`` inclusive."""
    first, last = np.datetime64(start_month, "M"), np.datetime64(end_month, "M")
    if last < first:
        raise ValueError(f"end_month {end_month} is before start_month {start_month}")
    return [str(m) for m in np.arange(first, last + 1)]


def month_bounds_ms(months: Sequence[str]) -> np.ndarray:
    """Start of each month and end of the last one, in ms since the epoch (length M + 1)."""
    starts = np.array(list(months) + [str(np.datetime64(months[-1], "M") + 1)], dtype="datetime64[M]")
    return starts.astype("datetime64[ms]").astype(np.int64)


def interpolate_anchors(months: Sequence[str], anchors: dict[str, float]) -> np.ndarray:
    """Piecewise-linear path through ``anchors`` (month → value), flat beyond the outer ones."""
    all_months = np.array(months, dtype="datetime64[M]").astype(np.int64)
    keys = sorted(anchors)
    x = np.array(keys, dtype="datetime64[M]").astype(np.int64)
    y = np.array([anchors[k] for k in keys], dtype=np.float64)
    return np.interp(all_months, x, y)


def nsfw_share_path(start_month: str = DEFAULT_START, end_month: str = DEFAULT_END,
                    start_share: float = NSFW_PATH_START,
                    end_share: float = NSFW_PATH_END) -> dict[str, float]:
    """Default monthly share of images at level >= R.

    A piecewise-linear path from ``start_share`` in 2022-11 through the Civiverse-6M card's
    values for 2023-10..2024-04 (kept exactly) to ``end_share`` in 2024-12, evaluated on the
    months of the window (flat outside the anchors).
    """
    anchors = {DEFAULT_START: start_share, **CIVIVERSE_NSFW_SHARE, DEFAULT_END: end_share}
    months = month_range(start_month, end_month)
    values = interpolate_anchors(months, anchors)
    path = {m: round(float(v), 4) for m, v in zip(months, values)}
    for month, share in CIVIVERSE_NSFW_SHARE.items():  # exact, not re-rounded
        if month in path:
            path[month] = share
    return path


def linear_share_path(start_month: str, end_month: str, first: float, last: float) -> dict[str, float]:
    """A share rising (or falling) linearly from ``first`` to ``last`` over the window."""
    months = month_range(start_month, end_month)
    values = np.linspace(first, last, len(months)) if len(months) > 1 else np.array([first])
    return {m: round(float(v), 4) for m, v in zip(months, values)}


def lora_share_path(start_month: str = DEFAULT_START, end_month: str = DEFAULT_END,
                    first: float = 0.15, last: float = 0.60) -> dict[str, float]:
    """Default monthly share of prompted images with at least one ``<lora:…>`` call."""
    return linear_share_path(start_month, end_month, first, last)


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class SynthParams:
    """Every parameter of the synthetic snapshot, and so every planted truth.

    Shares by month are dicts ``"YYYY-MM" → share`` covering the window; ``(start, end)``
    pairs are interpolated linearly over the window's months.
    """

    seed: int = DEFAULT_SEED
    n_images: int = 30_000
    n_models: int = 3_000
    chunk_rows: int = 500_000
    start_month: str = DEFAULT_START
    end_month: str = DEFAULT_END

    # Volume: images per month grow by this factor each month (strong growth: ×41 over 26
    # months); models grow more slowly.
    monthly_growth: float = 1.16
    model_monthly_growth: float = 1.10

    # NSFW: planted share of images with browsingLevel >= 4 (R) per month.
    nsfw_share_by_month: dict[str, float] = field(default_factory=nsfw_share_path)
    # Level mix inside NSFW (R, X, XXX, Blocked) and inside SFW (PG, PG13): first → last month.
    nsfw_level_mix_start: tuple[float, ...] = (0.620, 0.275, 0.100, 0.005)
    nsfw_level_mix_end: tuple[float, ...] = (0.400, 0.345, 0.250, 0.005)
    sfw_level_mix_start: tuple[float, ...] = (0.72, 0.28)
    sfw_level_mix_end: tuple[float, ...] = (0.52, 0.48)
    # The platform flag is level >= R, plus this share of PG13 images flagged too.
    pg13_flagged_share: float = 0.20

    # Prompts: share of images without any prompt (no generation metadata).
    missing_prompt_share: float = 0.08
    # LoRA: share of prompted images with >= 1 <lora:…> call; NSFW odds ratio with vs without.
    lora_share_by_month: dict[str, float] = field(default_factory=lora_share_path)
    lora_nsfw_odds_ratio: float = 2.5
    # Probability of a 2nd and of a 3rd call, given a LoRA image.
    lora_extra_call_probs: tuple[float, float] = (0.35, 0.12)
    # Probability that a call names a model of the image's own NSFW class (nsfw/sfw model).
    lora_class_match: float = 0.75
    # Distinct prompts per (level, base model) class: at most this many, and about one per 50
    # images, so the small sample stays quick to build (see ``prompt_pool_per_class``).
    prompt_pool_size: int = 2000

    # Base models: (name, launch month, final weight, NSFW tilt). Weights ramp linearly from
    # the launch month over ``base_model_ramp_months``; NSFW images weigh by weight × tilt.
    base_models: tuple[tuple[str, str, float, float], ...] = (
        ("SD 1.5", "2022-11", 1.0, 1.0),
        ("SDXL 1.0", "2023-07", 2.0, 0.9),
        ("Pony", "2024-01", 3.0, 2.2),
        ("Flux.1 D", "2024-08", 2.0, 0.6),
    )
    base_model_ramp_months: int = 4

    # Models: types (name, share in first month, share in last month).
    model_types: tuple[tuple[str, float, float], ...] = (
        ("LORA", 0.34, 0.70), ("LoCon", 0.02, 0.08), ("DoRA", 0.0, 0.06),
        ("Checkpoint", 0.36, 0.10), ("TextualInversion", 0.20, 0.055), ("Hypernetwork", 0.08, 0.005),
    )
    real_person_share: float = 0.12
    real_person_female_share: float = 0.90
    real_person_mixed_share: float = 0.02  # the rest of real-person models depict men
    # Models whose showcase images reach >= R: first → last month; higher among real people.
    model_nsfw_share_start: float = 0.25
    model_nsfw_share_end: float = 0.50
    real_person_nsfw_odds_ratio: float = 2.0
    max_versions: int = 6

    # Engagement: log-normal (mu, sigma) of likes per image and downloads per model.
    image_likes_lognormal: tuple[float, float] = (1.0, 1.3)
    nsfw_like_ratio: float = 1.6  # median likes NSFW / SFW
    model_downloads_lognormal: tuple[float, float] = (5.5, 2.0)
    real_person_download_ratio: float = 1.5  # median downloads real-person / other models
    # Creators: about one user per ``images_per_user`` images, Zipf-distributed activity.
    images_per_user: int = 15
    user_zipf_exponent: float = 1.1

    # Messy rows: bad rows appended to the last images part file and to the models file, on
    # top of the ``n_images`` / ``n_models`` good ones (see ``MESSY_IMAGE_KINDS``). AUTO_MESSY
    # (-1) = n_images // 250 (at most chunk_rows) and n_models // 300; 0 switches them off.
    # ``dataclasses.replace`` keeps a resolved count: pass -1 again to re-derive it.
    messy_rows: int = AUTO_MESSY
    messy_model_rows: int = AUTO_MESSY

    def __post_init__(self) -> None:
        """Resolve automatic messy-row counts, then fail early, with every problem listed."""
        # Frozen dataclass: the resolved counts are set once, here, before anyone reads them.
        if self.messy_rows == AUTO_MESSY:
            object.__setattr__(self, "messy_rows", max(0, min(self.n_images // IMAGES_PER_MESSY_ROW,
                                                              self.chunk_rows)))
        if self.messy_model_rows == AUTO_MESSY:
            object.__setattr__(self, "messy_model_rows", max(0, self.n_models // MODELS_PER_MESSY_ROW))
        problems = validate_params(self)
        if problems:
            raise ValueError("invalid SynthParams: " + "; ".join(problems))

    @property
    def months(self) -> list[str]:
        """Months of the window, ``YYYY-MM``."""
        return month_range(self.start_month, self.end_month)


def validate_params(params: SynthParams) -> list[str]:
    """Human-readable problems with ``params`` (empty when valid)."""
    problems: list[str] = []
    try:
        months = params.months
    except ValueError as exc:
        return [str(exc)]
    if params.n_images < 1:
        problems.append("n_images must be >= 1")
    if params.n_models < 20:
        problems.append("n_models must be >= 20 (every base model needs a checkpoint)")
    if not 1 <= params.chunk_rows <= 5_000_000:
        problems.append("chunk_rows must be in 1..5,000,000 (one chunk must fit in memory)")
    for name in ("nsfw_share_by_month", "lora_share_by_month"):
        shares = getattr(params, name)
        missing = [m for m in months if m not in shares]
        if missing:
            problems.append(f"{name} lacks months {missing[:3]}{'…' if len(missing) > 3 else ''}")
        if any(not 0.0 <= v <= 1.0 for v in shares.values()):
            problems.append(f"{name} values must be in [0, 1]")
    for name, size in (("nsfw_level_mix_start", 4), ("nsfw_level_mix_end", 4),
                       ("sfw_level_mix_start", 2), ("sfw_level_mix_end", 2)):
        mix = getattr(params, name)
        if len(mix) != size or min(mix) < 0 or sum(mix) <= 0:
            problems.append(f"{name} needs {size} non-negative weights")
    for name in ("pg13_flagged_share", "missing_prompt_share", "real_person_share",
                 "real_person_female_share", "real_person_mixed_share", "lora_class_match",
                 "model_nsfw_share_start", "model_nsfw_share_end"):
        if not 0.0 <= getattr(params, name) <= 1.0:
            problems.append(f"{name} must be in [0, 1]")
    if params.real_person_female_share + params.real_person_mixed_share > 1.0:
        problems.append("real_person_female_share + real_person_mixed_share must be <= 1")
    if not any(launch <= params.start_month for _, launch, *_ in params.base_models):
        problems.append("some base model must launch by start_month (images need one from the start)")
    if not any(t in LORA_CALLABLE_TYPES for t, *_ in params.model_types):
        problems.append("model_types needs a LoRA-callable type")
    for name in ("lora_nsfw_odds_ratio", "real_person_nsfw_odds_ratio", "nsfw_like_ratio",
                 "real_person_download_ratio", "monthly_growth", "model_monthly_growth"):
        if getattr(params, name) <= 0:
            problems.append(f"{name} must be > 0")
    if params.prompt_pool_size < 1 or params.images_per_user < 1 or params.max_versions < 1:
        problems.append("prompt_pool_size, images_per_user and max_versions must be >= 1")
    if params.messy_rows < 0 or params.messy_model_rows < 0:
        problems.append("messy_rows and messy_model_rows must be >= 0 (or -1 for automatic)")
    elif params.messy_rows > params.chunk_rows or params.messy_model_rows > params.n_models:
        # They join the last chunk in memory, so they must not outgrow a chunk.
        problems.append("messy_rows must be <= chunk_rows and messy_model_rows <= n_models")
    return problems


def default_params(**overrides: Any) -> SynthParams:
    """Default parameters with ``overrides``; month-keyed paths follow a changed window.

    Messy rows default to ``max(0, n_images // 250)`` (at most ``chunk_rows``) and
    ``max(0, n_models // 300)`` of the (possibly overridden) sizes; ``messy_rows=0`` switches
    them off.
    """
    known = {f.name for f in fields(SynthParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown SynthParams fields {unknown}")
    start = overrides.get("start_month", DEFAULT_START)
    end = overrides.get("end_month", DEFAULT_END)
    if (start, end) != (DEFAULT_START, DEFAULT_END):
        overrides.setdefault("nsfw_share_by_month", nsfw_share_path(start, end))
        overrides.setdefault("lora_share_by_month", lora_share_path(start, end))
    overrides.setdefault("messy_rows", AUTO_MESSY)
    overrides.setdefault("messy_model_rows", AUTO_MESSY)
    return SynthParams(**overrides)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class SnapshotPlan:
    """Per-month quantities derived from the parameters (shared by generator and truth)."""

    months: list[str]
    bounds_ms: np.ndarray            # (M+1,) month starts and end of window
    image_counts: np.ndarray         # (M,) exact images per month
    nsfw_share: np.ndarray           # (M,) P(level >= R)
    nsfw_share_no_lora: np.ndarray   # (M,) P(level >= R | prompted, no LoRA call)
    nsfw_share_lora: np.ndarray      # (M,) P(level >= R | >= 1 LoRA call)
    lora_share: np.ndarray           # (M,) P(>= 1 LoRA call | prompted)
    nsfw_level_mix: np.ndarray       # (M, 4) over NSFW_LEVELS
    sfw_level_mix: np.ndarray        # (M, 2) over SFW_LEVELS
    base_names: tuple[str, ...]
    base_launch_month: tuple[int, ...]  # month index of each base model's launch (0 if before)
    base_mix: np.ndarray             # (M, B) for SFW images and for models
    base_mix_nsfw: np.ndarray        # (M, B) for NSFW images
    type_names: tuple[str, ...]
    type_mix: np.ndarray             # (M, T)
    model_counts: np.ndarray         # (M,) models per month (before forced ones)
    model_nsfw_share: np.ndarray     # (M,)
    model_nsfw_share_person: np.ndarray
    model_nsfw_share_other: np.ndarray


def growth_weights(n_months: int, growth: float) -> np.ndarray:
    """Normalised weights of months under constant multiplicative growth."""
    w = growth ** np.arange(n_months, dtype=np.float64)
    return w / w.sum()


def allocate_counts(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder; exact sum)."""
    raw = total * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def split_by_odds_ratio(share: np.ndarray, exposed_share: np.ndarray,
                        odds_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (unexposed, exposed) with the given odds ratio that average to ``share``.

    Solves ``(1 - e) p0 + e p1 = share`` with ``odds(p1) / odds(p0) = odds_ratio`` by
    bisection (the left side increases with ``p0``), element-wise.
    """
    share = np.asarray(share, dtype=np.float64)
    exposed = np.asarray(exposed_share, dtype=np.float64)
    lo, hi = np.zeros_like(share), np.ones_like(share)
    for _ in range(60):
        p0 = (lo + hi) / 2
        p1 = odds_ratio * p0 / (1 - p0 + odds_ratio * p0)
        too_high = (1 - exposed) * p0 + exposed * p1 > share
        hi = np.where(too_high, p0, hi)
        lo = np.where(too_high, lo, p0)
    p0 = (lo + hi) / 2
    p1 = odds_ratio * p0 / (1 - p0 + odds_ratio * p0)
    return p0, p1


def interpolate_mix(start: Sequence[float], end: Sequence[float], n_months: int) -> np.ndarray:
    """(M, K) mixes moving linearly from ``start`` to ``end``, each row normalised."""
    t = np.linspace(0.0, 1.0, n_months)[:, None] if n_months > 1 else np.zeros((1, 1))
    mix = (1 - t) * np.asarray(start, dtype=np.float64) + t * np.asarray(end, dtype=np.float64)
    return mix / mix.sum(axis=1, keepdims=True)


def active_base_models(params: SynthParams) -> tuple[tuple[str, str, float, float], ...]:
    """Base models that launch before the window ends (later ones never appear)."""
    return tuple(b for b in params.base_models if b[1] <= params.end_month)


def base_model_weights(params: SynthParams, months: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(M, B) weights of base models (linear ramp from launch) and their NSFW tilts (B,)."""
    month_idx = np.array(months, dtype="datetime64[M]").astype(np.int64)
    cols, tilts = [], []
    for _, launch, final, tilt in active_base_models(params):
        since = month_idx - np.datetime64(launch, "M").astype(np.int64)
        ramp = np.clip((since + 1) / max(params.base_model_ramp_months, 1), 0.0, 1.0)
        cols.append(final * ramp)
        tilts.append(tilt)
    return np.stack(cols, axis=1), np.array(tilts, dtype=np.float64)


def n_forced_models(params: SynthParams) -> int:
    """Models placed on purpose: a checkpoint per base model, a first SFW and NSFW LoRA."""
    return len(active_base_models(params)) + 2


def make_plan(params: SynthParams) -> SnapshotPlan:
    """Derive every per-month quantity of the snapshot from ``params``."""
    months = params.months
    n = len(months)
    nsfw = np.array([params.nsfw_share_by_month[m] for m in months])
    lora = np.array([params.lora_share_by_month[m] for m in months])
    p0, p1 = split_by_odds_ratio(nsfw, lora, params.lora_nsfw_odds_ratio)
    weights, tilts = base_model_weights(params, months)
    nsfw_weights = weights * tilts
    type_names = tuple(t for t, _, _ in params.model_types)
    type_mix = interpolate_mix([s for _, s, _ in params.model_types],
                               [e for _, _, e in params.model_types], n)
    model_nsfw = np.linspace(params.model_nsfw_share_start, params.model_nsfw_share_end, n) \
        if n > 1 else np.array([params.model_nsfw_share_start])
    m_other, m_person = split_by_odds_ratio(model_nsfw, np.full(n, params.real_person_share),
                                            params.real_person_nsfw_odds_ratio)
    return SnapshotPlan(
        months=months,
        bounds_ms=month_bounds_ms(months),
        image_counts=allocate_counts(params.n_images, growth_weights(n, params.monthly_growth)),
        nsfw_share=nsfw, nsfw_share_no_lora=p0, nsfw_share_lora=p1, lora_share=lora,
        nsfw_level_mix=interpolate_mix(params.nsfw_level_mix_start, params.nsfw_level_mix_end, n),
        sfw_level_mix=interpolate_mix(params.sfw_level_mix_start, params.sfw_level_mix_end, n),
        base_names=tuple(b[0] for b in active_base_models(params)),
        base_launch_month=tuple(max(0, months.index(b[1])) if b[1] in months else 0
                                for b in active_base_models(params)),
        base_mix=weights / weights.sum(axis=1, keepdims=True),
        base_mix_nsfw=nsfw_weights / nsfw_weights.sum(axis=1, keepdims=True),
        type_names=type_names, type_mix=type_mix,
        model_counts=allocate_counts(params.n_models - n_forced_models(params),
                                     growth_weights(n, params.model_monthly_growth)),
        model_nsfw_share=model_nsfw, model_nsfw_share_person=m_person,
        model_nsfw_share_other=m_other,
    )


# --------------------------------------------------------------------------- sampling helpers
def seeded_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """Generator for one stream (and chunk) of the snapshot, independent of all others."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, index))))


def seeded_python_random(seed: int, stream: int) -> random.Random:
    """A stdlib ``Random`` seeded from the same seed sequence (cheap scalar draws for pools)."""
    state = np.random.SeedSequence(seed, spawn_key=(stream, 0)).generate_state(2, np.uint64)
    return random.Random(int(state[0]) << 64 | int(state[1]))


def sample_rows(rng: np.random.Generator, cum_probs: np.ndarray) -> np.ndarray:
    """Category index per row by inverse CDF; ``cum_probs`` is (n, K) cumulative per row."""
    u = rng.random(cum_probs.shape[0])[:, None] * cum_probs[:, -1:]
    return np.minimum((u >= cum_probs).sum(axis=1), cum_probs.shape[1] - 1)


@dataclass(frozen=True)
class WeightedPool:
    """Models to draw from, sorted by creation, with popularity weights.

    A draw for an image made in month ``m`` picks among models created in months ``<= m``
    (at least the first one), with probability proportional to popularity, so that a few
    models get most of the use, as on the platform.
    """

    positions: np.ndarray   # positions in the models table
    months: np.ndarray      # creation month index, non-decreasing
    cum_weight: np.ndarray  # cumulative popularity

    @classmethod
    def of(cls, positions: np.ndarray, months: np.ndarray, weights: np.ndarray) -> "WeightedPool":
        """Pool of the models at ``positions``, given all models' months and weights."""
        order = np.argsort(months[positions], kind="stable")
        pos = positions[order]
        return cls(pos, months[pos], np.cumsum(weights[pos].astype(np.float64)))

    def __len__(self) -> int:
        return len(self.positions)

    def sample(self, rng: np.random.Generator, month: np.ndarray) -> np.ndarray:
        """Models-table positions for rows made in ``month`` (array of month indices)."""
        n_eligible = np.maximum(np.searchsorted(self.months, month, side="right"), 1)
        total = self.cum_weight[n_eligible - 1]
        pick = np.searchsorted(self.cum_weight, rng.random(len(month)) * total, side="right")
        return self.positions[np.minimum(pick, n_eligible - 1)]


# --------------------------------------------------------------------------- fast text
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def fixed_width_strings(buf: np.ndarray) -> pa.StringArray:
    """Arrow strings from an (n, width) array of ASCII bytes, without a Python loop."""
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    n, width = buf.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * width).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.reshape(-1)))


def hex_bytes(raw: np.ndarray) -> np.ndarray:
    """(n, 2k) lower-case hex ASCII of (n, k) random bytes."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write zero-padded decimal ``values`` into ``buf[:, col:col+width]``."""
    for k in range(width - 1, -1, -1):
        buf[:, col + k] = _DIGITS[values % 10]
        values = values // 10


def iso_utc_ms(ms: np.ndarray) -> pa.StringArray:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` strings of epoch milliseconds (vectorised)."""
    t = ms.astype("datetime64[ms]")
    day = t.astype("datetime64[D]")
    month = t.astype("datetime64[M]")
    year = t.astype("datetime64[Y]")
    in_day = ms - day.astype("datetime64[ms]").astype(np.int64)
    buf = np.empty((len(ms), 24), dtype=np.uint8)
    _put_digits(buf, 0, year.astype(np.int64) + 1970, 4)
    _put_digits(buf, 5, (month - year.astype("datetime64[M]")).astype(np.int64) + 1, 2)
    _put_digits(buf, 8, (day - month.astype("datetime64[D]")).astype(np.int64) + 1, 2)
    _put_digits(buf, 11, in_day // 3_600_000, 2)
    _put_digits(buf, 14, in_day // 60_000 % 60, 2)
    _put_digits(buf, 17, in_day // 1_000 % 60, 2)
    _put_digits(buf, 20, in_day % 1_000, 3)
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        buf[:, col] = ord(char)
    return fixed_width_strings(buf)


def fake_image_urls(rng: np.random.Generator, n: int) -> pa.StringArray:
    """``https://image.civitai.invalid/<uuid>.jpeg`` with random uuid-shaped names."""
    hexes = hex_bytes(rng.integers(0, 256, size=(n, 16), dtype=np.uint8))
    start = len(URL_PREFIX)
    buf = np.empty((n, start + 36 + len(URL_SUFFIX)), dtype=np.uint8)
    buf[:, :start] = np.frombuffer(URL_PREFIX, np.uint8)
    buf[:, start:start + 36] = ord("-")
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
        buf[:, start + dst:start + dst + width] = hexes[:, src:src + width]
    buf[:, start + 36:] = np.frombuffer(URL_SUFFIX, np.uint8)
    return fixed_width_strings(buf)


def user_hash_pool(seed: int, n_users: int) -> pa.StringArray:
    """``n_users`` distinct-looking 16-hex-digit user hashes (the pool creators are drawn from)."""
    rng = seeded_rng(seed, _STREAM_USERS)
    return fixed_width_strings(hex_bytes(rng.integers(0, 256, size=(n_users, 8), dtype=np.uint8)))


def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """Cumulative Zipf weights of ranks 1..n (rank 1 most active)."""
    return np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)


def sample_zipf(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Ranks (0-based) drawn from a Zipf CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), len(cdf) - 1)


# --------------------------------------------------------------------------- vocabulary
QUALITY = ("masterpiece", "best quality", "high quality", "ultra detailed", "highres", "absurdres",
           "8k", "intricate details", "sharp focus", "highly detailed", "amazing quality")
PONY_SCORES = ("score_9", "score_8_up", "score_7_up", "score_6_up", "score_5_up", "score_4_up")
PONY_SOURCES = ("source_anime", "source_anime", "source_cartoon", "source_pony")
PONY_RATING = {"PG": "rating_safe", "PG13": "rating_questionable", "R": "rating_questionable",
               "X": "rating_explicit", "XXX": "rating_explicit"}
BOORU_SOLO = ("solo", "looking_at_viewer", "looking at viewer", "smile", "blush", "upper_body",
              "cowboy_shot", "full_body", "standing", "sitting", "simple_background",
              "white_background", "solo_focus", "looking_to_the_side", "parted_lips", "closed_mouth")
BOORU_FEMALE = ("long_hair", "short_hair", "blonde_hair", "black_hair", "silver_hair", "pink_hair",
                "blue_eyes", "red_eyes", "green_eyes", "twintails", "ponytail", "ahoge",
                "blunt_bangs", "sidelocks", "animal_ears", "heterochromia", "hair_ornament",
                "earrings", "medium_breasts", "large_breasts")
BOORU_MALE = ("short_hair", "black_hair", "spiky_hair", "brown_eyes", "muscular", "beard",
              "male_focus", "jacket", "sword")
REALISTIC = ("photorealistic", "realistic", "RAW photo", "dslr", "film grain", "detailed skin",
             "skin pores", "8k uhd", "soft lighting", "bokeh", "portrait", "analog photo")
CLOTHING = ("dress", "white dress", "hoodie", "school of magic robe", "armor", "kimono", "jeans",
            "leather jacket", "sweater", "business suit", "sundress", "witch hat", "cape")
SUGGESTIVE = ("cleavage", "bikini", "swimsuit", "tight dress", "sexy", "off shoulder",
              "short skirt", "crop top", "midriff")
MATURE = ("lingerie", "underwear", "see-through", "seductive", "sexy", "cleavage",
          "large_breasts", "lace lingerie", "stockings", "thighhighs", "bedroom eyes")
EXPLICIT_X = ("nude", "naked", "completely nude", "topless", "nipples", "nsfw", "bottomless",
              "pubic hair", "uncensored")
EXPLICIT_XXX = ("sex", "explicit", "nsfw", "spread legs", "pussy", "uncensored", "cum",
                "hentai", "vaginal", "orgasm", "porn")
SETTING = ("outdoors", "indoors", "city street", "night", "beach", "forest", "bedroom", "cafe",
           "cyberpunk city", "neon lights", "sunset", "snow", "rooftop", "library", "onsen",
           "fantasy castle", "space station")
STYLE = ("cinematic lighting", "volumetric lighting", "depth of field", "digital painting",
         "oil painting", "anime style", "watercolor", "concept art", "studio lighting",
         "dramatic lighting", "vibrant colors", "pastel colors", "octane render", "unreal engine")
SCENES = ("landscape, mountains, lake, sunrise", "a cozy cabin in a snowy forest",
          "cyberpunk city at night, rain, neon signs", "a red fox in autumn leaves",
          "still life of fruit on a table", "a spaceship above an alien planet",
          "a medieval castle on a cliff", "a cute cat sleeping on a sofa", "underwater coral reef",
          "a steampunk airship", "japanese garden, cherry blossoms", "a dragon flying over the sea")
SENTENCE_SUBJECTS = {
    "female": ("A photo of a woman", "A portrait of a woman", "An elegant woman",
               "A woman"),
    "male": ("A photo of a man", "A portrait of a man", "An old fisherman", "A knight"),
}
SENTENCE_DETAILS = ("with long red hair", "wearing a leather jacket", "standing in the rain",
                    "in a neon-lit street", "sitting in a cafe", "on a beach at sunset",
                    "with freckles and green eyes", "in a sunlit meadow", "reading a book")
NEGATIVE = ("worst quality", "low quality", "normal quality", "lowres", "bad anatomy", "bad hands",
            "text", "error", "missing fingers", "extra digit", "fewer digits", "cropped",
            "jpeg artifacts", "signature", "watermark", "username", "blurry", "deformed", "ugly",
            "mutated hands", "poorly drawn face", "extra limbs", "easynegative",
            "(worst quality:1.4)", "(low quality:1.4)", "bad proportions", "disfigured")
NEGATIVE_PONY = ("score_6", "score_5", "score_4", "source_furry", "source_pony")
NEGATIVE_SFW = ("nsfw", "nude", "nipples")
#: Chance that a person in the prompt is a woman, by level (NSFW content centres on women).
FEMALE_SUBJECT_P = {"PG": 0.55, "PG13": 0.70, "R": 0.88, "X": 0.92, "XXX": 0.90}
#: Chance that a PG prompt has a person at all (others are scenes).
PG_PERSON_P = 0.6
#: Share of prompted images with an empty negative prompt.
EMPTY_NEGATIVE_SHARE = 0.2
#: The base model whose prompts carry score_/source_/rating_ tokens.
PONY_BASE = "Pony"


def _weighted(rnd: random.Random, token: str, p: float = 0.1) -> str:
    """``(token:w)`` with probability ``p``: the attention-weight syntax of prompts."""
    if rnd.random() < p:
        return f"({token}:{rnd.choice(('0.8', '1.1', '1.2', '1.3', '1.4'))})"
    return token


def _tag_prompt(rnd: random.Random, level: str, base: str) -> list[str]:
    """Tokens of a booru/tag-style prompt for one (level, base model) class."""
    parts: list[str] = []
    pony = base == PONY_BASE or (base == "SDXL 1.0" and rnd.random() < 0.05)
    if pony:
        parts += list(PONY_SCORES[: rnd.randint(3, len(PONY_SCORES))])
        parts += [rnd.choice(PONY_SOURCES), PONY_RATING[level]]
    else:
        parts += rnd.sample(QUALITY, rnd.randint(1, 3))
    if level == "PG" and rnd.random() > PG_PERSON_P:
        parts += [rnd.choice(SCENES)] + rnd.sample(STYLE, rnd.randint(1, 3))
        return parts
    female = rnd.random() < FEMALE_SUBJECT_P[level]
    anime = rnd.random() < (0.75 if pony else 0.5)
    if anime:
        parts += ["1girl" if female else "1boy"]
        parts += rnd.sample(BOORU_SOLO, rnd.randint(1, 4))
        parts += rnd.sample(BOORU_FEMALE if female else BOORU_MALE, rnd.randint(1, 4))
    else:
        parts += [rnd.choice(("photo of a beautiful woman", "woman", "adult woman", "1girl")
                             if female else ("photo of a man", "man", "handsome man"))]
        parts += rnd.sample(REALISTIC, rnd.randint(1, 4))
    if level == "PG":
        parts += rnd.sample(CLOTHING, 1)
    elif level == "PG13":
        parts += rnd.sample(SUGGESTIVE, rnd.randint(1, 2))
    elif level == "R":
        parts += rnd.sample(MATURE, rnd.randint(1, 3))
        if rnd.random() < 0.3:
            parts.append("nsfw")
    elif level == "X":
        parts += rnd.sample(EXPLICIT_X, rnd.randint(2, 3))
    else:
        parts += rnd.sample(EXPLICIT_X, rnd.randint(1, 2)) + rnd.sample(EXPLICIT_XXX, rnd.randint(2, 4))
    parts += rnd.sample(SETTING, rnd.randint(0, 2)) + rnd.sample(STYLE, rnd.randint(0, 3))
    return [_weighted(rnd, p) for p in dict.fromkeys(parts)]  # drop repeats, keep order


def _sentence_prompt(rnd: random.Random, level: str) -> list[str]:
    """A natural-language prompt (how Flux prompts are mostly written)."""
    if level == "PG" and rnd.random() > PG_PERSON_P:
        return [rnd.choice(SCENES).capitalize(), rnd.choice(STYLE)]
    female = rnd.random() < FEMALE_SUBJECT_P[level]
    sentence = f"{rnd.choice(SENTENCE_SUBJECTS['female' if female else 'male'])} " \
               f"{rnd.choice(SENTENCE_DETAILS)}"
    extra = {"PG": (), "PG13": SUGGESTIVE, "R": MATURE, "X": EXPLICIT_X, "XXX": EXPLICIT_XXX}[level]
    parts = [sentence]
    if extra:
        parts += rnd.sample(extra, rnd.randint(1, 3))
    return parts + rnd.sample(STYLE, rnd.randint(1, 2)) + rnd.sample(REALISTIC, rnd.randint(0, 2))


def compose_prompt(rnd: random.Random, level: str, base: str) -> str:
    """One comma-separated positive prompt for the (level, base model) class."""
    sentence_p = 0.8 if base == "Flux.1 D" else 0.1 if base == "SDXL 1.0" else 0.0
    parts = _sentence_prompt(rnd, level) if rnd.random() < sentence_p else _tag_prompt(rnd, level, base)
    return ", ".join(parts)


def compose_negative(rnd: random.Random, pony: bool) -> str:
    """One negative prompt; Pony-style ones start with low score tokens."""
    parts = list(NEGATIVE_PONY[: rnd.randint(3, len(NEGATIVE_PONY))]) if pony else []
    parts += rnd.sample(NEGATIVE, rnd.randint(3, 10))
    if rnd.random() < 0.15:
        parts += rnd.sample(NEGATIVE_SFW, rnd.randint(1, 2))
    return ", ".join(parts)


@dataclass(frozen=True)
class PromptPools:
    """Distinct prompts per (level, base model) class, and negative prompts."""

    positive: pa.StringArray   # class c occupies [c * size, (c + 1) * size)
    size: int
    negative: pa.StringArray   # index 0 = empty; then general, then Pony-style
    n_negative_general: int
    n_negative_pony: int


def prompt_pool_per_class(params: SynthParams) -> int:
    """Distinct prompts per class: one per ~50 images, between 100 and ``prompt_pool_size``."""
    return max(1, min(params.prompt_pool_size, max(100, params.n_images // 50)))


def build_prompt_pools(params: SynthParams, base_names: Sequence[str]) -> PromptPools:
    """Seeded prompt pools; built once per snapshot (a loop per pool entry, not per image)."""
    rnd = seeded_python_random(params.seed, _STREAM_POOLS)
    size = prompt_pool_per_class(params)
    positive = [compose_prompt(rnd, level, base)
                for level in PROMPT_LEVELS for base in base_names for _ in range(size)]
    n_neg = max(50, size // 2)
    negative = [""] + [compose_negative(rnd, False) for _ in range(n_neg)] \
        + [compose_negative(rnd, True) for _ in range(n_neg)]
    return PromptPools(pa.array(positive, pa.string()), size, pa.array(negative, pa.string()),
                       n_neg, n_neg)


# --------------------------------------------------------------------------- names
_FIRST_ONSETS = ("Va", "Me", "Li", "Ka", "So", "Ri", "Ela", "Na", "Ty", "Mi", "Ze", "Lo", "Ara",
                 "Cy", "Da", "Fe", "Iri", "Jo", "Ma", "Se")
_FEMALE_ENDINGS = ("lena", "rina", "lia", "vanna", "mira", "thea", "nelle", "risa", "dora", "lyn")
_MALE_ENDINGS = ("ron", "dric", "lan", "mar", "vos", "tan", "ric", "dan", "bert", "mund")
#: Common given names: with an invented surname the full name stays fictional, and a gender
#: guesser on first names gets something to work with (as on real data).
_FEMALE_GIVEN = ("Anna", "Maria", "Elena", "Sofia", "Laura", "Julia", "Emma", "Nina", "Clara", "Lena")
_MALE_GIVEN = ("Marco", "David", "Lukas", "Adrian", "Felix", "Oscar", "Victor", "Leon", "Hugo", "Daniel")
_SURNAME_PARTS = (("Mor", "Vel", "Ash", "Brim", "Cor", "Dun", "Ferr", "Gal", "Hol", "Kest", "Lun",
                   "Quar", "Rav", "Stor", "Thal", "Wyn"),
                  ("castle", "brook", "wick", "mere", "holt", "vane", "ridge", "moor", "field",
                   "dale", "stone", "crest", "ford", "lowe"))
_STYLE_WORDS = (("Neon", "Dreamy", "Ink", "Pastel", "Gothic", "Retro", "Vapor", "Ethereal", "Gritty",
                 "Cel", "Painterly", "Cozy", "Dark", "Golden"),
                ("Dream", "Noir", "Bloom", "Sketch", "Glow", "Wave", "Fantasy", "Shade", "Canvas", "Hour"))
_CHARACTER_SYLLABLES = ("Aki", "Ren", "Yu", "Sora", "Hana", "Kai", "Mio", "Rin", "Tsu", "Nao",
                        "Shi", "Ko", "Ema", "Ryo")
_CONCEPTS = ("Detail Tweaker", "Better Hands", "Film Grain", "Add Detail", "Glowing Eyes",
             "Wet Look", "Paper Cutout", "Double Exposure", "Hologram", "Liquid Metal",
             "Bokeh Enhancer", "Crystal Skin")
_CLOTHES = ("Latex Bodysuit", "Summer Dress", "Plate Armor", "Cozy Sweater", "Gothic Dress",
            "Bikini Set", "Business Suit", "Witch Outfit", "Kimono Pack", "Lingerie Set")
_POSES = ("Dynamic Pose", "Sitting Pose Pack", "Over the Shoulder", "Hands on Hips",
          "Lying on Bed", "Action Pose", "Back View")
_CHECKPOINT_WORDS = (("Dream", "Any", "Photo", "Lumen", "Nova", "Vivid", "Astra", "Real", "Pixel",
                      "Mystic", "Epic", "Hyper"),
                     ("Forge", "Mix", "Vision", "Diffusion", "Blend", "Merge", "Craft", "Shaper"))
_PERSON_CUES = ("celebrity", "actress", "real person", "influencer", "instagram model",
                "singer", "tiktoker", "cosplayer", "fashion model", "streamer")
_MALE_CUES = ("celebrity", "actor", "real person", "influencer", "singer", "athlete", "streamer")
#: Name suffixes that creators use to mark a model's base model.
_BASE_SUFFIXES = {"SD 1.5": ("", "", " v2", " - LoRA"), "SDXL 1.0": ("", " XL", " (SDXL)"),
                  "Pony": ("", " [Pony]", " Pony"), "Flux.1 D": ("", " | Flux", " Flux")}


def base_suffix(rnd: random.Random, base: str) -> str:
    """A name suffix that fits the base model (often none)."""
    return rnd.choice(_BASE_SUFFIXES.get(base, ("",)))


def _gender_of_given(gender: str) -> str:
    """Gender of the (first) given name: a mixed model is named after its woman first."""
    return "female" if gender in ("female", "mixed") else "male"


def fictional_person_name(rnd: random.Random, gender: str) -> str:
    """An invented full name, e.g. 'Valena Morcastle' (never a real person's name)."""
    if rnd.random() < 0.4:
        given = rnd.choice(_FEMALE_GIVEN if gender == "female" else _MALE_GIVEN)
    else:
        given = rnd.choice(_FIRST_ONSETS) + rnd.choice(_FEMALE_ENDINGS if gender == "female" else _MALE_ENDINGS)
    return f"{given} {rnd.choice(_SURNAME_PARTS[0])}{rnd.choice(_SURNAME_PARTS[1])}"


def slugify(name: str) -> str:
    """Lower-case slug of a model name as used in ``<lora:slug:w>`` calls."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model"


@dataclass(frozen=True)
class ModelText:
    """Name, description, tags and trained words of one model."""

    name: str
    description: str
    tags: list[str]
    trained_words: list[str]


def person_model_text(rnd: random.Random, gender: str, nsfw: bool, base: str) -> ModelText:
    """Text of a real-person model: fictional name, person cues, gender tag, trigger words."""
    given_gender = _gender_of_given(gender)
    name = fictional_person_name(rnd, given_gender)
    if gender == "mixed":
        name = f"{name} & {fictional_person_name(rnd, 'male')}"
    cues = rnd.sample(_PERSON_CUES if given_gender == "female" else _MALE_CUES, rnd.randint(1, 3))
    gender_tags = {"female": ["woman"], "male": ["man"], "mixed": ["woman", "man", "couple"]}[gender]
    tags = cues + gender_tags + rnd.sample(("person", "photorealistic", "realistic", "portrait"),
                                           rnd.randint(0, 2))
    if nsfw and rnd.random() < 0.5:
        tags.append(rnd.choice(("sexy", "nsfw")))
    slug = slugify(name.split(" & ")[0])
    trained = [name.split(" & ")[0].lower(), f"{slug[:3]}{slug.split('_')[-1][:3]}woman"
               if given_gender == "female" else f"{slug[:3]}{slug.split('_')[-1][:3]}man"]
    description = (f"<p>Likeness of {name}, {cues[0]}. Trained on {rnd.randint(20, 200)} "
                   f"photos.</p><p>Trigger words: <b>{trained[0]}</b></p>")
    return ModelText(name + base_suffix(rnd, base), description, tags, trained)


def adapter_model_text(rnd: random.Random, kind: str, nsfw: bool, base: str) -> ModelText:
    """Text of a non-person adapter: a style, fictional character, concept, clothing or pose."""
    if kind == "style":
        name = f"{rnd.choice(_STYLE_WORDS[0])} {rnd.choice(_STYLE_WORDS[1])} Style"
        tags = ["style", rnd.choice(("art style", "anime", "illustration", "painting", "photography"))]
        trained = [name.lower()]
        blurb = "An art style."
    elif kind == "character":
        first = "".join(rnd.sample(_CHARACTER_SYLLABLES, 2))
        name = f"{first} {''.join(rnd.sample(_CHARACTER_SYLLABLES, 2))} (original character)"
        female = rnd.random() < 0.8
        tags = ["character", "anime", "original character", "girl" if female else "boy", "fictional"]
        trained = [first.lower()]
        blurb = "A fictional anime-style character."
    elif kind == "concept":
        name = rnd.choice(_CONCEPTS)
        tags = ["concept", rnd.choice(("tool", "detail", "effect", "lighting"))]
        trained = [slugify(name).replace("_", " ")]
        blurb = "A concept / effect helper."
    elif kind == "clothing":
        name = rnd.choice(_CLOTHES)
        tags = ["clothing", "outfit", rnd.choice(("fashion", "costume", "woman"))]
        trained = [name.lower()]
        blurb = "An outfit."
    else:
        name = rnd.choice(_POSES)
        tags = ["pose", "poses", rnd.choice(("woman", "man", "anime"))]
        trained = [name.lower()]
        blurb = "A pose helper."
    if nsfw and rnd.random() < 0.6:
        tags += rnd.sample(("nsfw", "sexy", "nude", "hentai", "lingerie"), rnd.randint(1, 2))
    name = name + base_suffix(rnd, base)
    description = f"<p>{blurb}</p><p>Use <i>{trained[0]}</i> at weight 0.6–1.0.</p>"
    return ModelText(name, description, tags, trained)


def checkpoint_text(rnd: random.Random, base: str, nsfw: bool) -> ModelText:
    """Text of a checkpoint (a full fine-tuned or merged model)."""
    suffix = {"SD 1.5": "", "SDXL 1.0": " XL", "Pony": " Pony", "Flux.1 D": " Flux"}.get(base, "")
    name = f"{rnd.choice(_CHECKPOINT_WORDS[0])}{rnd.choice(_CHECKPOINT_WORDS[1])}{suffix} " \
           f"v{rnd.randint(1, 9)}"
    tags = ["base model", "checkpoint", rnd.choice(("photorealistic", "anime", "semi-realistic", "art"))]
    if nsfw and rnd.random() < 0.5:
        tags.append("nsfw")
    description = f"<p>A {base} merge tuned for {tags[2]} images.</p>"
    return ModelText(name, description, tags, [])


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelCatalog:
    """The models table and what image generation needs from it."""

    table: pa.Table
    checkpoint_pools: tuple[WeightedPool, ...]   # one per base model
    lora_pools: tuple[WeightedPool, WeightedPool]  # (sfw models, nsfw models)
    lora_call_suffixes: pa.StringArray           # ", <lora:…>" per model (null if not callable)
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
    LoRA to call: one checkpoint per base model at its launch, one SFW and one NSFW LoRA first.
    """
    forced_month = np.array(list(plan.base_launch_month) + [0, 0])
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
    nsfw[forced_rows[n_base:]] = (False, True)

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
        creator_rank=sample_zipf(rng, zipf_cdf(n_users, params.user_zipf_exponent), n),
    )
    order = np.argsort(created, kind="stable")
    return ModelDraws(ids=MODEL_ID_BASE + np.cumsum(rng.integers(1, 8, n)),
                      **{name: values[order] for name, values in draws.items()})


def model_text(rnd: random.Random, draws: ModelDraws, i: int, type_name: str, base: str) -> ModelText:
    """Name, description, tags and trained words of model ``i``, by what it is."""
    if draws.poi[i]:
        return person_model_text(rnd, str(draws.gender[i]), bool(draws.nsfw[i]), base)
    if type_name == "Checkpoint":
        return checkpoint_text(rnd, base, bool(draws.nsfw[i]))
    return adapter_model_text(rnd, str(draws.kind[i]), bool(draws.nsfw[i]), base)


def lora_call_suffix(rnd: random.Random, text: ModelText) -> str:
    """``", <lora:slug:w>"`` (sometimes followed by a trained word), appended to prompts as is."""
    call = f"<lora:{slugify(text.name)}:{rnd.choice(('0.6', '0.7', '0.8', '0.9', '1'))}>"
    if text.trained_words and rnd.random() < 0.5:
        call += f", {text.trained_words[0]}"
    return ", " + call


def model_versions(draws: ModelDraws, plan: SnapshotPlan, texts: list[ModelText],
                   rng: np.random.Generator) -> pa.ListArray:
    """``modelVersions`` lists built from flat per-version arrays (first version = oldest)."""
    owner = np.repeat(np.arange(len(draws.ids)), draws.n_versions)
    offsets = np.concatenate([[0], np.cumsum(draws.n_versions)]).astype(np.int32)
    rank = np.arange(len(owner)) - offsets[:-1][owner]
    names = pa.array([f"v{k + 1}.0" for k in range(int(draws.n_versions.max()))], pa.string())
    trained = pa.array([t.trained_words for t in texts], pa.list_(pa.string()))
    flat = pa.StructArray.from_arrays([
        pa.array(VERSION_ID_BASE + np.arange(len(owner)), pa.int64()),
        names.take(pa.array(rank)),
        iso_utc_ms(version_dates(rng, draws.created, draws.n_versions, int(plan.bounds_ms[-1]) - 1)),
        pa.array(plan.base_names, pa.string()).take(pa.array(draws.base_idx[owner])),
        trained.take(pa.array(owner)),
    ], fields=list(MODEL_VERSION_TYPE))
    return pa.ListArray.from_arrays(pa.array(offsets), flat, type=pa.list_(MODEL_VERSION_TYPE))


def models_table(draws: ModelDraws, plan: SnapshotPlan, texts: list[ModelText],
                 users: pa.StringArray, rng: np.random.Generator) -> pa.Table:
    """The models table in the nested shape of ``/api/v1/models`` (first version = oldest)."""
    versions = model_versions(draws, plan, texts, rng)
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
    rng = seeded_rng(params.seed, _STREAM_MODELS)
    rnd = seeded_python_random(params.seed, _STREAM_MODELS)
    draws = draw_models(params, plan, rng, len(users))
    texts: list[ModelText] = []
    calls: list[str | None] = []
    for i in range(len(draws.ids)):  # one loop per model (thousands), never per image
        type_name, base = plan.type_names[draws.type_idx[i]], plan.base_names[draws.base_idx[i]]
        texts.append(model_text(rnd, draws, i, type_name, base))
        calls.append(lora_call_suffix(rnd, texts[-1]) if type_name in LORA_CALLABLE_TYPES else None)
    table = models_table(draws, plan, texts, users, rng)

    popularity = draws.downloads + 1.0
    is_checkpoint = np.array([plan.type_names[t] == "Checkpoint" for t in draws.type_idx])
    callable_ = np.array([c is not None for c in calls])
    checkpoint_pools = tuple(
        WeightedPool.of(np.flatnonzero(is_checkpoint & (draws.base_idx == b)), draws.month, popularity)
        for b in range(len(plan.base_names)))
    lora_pools = (WeightedPool.of(np.flatnonzero(callable_ & ~draws.nsfw), draws.month, popularity),
                  WeightedPool.of(np.flatnonzero(callable_ & draws.nsfw), draws.month, popularity))
    return ModelCatalog(table, checkpoint_pools, lora_pools, pa.array(calls, pa.string()), draws.ids)


# --------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageContext:
    """Everything image chunks share: the plan, pools, users and models."""

    params: SynthParams
    plan: SnapshotPlan
    pools: PromptPools
    users: pa.StringArray
    user_cdf: np.ndarray
    catalog: ModelCatalog
    month_first_row: np.ndarray  # (M+1,) cumulative image counts


def _image_levels(rng: np.random.Generator, plan: SnapshotPlan, month: np.ndarray,
                  has_prompt: np.ndarray, has_lora: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is_nsfw, browsingLevel bit) per image, with the planted LoRA odds ratio."""
    p = np.where(~has_prompt, plan.nsfw_share[month],
                 np.where(has_lora, plan.nsfw_share_lora[month], plan.nsfw_share_no_lora[month]))
    is_nsfw = rng.random(len(month)) < p
    nsfw_bits = np.array([schema.LEVEL_BITS[x] for x in NSFW_LEVELS])
    sfw_bits = np.array([schema.LEVEL_BITS[x] for x in SFW_LEVELS])
    top_nsfw = nsfw_bits[sample_rows(rng, np.cumsum(plan.nsfw_level_mix[month], axis=1))]
    top_sfw = sfw_bits[sample_rows(rng, np.cumsum(plan.sfw_level_mix[month], axis=1))]
    return is_nsfw, np.where(is_nsfw, top_nsfw, top_sfw)


def _lora_calls(rng: np.random.Generator, ctx: ImageContext, month: np.ndarray,
                n_calls: np.ndarray, is_nsfw: np.ndarray) -> list[pa.Array]:
    """Columns of ``", <lora:…>"`` call text to append (empty where the image has fewer calls)."""
    sfw_pool, nsfw_pool = ctx.catalog.lora_pools
    columns = []
    for k in range(1, 1 + len(ctx.params.lora_extra_call_probs) + 1):
        rows = np.flatnonzero(n_calls >= k)
        # Calls mostly name models of the image's own class (NSFW images call NSFW LoRAs).
        want_nsfw = np.where(rng.random(len(rows)) < ctx.params.lora_class_match,
                             is_nsfw[rows], ~is_nsfw[rows])
        positions = np.empty(len(rows), dtype=np.int64)
        for flag, pool in ((False, sfw_pool), (True, nsfw_pool)):
            sel = want_nsfw == flag
            source = pool if len(pool) else (nsfw_pool if not flag else sfw_pool)
            positions[sel] = source.sample(rng, month[rows][sel])
        index = np.zeros(len(month), dtype=np.int64)
        index[rows] = positions
        taken = ctx.catalog.lora_call_suffixes.take(pa.array(index, mask=n_calls < k))
        columns.append(pc.fill_null(taken, ""))
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
                      level: np.ndarray, base_idx: np.ndarray, has_prompt: np.ndarray,
                      has_lora: np.ndarray, is_nsfw: np.ndarray) -> pa.Array:
    """Pooled prompt of the image's (level, base model) class plus its LoRA calls; null if none."""
    prompt_bits = [schema.LEVEL_BITS[x] for x in PROMPT_LEVELS]
    prompt_level = np.searchsorted(prompt_bits, np.minimum(level, prompt_bits[-1]))  # Blocked → XXX
    prompt_class = prompt_level * len(ctx.plan.base_names) + base_idx
    index = prompt_class * ctx.pools.size + rng.integers(0, ctx.pools.size, len(month))
    base_prompt = ctx.pools.positive.take(pa.array(index, mask=~has_prompt))
    extra = rng.random(len(month))
    n_calls = has_lora * (1 + sum((extra < p).astype(np.int64) for p in ctx.params.lora_extra_call_probs))
    calls = _lora_calls(rng, ctx, month, n_calls, is_nsfw)
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
    rng = seeded_rng(params.seed, _STREAM_IMAGES, chunk_index)
    rows = np.arange(first_row, first_row + n_rows, dtype=np.int64)
    month = np.searchsorted(ctx.month_first_row, rows, side="right") - 1
    # Row j of a month with c images sits in slot j of c equal slots: times increase with rows.
    slot = (rows - ctx.month_first_row[month] + rng.random(n_rows)) / plan.image_counts[month]
    created = plan.bounds_ms[month] + (slot * np.diff(plan.bounds_ms)[month]).astype(np.int64)
    ids = IMAGE_ID_BASE + IMAGE_ID_STRIDE * rows + rng.integers(0, IMAGE_ID_STRIDE, n_rows)

    has_prompt = rng.random(n_rows) >= params.missing_prompt_share
    has_lora = has_prompt & (rng.random(n_rows) < plan.lora_share[month])
    is_nsfw, level = _image_levels(rng, plan, month, has_prompt, has_lora)
    pg13_flag = (level == schema.LEVEL_BITS["PG13"]) & (rng.random(n_rows) < params.pg13_flagged_share)
    base_cum = np.where(is_nsfw[:, None], np.cumsum(plan.base_mix_nsfw, axis=1)[month],
                        np.cumsum(plan.base_mix, axis=1)[month])
    base_idx = sample_rows(rng, base_cum)
    checkpoint = _checkpoints(rng, ctx, month, base_idx)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "createdAt": iso_utc_ms(created),
        "url": fake_image_urls(rng, n_rows),
        "positivePrompt": _positive_prompts(rng, ctx, month, level, base_idx, has_prompt, has_lora, is_nsfw),
        "negativePrompt": _negative_prompts(rng, ctx, base_idx, has_prompt),
        "nsfw": pa.array(is_nsfw | pg13_flag, pa.bool_()),
        "browsingLevel": pa.array(level, pa.int64()),
        "statsSummary": _stats_json(rng, params, is_nsfw),
        "usernameHash": ctx.users.take(pa.array(sample_zipf(rng, ctx.user_cdf, n_rows))),
        "baseModel": pa.array(plan.base_names, pa.string()).take(pa.array(base_idx)),
        "modelId": pa.array(ctx.catalog.ids[checkpoint], pa.int64()),
    }, schema=IMAGES_SCHEMA)


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
    rng = seeded_rng(params.seed, _STREAM_MESSY, 0)
    templates = rng.integers(last_chunk_first_row(params), params.n_images, params.messy_rows)
    return MessyPlan(deal_kinds(params.messy_rows, len(MESSY_IMAGE_KINDS)), templates)


def messy_model_plan(params: SynthParams) -> MessyPlan:
    """Kinds and template rows (positions in the good models table) of the messy model rows."""
    rng = seeded_rng(params.seed, _STREAM_MESSY, 1)
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
    urls = fake_image_urls(seeded_rng(params.seed, _STREAM_MESSY, 2), n)
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


# --------------------------------------------------------------------------- writing
def write_parquet_atomic(table: pa.Table, dest: Path) -> None:
    """Write ``table`` to ``dest`` via ``dest.tmp`` and an atomic rename (no partial files)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        # Dictionaries only where values repeat (pooled prompts, users): unique columns such as
        # url and createdAt would only pay for a dictionary that is thrown away.
        pq.write_table(table, tmp, compression="zstd", row_group_size=250_000,
                       use_dictionary=[c for c in DICTIONARY_COLUMNS if c in table.column_names])
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


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
    write_parquet_atomic(models, model_file)
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
            pending = writer.submit(write_parquet_atomic, table, dest)
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
