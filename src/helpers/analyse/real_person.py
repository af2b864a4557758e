"""Models over time and the real-person models in full, with label error carried into the shares.

Where a snapshot lacks the platform's ``poi`` flag, ``is_real_person`` is a predicted label with
a validated error rate (the real-data report: sensitivity and specificity against ``poi``). A
share of predicted labels is then biased; :func:`rogan_gladen` corrects it and widens its
interval by the uncertainty of the validation itself. Depicted gender is ``unknown`` for some
real-person models; :func:`female_share_bounds` gives the female share under both extreme
assignments of those.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..stats import CONFIDENCE, gini, lorenz_curve, share_trend, top_share, with_share
from .common import as_bool, flag_column, flag_share_by_month, months_of


def model_nsfw_share_by_month(models: pd.DataFrame, definition: str = "r") -> tuple[pd.DataFrame, dict]:
    """NSFW share of models by month of creation (Wilson intervals) and its trend tests."""
    out = flag_share_by_month(models["created_at"], models[flag_column(definition)])
    return out, share_trend(out) if len(out) >= 3 else {}


def model_nsfw_by_definition(models: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """:func:`model_nsfw_share_by_month` under every NSFW definition: the long monthly frame
    (one row per month and definition, in definition order) and definition → trend, or
    :class:`~helpers.stats.NotEstimable` with the reason."""
    from ..schema import NSFW_DEFINITIONS
    from ..stats import NotEstimable

    frames, trends = [], {}
    for d in NSFW_DEFINITIONS:
        monthly, trend = model_nsfw_share_by_month(models, d)
        frames.append(monthly.assign(definition=d))
        trends[d] = trend if trend else NotEstimable(
            "no model has a known NSFW label under this definition" if monthly.empty else
            f"{len(monthly)} month(s) of model creation: a trend needs at least three")
    out = pd.concat(frames, ignore_index=True)
    return out[["month", "definition", *[c for c in out.columns if c not in ("month", "definition")]]], trends


def real_person_downloads_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Per month of creation: downloads of all models (``n``) and of real-person models (``k``)."""
    downloads = models["download_count"].fillna(0).astype("int64")
    data = pd.DataFrame({"month": months_of(models["created_at"]), "n": downloads,
                         "k": downloads.where(as_bool(models["is_real_person"]), 0)})
    return with_share(data.groupby("month", sort=True)[["n", "k"]].sum().reset_index())


