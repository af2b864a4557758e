"""Parameters of the synthetic snapshot: constants, month helpers, :class:`SynthParams`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from ..parameters import default


# --------------------------------------------------------------------------- constants
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
STREAM_MODELS, STREAM_POOLS, STREAM_USERS, STREAM_IMAGES, STREAM_MESSY, STREAM_LINK = 0, 1, 2, 3, 4, 5
#: Users' traits (join month, NSFW and adapter propensity); per image, who posts it and what it
#: is (prompt, adapter, real-person adapter, NSFW); creators of real-person models.
STREAM_USER_TRAITS, STREAM_IMAGE_DRAWS, STREAM_CREATORS = 6, 7, 8

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
MODEL_FILE_TYPE = pa.struct([pa.field("name", pa.string()), pa.field("type", pa.string())])
MODEL_VERSION_TYPE = pa.struct([
    pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("createdAt", pa.string()),
    pa.field("baseModel", pa.string()), pa.field("trainedWords", pa.list_(pa.string())),
    pa.field("files", pa.list_(MODEL_FILE_TYPE)),
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

    seed: int = field(default_factory=lambda: default("seed"))
    n_images: int = field(default_factory=lambda: default("sample_images"))
    n_models: int = field(default_factory=lambda: default("sample_models"))
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
    # LoRA: share of prompted images with >= 1 <lora:…> call; NSFW odds ratio with vs without
    # within a user and month (the crude ratio over users and months is larger: see users below).
    lora_share_by_month: dict[str, float] = field(default_factory=lora_share_path)
    lora_nsfw_odds_ratio: float = 2.5
    # Real-person adapters: share of adapter-calling images whose first call names a real-person
    # adapter (first → last month), cut by ``real_person_break_factor`` from
    # ``real_person_break_month`` on (a moderation break); NSFW odds ratio of such images vs other
    # adapter-calling images of the same user and month.
    real_person_adapter_share_start: float = 0.08
    real_person_adapter_share_end: float = 0.20
    real_person_break_month: str = "2024-06"
    real_person_break_factor: float = 0.4
    real_person_adapter_nsfw_odds_ratio: float = 1.8
    # Probability of a 2nd and of a 3rd call, given a LoRA image.
    lora_extra_call_probs: tuple[float, float] = (0.35, 0.12)
    # Probability that a call names a model of the image's own NSFW class (nsfw/sfw model).
    lora_class_match: float = 0.75
    # Probability that a call names the adapter by a name the models table does not hold (a
    # renamed or re-uploaded file), so the link cannot resolve it.
    unresolvable_call_share: float = 0.3
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
    # Users join month by month (cohort sizes grow by ``user_join_growth``); an image of month m
    # comes from a cohort joined by m (in proportion to its size), then from a user of that
    # cohort by Zipf activity. Each user's NSFW logit is shifted by ``user_propensity_sd`` × a
    # standard normal plus ``user_cohort_effect`` per year of joining later (so the rise is part
    # within users, part who posts); a user's adapter logit is shifted by
    # ``user_adapter_propensity`` × the same normal (NSFW-prone users call adapters more). The
    # monthly paths are met in expectation over users, not by the realised ones.
    user_join_growth: float = 1.10
    user_propensity_sd: float = 1.0
    user_cohort_effect: float = 0.5
    user_adapter_propensity: float = 0.8
    # Real-person models are made by a pool of about one creator per
    # ``real_person_models_per_creator`` of them, chosen by Zipf activity with this exponent.
    real_person_models_per_creator: float = 3.0
    real_person_creator_zipf_exponent: float = 1.2

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
                 "unresolvable_call_share", "model_nsfw_share_start", "model_nsfw_share_end",
                 "real_person_adapter_share_start", "real_person_adapter_share_end"):
        if not 0.0 <= getattr(params, name) <= 1.0:
            problems.append(f"{name} must be in [0, 1]")
    if params.real_person_female_share + params.real_person_mixed_share > 1.0:
        problems.append("real_person_female_share + real_person_mixed_share must be <= 1")
    if not any(launch <= params.start_month for _, launch, *_ in params.base_models):
        problems.append("some base model must launch by start_month (images need one from the start)")
    if not any(t in LORA_CALLABLE_TYPES for t, *_ in params.model_types):
        problems.append("model_types needs a LoRA-callable type")
    if max(params.real_person_adapter_share_start, params.real_person_adapter_share_end) \
            * max(1.0, params.real_person_break_factor) > 1.0:
        problems.append("real-person adapter shares times real_person_break_factor must stay <= 1")
    try:
        np.datetime64(params.real_person_break_month, "M")
    except ValueError:
        problems.append("real_person_break_month must be a month YYYY-MM")
    for name in ("lora_nsfw_odds_ratio", "real_person_nsfw_odds_ratio", "nsfw_like_ratio",
                 "real_person_download_ratio", "monthly_growth", "model_monthly_growth",
                 "real_person_adapter_nsfw_odds_ratio", "user_join_growth",
                 "real_person_models_per_creator", "real_person_creator_zipf_exponent"):
        if getattr(params, name) <= 0:
            problems.append(f"{name} must be > 0")
    if params.user_propensity_sd < 0 or params.real_person_break_factor < 0:
        problems.append("user_propensity_sd and real_person_break_factor must be >= 0")
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


