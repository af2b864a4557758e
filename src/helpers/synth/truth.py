"""The planted truth: the values the snapshot reproduces, in expectation over its users.

:func:`expected_truth` is analytic (cheap): monthly shares are what the generator was calibrated
to over the user distribution, not over the users one snapshot happens to draw, so a realised
snapshot scatters around them by more than image-level noise (heavy users move the shares).
Truths that depend on who actually posted (the within-users vs who-posts split) replay the
users instead (:mod:`helpers.synth.people`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..schema import BASE_MODEL_FAMILIES, base_model_family
from .messy import messy_truth
from .params import CIVIVERSE_NSFW_SHARE, NSFW_LEVELS, SFW_LEVELS, STREAM_CREATORS, SynthParams
from .plan import (SnapshotPlan, make_plan, n_forced_models, n_forced_person_models, n_users,
                   seeded_rng)
from .text import sample_zipf, zipf_cdf

#: Replicates of the simulation that gives the expected creator concentration.
CREATOR_REPLICATES = 400


def _by_month(months: Sequence[str], values: np.ndarray) -> dict[str, float]:
    """``{month: value}`` with plain floats (JSON-ready)."""
    return {m: float(v) for m, v in zip(months, values)}


def _mix_by_month(months: Sequence[str], names: Sequence[str], mix: np.ndarray) -> dict[str, dict[str, float]]:
    """``{month: {category: share}}`` with plain floats (JSON-ready)."""
    return {m: {k: float(v) for k, v in zip(names, row)} for m, row in zip(months, mix)}


def _odds_ratio(k1: float, n1: float, k0: float, n0: float) -> float:
    return (k1 / (n1 - k1)) / (k0 / (n0 - k0))


# --------------------------------------------------------------------------- adapters
def adapter_truth(params: SynthParams, plan: SnapshotPlan) -> dict[str, Any]:
    """The adapter/NSFW association: conditional (within user × month, planted) and crude (all
    images of the window pooled, images without a call, with or without a prompt, unexposed, as
    :func:`helpers.analyse.users.user_counts` counts them)."""
    q = 1 - params.missing_prompt_share
    n = plan.image_counts.astype(np.float64)
    n1 = n * q * plan.lora_share
    k1 = n1 * plan.nsfw_share_lora
    k = n * plan.nsfw_share
    return {"lora_nsfw_odds_ratio": params.lora_nsfw_odds_ratio,
            "lora_nsfw_odds_ratio_crude": _odds_ratio(k1.sum(), n1.sum(), (k - k1).sum(), (n - n1).sum()),
            "nsfw_share_by_month_lora": _by_month(plan.months, plan.nsfw_share_lora),
            "nsfw_share_by_month_no_lora": _by_month(plan.months, plan.nsfw_share_no_lora)}


def real_person_adapter_truth(params: SynthParams, plan: SnapshotPlan) -> dict[str, Any]:
    """Real-person adapter use by month, its planted break, and its NSFW odds ratio.

    ``real_person_adapter_image_share_by_month`` is over all images of a month; the
    ``_resolved`` variant is what a link that resolves each call with probability
    ``1 - unresolvable_call_share`` sees (an image counts when its real-person call resolves).
    ``real_person_break_level_change`` is the share in the break month minus the share it would
    have had without the break (``_no_break`` path); the factor is the break's ratio.
    """
    months = plan.months
    q = 1 - params.missing_prompt_share
    resolved = 1 - params.unresolvable_call_share
    image_share = q * plan.lora_share * plan.real_person_share
    no_break = q * plan.lora_share * plan.real_person_share_no_break
    calls = 1.0 + float(sum(params.lora_extra_call_probs))
    at = months.index(params.real_person_break_month) if params.real_person_break_month in months else None
    change = math.nan if at is None else float(image_share[at] - no_break[at])
    return {
        "real_person_adapter_nsfw_odds_ratio": params.real_person_adapter_nsfw_odds_ratio,
        "real_person_adapter_share_of_adapter_images_by_month": _by_month(months, plan.real_person_share),
        "real_person_adapter_image_share_by_month": _by_month(months, image_share),
        "real_person_adapter_image_share_by_month_resolved": _by_month(months, image_share * resolved),
        "real_person_adapter_image_share_by_month_no_break": _by_month(months, no_break),
        "real_person_call_share_by_month": _by_month(months, plan.real_person_share / calls),
        "nsfw_share_by_month_real_person_adapter": _by_month(months, plan.nsfw_share_real_person),
        "real_person_break_month": params.real_person_break_month if at is not None else None,
        "real_person_break_factor": params.real_person_break_factor,
        "real_person_break_level_change": change,
        "real_person_break_level_change_resolved": change * resolved,
    }


# --------------------------------------------------------------------------- base-model families
def family_truth(params: SynthParams, plan: SnapshotPlan) -> dict[str, Any]:
    """NSFW share per base-model family (:func:`helpers.schema.base_model_family` of the base
    models), pooled over the window and by month, and each family's share of a month's images.
    The base model is drawn after NSFW, so these hold in expectation whoever posts."""
    families = [f for f in BASE_MODEL_FAMILIES if f in {base_model_family(b) for b in plan.base_names}]
    member = np.array([[base_model_family(b) == f for f in families] for b in plan.base_names], float)
    nsfw = (plan.nsfw_share[:, None] * plan.base_mix_nsfw) @ member           # (M, F) P(NSFW, family)
    total = nsfw + ((1 - plan.nsfw_share)[:, None] * plan.base_mix) @ member  # (M, F) P(family)
    n = plan.image_counts.astype(np.float64)[:, None]
    by_month = {m: {f: float(nsfw[i, j] / total[i, j]) for j, f in enumerate(families) if total[i, j] > 0}
                for i, m in enumerate(plan.months)}
    return {"nsfw_share_by_family": {f: float((n[:, 0] @ nsfw[:, j]) / (n[:, 0] @ total[:, j]))
                                     for j, f in enumerate(families)},
            "nsfw_share_by_family_by_month": by_month,
            "family_image_share_by_month": _mix_by_month(plan.months, families, total)}


# --------------------------------------------------------------------------- creators
def concentration(counts: np.ndarray) -> dict[str, float]:
    """Top 1% and 10% share (the top ``ceil(f · creators)`` creators) and Gini of per-creator
    counts (creators with at least one model)."""
    x = np.sort(counts[counts > 0].astype(np.float64))
    n, total = len(x), x.sum()
    top = {f"top{round(f * 100)}_share": float(x[::-1][:math.ceil(f * n)].sum() / total) for f in (0.01, 0.10)}
    gini = float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * total))
    return {**top, "gini": gini, "creators": float(n)}


def creator_truth(params: SynthParams, replicates: int = CREATOR_REPLICATES) -> dict[str, Any]:
    """Expected concentration of real-person models among their creators (and its standard
    deviation over snapshots), by simulating the generator's draws: the number of real-person
    models, then each one's creator from the creator pool by Zipf activity."""
    from .models import real_person_creator_pool

    pool = real_person_creator_pool(params, n_users(params))
    cdf = zipf_cdf(pool, params.real_person_creator_zipf_exponent)
    rng = seeded_rng(params.seed, STREAM_CREATORS, 1)
    free = params.n_models - n_forced_models(params)
    sims = []
    for _ in range(replicates):
        models = rng.binomial(free, params.real_person_share) + n_forced_person_models(params)
        if models:
            sims.append(concentration(np.bincount(sample_zipf(rng, cdf, models), minlength=pool)))
    out: dict[str, Any] = {"real_person_creator_pool": pool,
                           "real_person_creator_zipf_exponent": params.real_person_creator_zipf_exponent}
    for key in ("top1_share", "top10_share", "gini", "creators"):
        values = np.array([s[key] for s in sims]) if sims else np.array([math.nan])
        out[f"real_person_creator_{key}"] = float(values.mean())
        out[f"real_person_creator_{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return out


# --------------------------------------------------------------------------- everything
def expected_truth(params: SynthParams) -> dict[str, Any]:
    """The planted values the generated snapshot reproduces (up to sampling error, and shares up
    to the scatter of users around their expectation).

    Image shares are over all images of a month unless named otherwise; ``lora_share`` is over
    images with a prompt. Odds ratios named by a parameter are conditional on user and month;
    ``lora_nsfw_odds_ratio_crude`` is the pooled one. Model shares are over all models
    (real-person ones are never checkpoints). Engagement ratios are ratios of medians before
    rounding to integers. ``n_images`` / ``images_per_month`` / ``n_models`` count the good rows;
    the ``messy_*``, ``raw_*`` and ``clean_*`` entries (:func:`messy_truth`) say what cleaning
    must report.
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
    free = params.n_models - n_forced_models(params)
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
        "adapter_call_unresolvable_share": params.unresolvable_call_share,
        "mean_lora_calls_given_lora": 1.0 + float(sum(params.lora_extra_call_probs)),
        **adapter_truth(params, plan),
        **real_person_adapter_truth(params, plan),
        "base_model_mix_by_month": _mix_by_month(months, plan.base_names, plan.base_mix),
        "base_model_mix_nsfw_by_month": _mix_by_month(months, plan.base_names, plan.base_mix_nsfw),
        **family_truth(params, plan),
        "model_type_mix_by_month": _mix_by_month(months, plan.type_names, plan.type_mix),
        "real_person_share": (free * params.real_person_share + n_forced_person_models(params)) / params.n_models,
        "real_person_female_share": params.real_person_female_share,
        "real_person_male_share": male,
        "real_person_mixed_share": params.real_person_mixed_share,
        "model_nsfw_share_by_month": _by_month(months, plan.model_nsfw_share),
        "real_person_nsfw_odds_ratio": params.real_person_nsfw_odds_ratio,
        **creator_truth(params),
        "nsfw_like_ratio": params.nsfw_like_ratio,
        "real_person_download_ratio": params.real_person_download_ratio,
        "n_users_pool": n_users(params),
        "user_zipf_exponent": params.user_zipf_exponent,
        "user_propensity_sd": params.user_propensity_sd,
        "user_cohort_effect": params.user_cohort_effect,
        "user_adapter_propensity": params.user_adapter_propensity,
        "users_joining_by_month": {m: int(c) for m, c in zip(months, plan.cohort_sizes)},
        **messy_truth(params, plan),
    }
