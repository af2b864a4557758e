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
    nsfw_share: np.ndarray           # (M,) P(level >= R), over users
    nsfw_share_no_lora: np.ndarray   # (M,) P(level >= R | prompted, no LoRA call), over users
    nsfw_share_lora: np.ndarray      # (M,) P(level >= R | >= 1 LoRA call), over users
    lora_share: np.ndarray           # (M,) P(>= 1 LoRA call | prompted), over users
    # Users: an image of month m comes from cohort c (users who joined in month c) with
    # probability cohort_mix[m, c]; its NSFW logit is nsfw_logit[m] + the user's propensity
    # (+ log lora_nsfw_odds_ratio with an adapter call), its adapter logit lora_logit[m] + the
    # user's adapter shift; both calibrated so that the shares above hold over users.
    cohort_sizes: np.ndarray         # (M,) users joining in each month
    cohort_mix: np.ndarray           # (M, M) P(cohort | month of the image)
    nsfw_logit: np.ndarray           # (M,)
    lora_logit: np.ndarray           # (M,)
    real_person_share: np.ndarray    # (M,) P(real-person adapter | >= 1 call), break included
    real_person_share_no_break: np.ndarray  # (M,) the same without the break
    nsfw_share_real_person: np.ndarray      # (M,) P(level >= R | real-person adapter), over users
    user_grid: "UserGrid"            # expectations over a month's users (for the planted truth)
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

    Solves ``(1 - e) p0 + e p1 = share`` with ``odds(p1) / odds(p0) = odds_ratio``,
    element-wise. With ``p1 = r p0 / (1 + (r - 1) p0)`` this is the quadratic
    ``A p0² + B p0 - share = 0`` (``A = (1 - e)(r - 1)``, ``B = 1 + (e - share)(r - 1)``), whose
    root in [0, 1] is taken in the form that stays exact when ``A`` is 0 (cheap enough to run
    per image).
    """
    share = np.asarray(share, dtype=np.float64)
    exposed = np.asarray(exposed_share, dtype=np.float64)
    a = (1 - exposed) * (odds_ratio - 1)
    b = 1 + (exposed - share) * (odds_ratio - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p0 = np.clip(np.nan_to_num(2 * share / (b + np.sqrt(np.maximum(b * b + 4 * a * share, 0.0)))),
                     0.0, 1.0)
    p1 = odds_ratio * p0 / (1 - p0 + odds_ratio * p0)
    return p0, p1


# --------------------------------------------------------------------------- users, in expectation
def expit(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow (and without importing scipy, slow to load)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


#: Gauss–Hermite nodes for expectations over a user's standard normal effect.
QUADRATURE_NODES = 32


def normal_quadrature(nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights with ``Σ w f(z) ≈ E f(Z)`` for a standard normal ``Z``."""
    x, w = np.polynomial.hermite.hermgauss(nodes)
    return np.sqrt(2.0) * x, w / np.sqrt(np.pi)


def solve_increasing(mean_of, target: np.ndarray, lo: float = -40.0, hi: float = 40.0,
                     iterations: int = 56) -> np.ndarray:
    """``x`` with ``mean_of(x) == target`` element-wise, for ``mean_of`` increasing (bisection)."""
    target = np.asarray(target, dtype=np.float64)
    low, high = np.full_like(target, lo), np.full_like(target, hi)
    for _ in range(iterations):
        mid = (low + high) / 2
        above = mean_of(mid) > target
        high, low = np.where(above, mid, high), np.where(above, low, mid)
    return (low + high) / 2


def user_nsfw_share(logit: np.ndarray, adapter_p: np.ndarray, prompt_share: float,
                    lora_odds_ratio: float) -> np.ndarray:
    """Expected NSFW share of a user's images in a month: NSFW logit ``logit`` without an adapter
    call, plus ``log lora_odds_ratio`` with one; a call in a share ``prompt_share × adapter_p``."""
    with_call = prompt_share * adapter_p
    return (1 - with_call) * expit(logit) + with_call * expit(logit + np.log(lora_odds_ratio))


def cohort_sizes(n_users: int, n_months: int, growth: float) -> np.ndarray:
    """Users joining in each month (growing by ``growth``); at least one joins in the first."""
    sizes = allocate_counts(n_users, growth_weights(n_months, growth))
    if sizes[0] == 0:
        sizes[int(np.argmax(sizes))] -= 1
        sizes[0] += 1
    return sizes


def cohort_mix(sizes: np.ndarray) -> np.ndarray:
    """(M, M) share of month m's images posted by users who joined in month c (c <= m), in
    proportion to the cohorts' sizes."""
    joined = np.tril(np.ones((len(sizes), len(sizes)))) * sizes[None, :]
    return joined / joined.sum(axis=1, keepdims=True)