def real_person_creator_concentration(models: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """How concentrated the making of real-person models is among creators: Gini, the top 1% and
    10% of creators' share of real-person models, and the Lorenz curve (creators with at least
    one real-person model; models without a creator hash are left out)."""
    real = models[as_bool(models["is_real_person"]) & models["creator_hash"].notna()]
    per_creator = real.groupby("creator_hash").size().to_numpy(float)
    if len(per_creator) == 0:
        return {"creators": 0, "models": 0, "gini": np.nan, "top1_share": np.nan,
                "top10_share": np.nan}, pd.DataFrame(columns=["population_share", "value_share"])
    summary = {"creators": int(len(per_creator)), "models": int(per_creator.sum()),
               "gini": gini(per_creator), "top1_share": top_share(per_creator, None, 0.01),
               "top10_share": top_share(per_creator, None, 0.10)}
    return summary, lorenz_curve(per_creator)


def rogan_gladen(positives: int, n: int, true_positives: int, condition_positives: int,
                 true_negatives: int, condition_negatives: int, n_boot: int = 2000, seed: int = 0,
                 confidence: float = CONFIDENCE) -> dict[str, float]:
    """Prevalence corrected for a label's sensitivity and specificity (Rogan–Gladen).

    ``positives`` of ``n`` items carry the label; the validation found ``true_positives`` of
    ``condition_positives`` and ``true_negatives`` of ``condition_negatives``. The interval is
    a parametric bootstrap that redraws the apparent share *and* both validation rates
    (binomial), so it includes the validation's own uncertainty. Estimates are clipped to
    [0, 1]; ``youden`` (se + sp − 1) near 0 means the label carries no information.
    """
    apparent = positives / n if n else np.nan
    se = true_positives / condition_positives if condition_positives else np.nan
    sp = true_negatives / condition_negatives if condition_negatives else np.nan
    youden = se + sp - 1

    def corrected(p, se_, sp_):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.clip((p + sp_ - 1) / (se_ + sp_ - 1), 0.0, 1.0)

    out = {"apparent": apparent, "sensitivity": se, "specificity": sp, "youden": youden,
           "corrected": float(corrected(apparent, se, sp)) if youden > 0 else np.nan,
           "ci_low": np.nan, "ci_high": np.nan}
    if not n or not condition_positives or not condition_negatives or not youden > 0:
        return out
    rng = np.random.default_rng(seed)
    p_b = rng.binomial(n, apparent, n_boot) / n
    se_b = rng.binomial(condition_positives, se, n_boot) / condition_positives
    sp_b = rng.binomial(condition_negatives, sp, n_boot) / condition_negatives
    boot = corrected(p_b, se_b, sp_b)[(se_b + sp_b - 1) > 0]
    tail = (1 - confidence) / 2
    out["ci_low"], out["ci_high"] = float(np.quantile(boot, tail)), float(np.quantile(boot, 1 - tail))
    return out


def female_share_bounds(models: pd.DataFrame) -> dict[str, float]:
    """Female share of real-person models: among those whose gender is known, and its bounds when
    every ``unknown`` is counted as not female (lower) or as female (upper)."""
    real = models[as_bool(models["is_real_person"])]
    gender = real["depicted_gender"].fillna("unknown")
    female, unknown = int((gender == "female").sum()), int((gender == "unknown").sum())
    total = len(real)
    known = total - unknown
    return {"real_person_models": total, "known": known, "unknown": unknown, "female": female,
            "female_share_known": female / known if known else np.nan,
            "lower": female / total if total else np.nan,
            "upper": (female + unknown) / total if total else np.nan}


def real_person_share_by_threshold(models: pd.DataFrame,
                                   thresholds: Sequence[float] = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))
                                   ) -> pd.DataFrame:
    """Share of models whose ``real_person_score`` is at least each threshold (a curve): how much
    the real-person share depends on where the classifier's line is drawn."""
    scores = models["real_person_score"].dropna().to_numpy(float)
    rows = [{"threshold": float(t), "n": int(len(scores)), "k": int((scores >= t).sum())}
            for t in thresholds]
    return with_share(pd.DataFrame(rows, columns=["threshold", "n", "k"]))


def real_person_fields(models: pd.DataFrame, definition: str,
                       validation: dict | None = None,
                       nsfw: tuple[pd.DataFrame, dict] | None = None) -> dict:
    """Notebook 04's results on models over time and the real-person models in full. The
    Rogan–Gladen correction uses ``validation`` (``true_positives``, ``condition_positives``,
    ``true_negatives``, ``condition_negatives`` of the predicted label against ``poi``, from the
    real-data report) and corrects the share of models the labeller predicts as real-person (the
    label a snapshot without ``poi`` would carry). ``nsfw`` (:func:`model_nsfw_by_definition`)
    is computed when not given; the monthly NSFW share covers every definition, the trend is the
    headline definition's."""
    from ..stats import NotEstimable

    monthly, trends = nsfw if nsfw is not None else model_nsfw_by_definition(models)
    if "creator_hash" in models:
        creators, lorenz = real_person_creator_concentration(models)
    else:
        creators = {"creators": 0}
        lorenz = pd.DataFrame(columns=["population_share", "value_share"])
    bounds = female_share_bounds(models)
    scores = models["real_person_score"] if "real_person_score" in models else pd.Series([], dtype=float)
    predicted = scores.dropna() >= 0.5
    if validation and len(predicted):
        corrected = rogan_gladen(int(predicted.sum()), int(len(predicted)), **validation)
    else:
        corrected = NotEstimable("no validation of the real-person label against poi is available")
    return {
        "model_nsfw_monthly": monthly,
        "model_nsfw_trend": trends[definition],
        "real_person_downloads_monthly": real_person_downloads_by_month(models),
        "real_person_creators": creators if creators["creators"] else NotEstimable(
            "no real-person model with a creator hash"),
        "real_person_creators_lorenz": lorenz,
        "real_person_corrected": corrected,
        "female_bounds": bounds if bounds["real_person_models"] else NotEstimable("no model depicts a real person"),
        "threshold_curve": real_person_share_by_threshold(pd.DataFrame({"real_person_score": scores})),
    }
