"""The per-month plan shared by the generator and the planted truth, and seeded sampling."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from .params import SynthParams, month_bounds_ms


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


