"""Who posts: users who join month by month, each more or less NSFW-prone and adapter-prone, and
the draws of each image that depend on its user.

An image of month ``m`` comes from a cohort (users who joined in a month ``c <= m``, in
proportion to the cohorts' sizes), then from a user of that cohort by Zipf activity. Its draws
(who posts it, whether it has a prompt, calls an adapter, calls a real-person adapter, is NSFW)
come from a stream of their own, in that order, so the realised users can be replayed cheaply,
without prompts, for the truth of analyses that depend on who posted (:func:`user_month_truth`,
:func:`shift_share_truth`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from .params import STREAM_IMAGE_DRAWS, STREAM_USER_TRAITS, SynthParams
from .plan import (SnapshotPlan, cohort_years, expit, make_plan, n_users, seeded_rng,
                   split_by_odds_ratio, user_nsfw_share)
from .text import user_hash_pool


# --------------------------------------------------------------------------- the users
@dataclass(frozen=True)
class Population:
    """The users images and models are drawn from, indexed by Zipf rank (0 = most active)."""

    hashes: pa.StringArray      # (U,) user hashes
    cohort: np.ndarray          # (U,) month index the user joined
    nsfw_shift: np.ndarray      # (U,) NSFW logit shift: σ z + κ years(cohort)
    adapter_shift: np.ndarray   # (U,) adapter logit shift: γ z
    by_cohort: np.ndarray       # (U,) users ordered by cohort (by rank within one)
    cum_weight: np.ndarray      # (U + 1,) cumulative Zipf activity in that order, from 0
    cohort_start: np.ndarray    # (M + 1,) first position in ``by_cohort`` of each cohort
    cohort_cum: np.ndarray      # (M, M) cumulative P(cohort | month), each row ending at 1
    fallback: np.ndarray        # (M,) the latest non-empty cohort joined by each month

    def __len__(self) -> int:
        return len(self.cohort)

    def sample(self, rng: np.random.Generator, month: np.ndarray) -> np.ndarray:
        """Users (ranks) posting images of ``month`` (month indices): two uniforms per image."""
        n_months = self.cohort_cum.shape[1]
        flat = (np.arange(n_months)[:, None] + self.cohort_cum).ravel()
        cohort = np.searchsorted(flat, month + rng.random(len(month)), side="right") - month * n_months
        cohort = np.clip(cohort, 0, month)
        first, last = self.cohort_start[cohort], self.cohort_start[cohort + 1]
        cohort = np.where(last > first, cohort, self.fallback[month])  # rounding at a row's end
        first, last = self.cohort_start[cohort], self.cohort_start[cohort + 1]
        low, high = self.cum_weight[first], self.cum_weight[last]
        pos = np.searchsorted(self.cum_weight, low + rng.random(len(month)) * (high - low), side="right") - 1
        return self.by_cohort[np.clip(pos, first, last - 1)]


def build_population(params: SynthParams, plan: SnapshotPlan) -> Population:
    """The user pool: hashes, join months dealt out at random by the plan's cohort sizes, and
    each user's standard normal effect (seeded stream of its own)."""
    size = n_users(params)
    rng = seeded_rng(params.seed, STREAM_USER_TRAITS)
    n_months = len(plan.months)
    cohort = rng.permutation(np.repeat(np.arange(n_months), plan.cohort_sizes))
    z = rng.standard_normal(size)
    by_cohort = np.argsort(cohort, kind="stable")
    activity = np.arange(1, size + 1, dtype=np.float64) ** -params.user_zipf_exponent
    cum = np.cumsum(plan.cohort_mix, axis=1)
    cum /= cum[:, -1:]
    nonempty = np.where(plan.cohort_sizes > 0, np.arange(n_months), 0)
    return Population(
        hashes=user_hash_pool(params.seed, size),
        cohort=cohort,
        nsfw_shift=params.user_propensity_sd * z + params.user_cohort_effect * cohort_years(n_months)[cohort],
        adapter_shift=params.user_adapter_propensity * z,
        by_cohort=by_cohort,
        cum_weight=np.concatenate([[0.0], np.cumsum(activity[by_cohort])]),
        cohort_start=np.concatenate([[0], np.cumsum(plan.cohort_sizes)]),
        cohort_cum=cum,
        fallback=np.maximum.accumulate(nonempty),
    )


# --------------------------------------------------------------------------- per image
@dataclass(frozen=True)
class ImageDraws:
    """What an image is, before any text: who posts it and how its user makes it."""

    user: np.ndarray          # rank of the user in the population
    has_prompt: np.ndarray
    has_lora: np.ndarray      # >= 1 adapter call (prompted images only)
    uses_person: np.ndarray   # the first call names a real-person adapter
    is_nsfw: np.ndarray       # level >= R


def image_draws(params: SynthParams, plan: SnapshotPlan, people: Population, chunk_index: int,
                month: np.ndarray) -> ImageDraws:
    """The draws of chunk ``chunk_index``'s images (of months ``month``), in a fixed order.

    NSFW logit: the month's calibrated logit + the user's shift, + log ``lora_nsfw_odds_ratio``
    with an adapter call; adapter-calling images then split into real-person and other ones at
    ``real_person_adapter_nsfw_odds_ratio`` with the same mean, so both odds ratios hold within a
    user and month.
    """
    rng = seeded_rng(params.seed, STREAM_IMAGE_DRAWS, chunk_index)
    n = len(month)
    user = people.sample(rng, month)  # first: replayed alone by the truth helpers
    adapter_p = expit(plan.lora_logit[month] + people.adapter_shift[user])
    has_prompt = rng.random(n) >= params.missing_prompt_share
    has_lora = has_prompt & (rng.random(n) < adapter_p)
    person_share = plan.real_person_share[month]
    uses_person = has_lora & (rng.random(n) < person_share)
    p = expit(plan.nsfw_logit[month] + people.nsfw_shift[user]
              + np.log(params.lora_nsfw_odds_ratio) * has_lora)
    rows = np.flatnonzero(has_lora)
    other, person = split_by_odds_ratio(p[rows], person_share[rows],
                                        params.real_person_adapter_nsfw_odds_ratio)
    p[rows] = np.where(uses_person[rows], person, other)
    return ImageDraws(user, has_prompt, has_lora, uses_person, rng.random(n) < p)