def n_users(params: SynthParams) -> int:
    """Users in the pool images and models are drawn from."""
    return max(1, params.n_images // params.images_per_user)


def cohort_years(n_months: int) -> np.ndarray:
    """Years from the window's start to each month's start (the cohort effect's unit)."""
    return np.arange(n_months, dtype=np.float64) / 12.0


@dataclass(frozen=True)
class UserGrid:
    """Expectations over the users who post in a month, by quadrature: an image of month m
    comes from cohort c and a user whose standard normal effect is node k with probability
    ``weight[m, c, k]``."""

    weight: np.ndarray     # (M, C, K)
    eta: np.ndarray        # (1, C, K) the user's NSFW logit shift: σ z + κ years(cohort)
    adapter_p: np.ndarray  # (M, 1, K) P(>= 1 adapter call | prompted): expit(l_m + γ z)

    @classmethod
    def of(cls, params: SynthParams, mix: np.ndarray, lora_logit: np.ndarray) -> "UserGrid":
        """The grid of ``params``' users given the cohort mix and the adapter logits."""
        z, w = normal_quadrature()
        eta = params.user_propensity_sd * z[None, :] \
            + params.user_cohort_effect * cohort_years(mix.shape[1])[:, None]
        adapter_p = expit(lora_logit[:, None] + params.user_adapter_propensity * z[None, :])
        return cls(mix[:, :, None] * w[None, None, :], eta[None], adapter_p[:, None, :])

    def expect(self, values: np.ndarray) -> np.ndarray:
        """(M,) expectation of ``values`` (broadcastable to (M, C, K)) over a month's images."""
        return np.einsum("mck,mck->m", np.broadcast_to(values, self.weight.shape), self.weight)


def calibrate_users(params: SynthParams, nsfw: np.ndarray, lora: np.ndarray,
                    mix: np.ndarray) -> tuple[np.ndarray, np.ndarray, UserGrid]:
    """Monthly NSFW and adapter logits meeting the planted shares over the user distribution,
    and the grid of expectations over users they were calibrated on.

    The adapter logit ``l`` solves ``E expit(l + γZ) = lora``; the NSFW logit ``a`` solves
    ``E_cohort E_Z user_nsfw_share(a + σZ + κ·years(cohort), …) = nsfw``.
    """
    z, w = normal_quadrature()
    lora_logit = solve_increasing(
        lambda x: expit(x[:, None] + params.user_adapter_propensity * z[None, :]) @ w, lora)
    grid = UserGrid.of(params, mix, lora_logit)
    q = 1 - params.missing_prompt_share
    nsfw_logit = solve_increasing(lambda a: grid.expect(user_nsfw_share(
        a[:, None, None] + grid.eta, grid.adapter_p, q, params.lora_nsfw_odds_ratio)), nsfw)
    return nsfw_logit, lora_logit, grid


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


def n_forced_person_models(params: SynthParams) -> int:
    """Real-person LoRAs placed on purpose (a first SFW and NSFW one), when there are people."""
    return 2 if params.real_person_share > 0 else 0


def n_forced_models(params: SynthParams) -> int:
    """Models placed on purpose: a checkpoint per base model, a first SFW and NSFW LoRA, and a
    first SFW and NSFW real-person LoRA (so that real-person calls always find one)."""
    return len(active_base_models(params)) + 2 + n_forced_person_models(params)


def real_person_adapter_share(params: SynthParams, months: Sequence[str],
                              with_break: bool = True) -> np.ndarray:
    """(M,) share of adapter-calling images whose first call names a real-person adapter: linear
    over the window, times the break factor from the break month on; 0 without real people."""
    n = len(months)
    share = (np.linspace(params.real_person_adapter_share_start, params.real_person_adapter_share_end, n)
             if n > 1 else np.array([params.real_person_adapter_share_start]))
    if with_break:
        share = np.where(np.array(months) >= params.real_person_break_month,
                         share * params.real_person_break_factor, share)
    return share if params.real_person_share > 0 else np.zeros(n)


def make_plan(params: SynthParams) -> SnapshotPlan:
    """Derive every per-month quantity of the snapshot from ``params``."""
    months = params.months
    n = len(months)
    nsfw = np.array([params.nsfw_share_by_month[m] for m in months])
    lora = np.array([params.lora_share_by_month[m] for m in months])
    sizes = cohort_sizes(n_users(params), n, params.user_join_growth)
    mix = cohort_mix(sizes)
    nsfw_logit, lora_logit, grid = calibrate_users(params, nsfw, lora, mix)
    person = real_person_adapter_share(params, months)
    # Shares conditional on adapter use, over users; within a user and month, adapter images
    # split into real-person and other ones at the planted odds ratio.
    p0 = expit(nsfw_logit[:, None, None] + grid.eta)
    p1 = expit(nsfw_logit[:, None, None] + grid.eta + np.log(params.lora_nsfw_odds_ratio))
    _, p_person = split_by_odds_ratio(p1, person[:, None, None],
                                      params.real_person_adapter_nsfw_odds_ratio)
    call = grid.adapter_p
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
        nsfw_share=nsfw, nsfw_share_no_lora=grid.expect((1 - call) * p0) / grid.expect(1 - call),
        nsfw_share_lora=grid.expect(call * p1) / grid.expect(call), lora_share=lora,
        cohort_sizes=sizes, cohort_mix=mix, nsfw_logit=nsfw_logit,
        lora_logit=lora_logit, real_person_share=person,
        real_person_share_no_break=real_person_adapter_share(params, months, with_break=False),
        nsfw_share_real_person=grid.expect(call * p_person) / grid.expect(call), user_grid=grid,
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