def chunk_bounds(params: SynthParams) -> list[tuple[int, int, int]]:
    """(chunk index, first row, rows) of every images chunk."""
    return [(k, first, min(params.chunk_rows, params.n_images - first))
            for k, first in enumerate(range(0, params.n_images, params.chunk_rows))]


def row_months(plan: SnapshotPlan, first_row: int, n_rows: int) -> np.ndarray:
    """Month index of rows ``first_row .. first_row + n_rows`` (rows are in time order)."""
    rows = np.arange(first_row, first_row + n_rows, dtype=np.int64)
    return np.searchsorted(np.cumsum(plan.image_counts), rows, side="right")


# --------------------------------------------------------------------------- truth given the users
def user_month_truth(params: SynthParams) -> pd.DataFrame:
    """Per user (hash) and month of the good image rows: images posted (``n``, as realised) and
    the expected counts given that user: NSFW images (``nsfw``), images with a prompt
    (``prompted``) and NSFW ones among them (``nsfw_prompted``), adapter-calling images
    (``adapter``) and NSFW ones among them (``nsfw_adapter``), and real-person-adapter images
    (``person``).

    Replays who posted each image (the first draws of the image stream), nothing else: the
    expectation is over the draws each image makes given its user, so an estimate from the
    snapshot differs from it by image-level noise only.
    """
    plan = make_plan(params)
    people = build_population(params, plan)
    q = 1 - params.missing_prompt_share
    parts = []
    for chunk_index, first, n_rows in chunk_bounds(params):
        month = row_months(plan, first, n_rows)
        user = people.sample(seeded_rng(params.seed, STREAM_IMAGE_DRAWS, chunk_index), month)
        adapter_p = expit(plan.lora_logit[month] + people.adapter_shift[user])
        logit = plan.nsfw_logit[month] + people.nsfw_shift[user]
        with_call = expit(logit + np.log(params.lora_nsfw_odds_ratio))
        parts.append(pd.DataFrame({
            "user": user, "month": month, "n": 1,
            "nsfw": user_nsfw_share(logit, adapter_p, q, params.lora_nsfw_odds_ratio),
            "prompted": q, "nsfw_prompted": q * user_nsfw_share(logit, adapter_p, 1.0, params.lora_nsfw_odds_ratio),
            "adapter": q * adapter_p, "nsfw_adapter": q * adapter_p * with_call,
            "person": q * adapter_p * plan.real_person_share[month]}))
    out = pd.concat(parts).groupby(["user", "month"], sort=True).sum().reset_index()
    out["user"] = people.hashes.take(pa.array(out["user"].to_numpy())).to_numpy(zero_copy_only=False)
    out["month"] = np.array(plan.months)[out["month"].to_numpy()]
    return out


def shift_share_parts(n_a: np.ndarray, k_a: np.ndarray, n_b: np.ndarray, k_b: np.ndarray) -> dict[str, float]:
    """The symmetric shift-share decomposition of the change of ``Σk / Σn`` between periods A
    and B over users: within users active in both (weighted by their mean share of images)
    and the rest (who posts)."""
    w_a, w_b = n_a / n_a.sum(), n_b / n_b.sum()
    both = (n_a > 0) & (n_b > 0)
    s_a, s_b = k_a[both] / n_a[both], k_b[both] / n_b[both]
    within = float(((w_a[both] + w_b[both]) / 2 * (s_b - s_a)).sum())
    change = float(k_b.sum() / n_b.sum() - k_a.sum() / n_a.sum())
    return {"change": change, "within users": within, "who posts": change - within}


def shift_share_truth(params: SynthParams, split_month: str | None = None) -> dict[str, Any]:
    """The planted split of the NSFW rise between the images before ``split_month`` and from it
    on: within users vs who posts, on the users who actually posted (:func:`user_month_truth`),
    with each user's expected NSFW share. ``split_month`` defaults to the month that halves the
    images (as :func:`helpers.analyse.users.shift_share` chooses it)."""
    counts = user_month_truth(params)
    if split_month is None:
        by_month = counts.groupby("month")["n"].sum().sort_index()
        split_month = str(by_month.index[np.searchsorted(by_month.cumsum().to_numpy(), by_month.sum() / 2)])
    before = counts["month"] < split_month
    parts = pd.concat([counts[before].groupby("user")[["n", "nsfw"]].sum().add_suffix("_a"),
                       counts[~before].groupby("user")[["n", "nsfw"]].sum().add_suffix("_b")],
                      axis=1).fillna(0.0)
    values = shift_share_parts(*(parts[c].to_numpy(float) for c in ("n_a", "nsfw_a", "n_b", "nsfw_b")))
    return {**values, "split_month": split_month,
            "users_in_both": int(((parts["n_a"] > 0) & (parts["n_b"] > 0)).sum())}
