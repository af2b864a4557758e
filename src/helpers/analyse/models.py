"""Model-level analyses (notebook 04): the processed models table (hundreds of thousands of
rows at most) arrives as a pandas frame; each function returns a small tidy frame or dict.

:func:`model_results` runs them all, in the notebook's order, into one :class:`ModelResults`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import pandas as pd

from ..schema import GENDERS, NSFW_DEFINITIONS
from ..stats import NotEstimable, odds_ratio, share_trend, wilson_interval, with_share
from .common import (MODEL_ENGAGEMENT, as_bool, compare_groups, flag_column, flag_share_by_month,
                     months_of,
                     nsfw_groups, nsfw_wording, two_groups)
from .links import new_models_by_family_by_month
from .names import as_list, personal_name_filter
from .real_person import model_nsfw_by_definition, real_person_fields
from .results import Results
from .sensitivity import model_sensitivity


#: Why a comparison of real-person models with the others cannot be made.
NO_REAL_PERSON = "no model depicts a real person"
ONLY_REAL_PERSON = "every model depicts a real person"
#: Why a share of models is not estimable when no model has the value (overview keys).
_NO_VALUE = {"adapter_share": "no model has a type",
             "real_person_share": "no model has a real-person label"}


def real_person_groups(n_real_person: float, n_other: float) -> NotEstimable | None:
    """Why real-person models cannot be compared with the others (None when they can)."""
    return two_groups(n_real_person, n_other, "there are no models", NO_REAL_PERSON,
                      ONLY_REAL_PERSON)


def _models_with_month(models: pd.DataFrame) -> pd.DataFrame:
    out = models.copy()
    out["month"] = months_of(out["created_at"])
    return out


def model_nsfw_definition(models: pd.DataFrame, preferred: str = "r") -> str:
    """The NSFW definition to compare models by: ``preferred`` if any model has it, else the
    first definition some model has (e.g. the 2023 API gives models a flag but no level)."""
    flag_column(preferred)
    for d in [preferred, *(d for d in NSFW_DEFINITIONS if d != preferred)]:
        if models[NSFW_DEFINITIONS[d]].notna().any():
            return d
    return preferred


def model_overview(models: pd.DataFrame) -> dict[str, float | str | NotEstimable]:
    """Headline counts of the models table: totals, adapters, NSFW and real-person shares (a
    share no model has a value for is :class:`NotEstimable`, and so are its bounds)."""
    n = len(models)
    out: dict[str, float | str | NotEstimable] = {"n_models": n}
    months = months_of(models["created_at"])
    out["first_month"], out["last_month"] = (months.min(), months.max()) if n else ("", "")
    pairs = {"adapter_share": models["is_adapter"],
             "real_person_share": models["is_real_person"],
             **{f"nsfw_share_{d}": models[c] for d, c in NSFW_DEFINITIONS.items()}}
    for key, col in pairs.items():
        known = col.notna()
        k, total = float(as_bool(col[known]).sum()), float(known.sum())
        if not total:
            reason = NotEstimable(_NO_VALUE.get(key) or
                                  nsfw_wording(key.removeprefix("nsfw_share_"), "model")["neither"])
            out[key] = out[f"{key}_ci_low"] = out[f"{key}_ci_high"] = reason
            continue
        low, high = wilson_interval([k], [total])
        out[key] = k / total
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(low[0]), float(high[0])
    out["n_adapters"] = int(as_bool(models["is_adapter"]).sum())
    out["n_real_person"] = int(as_bool(models["is_real_person"]).sum())
    return out


def model_types_by_month(models: pd.DataFrame, top_k: int = 6) -> pd.DataFrame:
    """Number and share of new models of each type per month (rarer types pooled as 'Other').

    The ``top_k`` most frequent types keep their name; the monthly adapter share itself is
    :func:`adapter_share_by_month`.
    """
    data = _models_with_month(models)
    keep = data["type"].value_counts().sort_index().sort_values(ascending=False, kind="stable")
    keep = set(keep.index[:top_k])
    data["type_group"] = data["type"].where(data["type"].isin(keep), "Other")
    return _category_by_month(data, "type_group", "type")


def adapter_share_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Share of new models per month that are adapters (LoRA & co., not checkpoints), Wilson CI."""
    return flag_share_by_month(models["created_at"], as_bool(models["is_adapter"]))


def _category_by_month(data: pd.DataFrame, column: str, name: str) -> pd.DataFrame:
    """Counts and within-month shares of a categorical column, zero-filled, sorted."""
    counts = data.groupby(["month", column], sort=True).size()
    months = sorted(data["month"].unique())
    cats = sorted(data[column].unique(), key=lambda c: (c == "Other", str(c)))
    grid = pd.MultiIndex.from_product([months, cats], names=["month", name])
    counts.index = counts.index.set_names(["month", name])
    out = counts.reindex(grid, fill_value=0).rename("n").reset_index()
    out["n_month"] = out.groupby("month")["n"].transform("sum")
    out["share"] = out["n"] / out["n_month"]
    return out


def base_models_by_month(models: pd.DataFrame, top_k: int = 6) -> pd.DataFrame:
    """Number and share of new models per base model family per month (rarer pooled as 'Other')."""
    data = _models_with_month(models)
    base = data["base_model"].fillna("unknown")
    order = base.value_counts().sort_index().sort_values(ascending=False, kind="stable")
    keep = set(order.index[:top_k])
    data["base_group"] = base.where(base.isin(keep), "Other")
    return _category_by_month(data, "base_group", "base_model")


def real_person_share_by_month(models: pd.DataFrame) -> pd.DataFrame:
    """Share of new models per month that depict a real person, with Wilson intervals."""
    return flag_share_by_month(models["created_at"], as_bool(models["is_real_person"]))


def real_person_share_by_type(models: pd.DataFrame) -> pd.DataFrame:
    """Share of real-person models within each model type, with Wilson intervals."""
    out = (models.assign(k=as_bool(models["is_real_person"]).astype(int))
           .groupby("type", sort=True).agg(n=("k", "size"), k=("k", "sum")).reset_index())
    return with_share(out).sort_values(["n", "type"], ascending=[False, True], ignore_index=True)


def depicted_gender_split(models: pd.DataFrame) -> pd.DataFrame | NotEstimable:
    """Depicted gender of real-person models: count, share of all and of known, Wilson CI.

    ``share`` is out of all real-person models (including 'unknown'); ``share_of_known`` out
    of those whose gender could be determined, which is what "targets women" means.
    :class:`NotEstimable` when no model depicts a real person.
    """
    rp = models[as_bool(models["is_real_person"])]
    if rp.empty:
        return NotEstimable(NO_REAL_PERSON)
    counts = rp["depicted_gender"].fillna("unknown").value_counts().reindex(list(GENDERS), fill_value=0)
    out = pd.DataFrame({"depicted_gender": list(GENDERS), "k": counts.to_numpy(dtype="int64")})
    out["n"] = int(len(rp))
    out = with_share(out)
    known = int(out.loc[out["depicted_gender"] != "unknown", "k"].sum())
    out["n_known"] = known
    out["share_of_known"] = np.where(out["depicted_gender"] != "unknown",
                                     out["k"] / known if known else np.nan, np.nan)
    lo, hi = wilson_interval(out["k"].where(out["depicted_gender"] != "unknown", 0),
                             np.where(out["depicted_gender"] != "unknown", known, 0))
    out["known_ci_low"], out["known_ci_high"] = lo, hi
    return out


def nsfw_share_by_depicted_gender(models: pd.DataFrame, definition: str = "r") -> pd.DataFrame:
    """NSFW share of real-person models by depicted gender, and of all other models, Wilson CI."""
    flag = flag_column(definition)
    data = models[models[flag].notna()].copy()
    group = np.where(as_bool(data["is_real_person"]),
                     "real person: " + data["depicted_gender"].fillna("unknown"), "not a real person")
    data["group"] = group
    order = [f"real person: {g}" for g in GENDERS] + ["not a real person"]
    out = (data.assign(k=as_bool(data[flag]).astype(int)).groupby("group")
           .agg(n=("k", "size"), k=("k", "sum")).reindex(order, fill_value=0).reset_index())
    out.insert(1, "definition", definition)
    return with_share(out)


def nsfw_share_by_real_person(models: pd.DataFrame,
                              definition: str = "r") -> pd.DataFrame | NotEstimable:
    """NSFW share of real-person vs other models, Wilson intervals and odds ratio
    (:class:`NotEstimable` when one group is empty)."""
    flag = flag_column(definition)
    data = models[models[flag].notna()]
    rp = as_bool(data["is_real_person"])
    nsfw = as_bool(data[flag])
    rows = [{"is_real_person": v, "n": int((rp == v).sum()), "k": int((nsfw & (rp == v)).sum())}
            for v in (False, True)]
    empty = (NotEstimable(nsfw_wording(definition, "model")["neither"]) if data.empty
             else real_person_groups(rows[1]["n"], rows[0]["n"]))
    if empty is not None:
        return empty
    out = with_share(pd.DataFrame(rows))
    ratio = odds_ratio(rows[1]["k"], rows[1]["n"], rows[0]["k"], rows[0]["n"])
    out["odds_ratio"], out["or_ci_low"], out["or_ci_high"] = (ratio["odds_ratio"], ratio["ci_low"],
                                                              ratio["ci_high"])
    out.insert(0, "definition", definition)
    return out


def _model_engagement(models: pd.DataFrame, group: pd.Series, metrics: Iterable[str],
                      a_name: str, b_name: str,
                      empty: NotEstimable | None) -> pd.DataFrame | NotEstimable:
    """:func:`compare_groups` for each metric, or ``empty`` (a group is empty) as it is."""
    if empty is not None:
        return empty
    rows = []
    for metric in metrics:
        data = pd.DataFrame({"value": models[metric], "group": group}).dropna()
        counts = data.groupby(["value", "group"]).size().rename("n").reset_index()
        rows.append(compare_groups(counts, metric, True, False, a_name, b_name))
    return pd.DataFrame(rows)


def engagement_real_person_vs_other(models: pd.DataFrame,
                                    metrics: Iterable[str] = MODEL_ENGAGEMENT
                                    ) -> pd.DataFrame | NotEstimable:
    """Downloads and engagement of real-person vs other models: medians, Mann-Whitney, rank-biserial.

    Positive ``rank_biserial`` means real-person models tend to be downloaded/engaged more.
    :class:`NotEstimable` when one group is empty.
    """
    group = as_bool(models["is_real_person"])
    return _model_engagement(models, group, metrics, "real_person", "other",
                             real_person_groups(group.sum(), (~group).sum()))


def engagement_nsfw_vs_sfw_models(models: pd.DataFrame, metrics: Iterable[str] = MODEL_ENGAGEMENT,
                                  definition: str = "r") -> pd.DataFrame | NotEstimable:
    """Downloads and engagement of NSFW vs SFW models (Mann-Whitney U, rank-biserial);
    :class:`NotEstimable` when one group is empty."""
    flag = flag_column(definition)
    data = models[models[flag].notna()]
    nsfw = as_bool(data[flag])
    out = _model_engagement(data, nsfw, metrics, "nsfw", "sfw",
                            nsfw_groups(nsfw.sum(), (~nsfw).sum(), definition, "model"))
    if isinstance(out, NotEstimable):
        return out
    out.insert(1, "definition", definition)
    return out


def real_person_downloads(models: pd.DataFrame) -> dict[str, float | NotEstimable]:
    """Total and median downloads of real-person models and their share of all downloads
    (a share or median without models to take it from is :class:`NotEstimable`)."""
    rp = as_bool(models["is_real_person"])
    downloads = models["download_count"].fillna(0).astype(float)
    total = float(downloads.sum())
    return {"real_person_downloads": float(downloads[rp].sum()),
            "real_person_download_share": (float(downloads[rp].sum() / total) if total
                                           else NotEstimable("no model was downloaded")),
            "real_person_median_downloads": (float(downloads[rp].median()) if rp.any()
                                             else NotEstimable(NO_REAL_PERSON)),
            "other_median_downloads": (float(downloads[~rp].median()) if (~rp).any()
                                       else NotEstimable(ONLY_REAL_PERSON))}


def top_tags(models: pd.DataFrame, subset: str = "all", top_n: int = 20,
             name_filter: Callable[[str], bool] | None = None) -> pd.DataFrame | NotEstimable:
    """Most frequent tags among ``subset`` ('all', 'real_person', 'other') models; no personal names.

    Every tag that ``name_filter`` (default: :func:`personal_name_filter` built from the whole
    models table) flags as a personal name is dropped before ranking. Returns ``rank``,
    ``tag``, ``n_models``, ``share`` (of the subset's models) and the number of distinct tags
    removed as names, ``n_name_tags_removed`` (the same on every row). :class:`NotEstimable`
    when the subset holds no model.
    """
    if subset not in ("all", "real_person", "other"):
        raise ValueError(f"unknown subset {subset!r}; valid: all, real_person, other")
    rp = as_bool(models["is_real_person"])
    data = models if subset == "all" else models[rp if subset == "real_person" else ~rp]
    if data.empty:
        return NotEstimable({"all": "there are no models", "real_person": NO_REAL_PERSON,
                             "other": ONLY_REAL_PERSON}[subset])
    name_filter = name_filter if name_filter is not None else personal_name_filter(models)
    tags = data["tags"].map(lambda t: sorted(set(as_list(t))))
    exploded = tags.explode().dropna()
    counts = exploded.value_counts()
    counts = counts.rename_axis("tag").reset_index(name="n_models")
    is_name = counts["tag"].map(name_filter).astype(bool)
    kept = counts[~is_name].sort_values(["n_models", "tag"], ascending=[False, True]).head(top_n)
    out = kept.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out["share"] = out["n_models"] / max(len(data), 1)
    out["n_name_tags_removed"] = int(is_name.sum())
    return out


#: :func:`model_results` takes a parameter called ``top_tags`` (the pipeline's name), which
#: hides the function inside it.
_ranked_tags = top_tags


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ModelResults(Results):
    """Everything notebook 04 shows, computed by :func:`model_results`.

    ``definition`` is the NSFW definition the comparisons used (the requested one, or another
    when the models lack it: :func:`model_nsfw_definition`); ``top_types`` and ``top_tags``
    are the parameters of the type and tag lists. A field this snapshot cannot estimate is a
    :class:`~helpers.stats.NotEstimable`.
    """

    part: ClassVar[str] = "models"

    definition: str
    top_types: int
    top_tags: int
    overview: dict[str, Any]                          # model_overview
    real_person_sources: pd.DataFrame                 # models by source of the real-person label
    types: pd.DataFrame                               # model_types_by_month
    bases: pd.DataFrame                               # base_models_by_month
    adapter_monthly: pd.DataFrame                     # adapter_share_by_month
    adapter_trend: dict[str, float] | NotEstimable    # share_trend of adapter_monthly
    real_person_monthly: pd.DataFrame                 # real_person_share_by_month
    real_person_trend: dict[str, float] | NotEstimable  # share_trend of real_person_monthly
    by_type: pd.DataFrame                             # real_person_share_by_type
    gender: pd.DataFrame | NotEstimable               # depicted_gender_split
    nsfw_by_real_person: pd.DataFrame | NotEstimable  # nsfw_share_by_real_person
    nsfw_by_gender: pd.DataFrame                      # nsfw_share_by_depicted_gender
    engagement: pd.DataFrame | NotEstimable           # engagement_real_person_vs_other
    engagement_nsfw: pd.DataFrame | NotEstimable      # engagement_nsfw_vs_sfw_models
    downloads: dict[str, Any]                         # real_person_downloads
    tags_real: pd.DataFrame | NotEstimable            # top_tags of real-person models
    tags_all: pd.DataFrame | NotEstimable             # top_tags of all models
    # models over time and the real-person models in full (real_person.real_person_fields)
    model_nsfw_monthly: pd.DataFrame                  # NSFW share by month of creation, every definition
    model_nsfw_trend: dict[str, float] | NotEstimable
    real_person_downloads_monthly: pd.DataFrame       # real-person share of downloads by month
    real_person_creators: dict[str, float] | NotEstimable  # concentration among creators
    real_person_creators_lorenz: pd.DataFrame
    real_person_corrected: dict[str, float] | NotEstimable  # Rogan–Gladen corrected share
    female_bounds: dict[str, float] | NotEstimable    # female share, unknowns both ways
    threshold_curve: pd.DataFrame                     # real-person share by score threshold
    family_monthly: pd.DataFrame                      # new models by base-model family per month
    sensitivity: pd.DataFrame                         # every headline under every definition (long)


def real_person_sources(models: pd.DataFrame) -> pd.DataFrame:
    """How many models took their real-person label from each source (platform flag, rule, ...)."""
    counts = models["real_person_source"].value_counts(dropna=False)
    return counts.rename_axis("real_person_source").reset_index(name="n_models")


def model_results(models: pd.DataFrame, definition: str = "r", top_types: int = 6,
                  top_tags: int = 15, validation: dict | None = None) -> ModelResults:
    """Every model-level analysis of the study on the processed models table.

    ``validation`` (confusion counts of the predicted real-person label against ``poi``, see
    :func:`~helpers.label.real_person_validation_counts`) lets the real-person share be
    corrected for the label's error.

    The notebook, the paper's numbers, the benchmark and the tests all take their model
    results from here, so an analysis added here reaches all of them.
    """
    definition = model_nsfw_definition(models, definition)
    adapter_monthly = adapter_share_by_month(models)
    real_person_monthly = real_person_share_by_month(models)
    name_filter = personal_name_filter(models)
    nsfw = model_nsfw_by_definition(models)
    by_real_person = {d: nsfw_share_by_real_person(models, d) for d in NSFW_DEFINITIONS}
    by_gender = {d: nsfw_share_by_depicted_gender(models, d) for d in NSFW_DEFINITIONS}
    engagement_nsfw = {d: engagement_nsfw_vs_sfw_models(models, definition=d) for d in NSFW_DEFINITIONS}
    overview = model_overview(models)
    return ModelResults(
        definition=definition, top_types=top_types, top_tags=top_tags,
        overview=overview,
        real_person_sources=real_person_sources(models),
        types=model_types_by_month(models, top_k=top_types),
        bases=base_models_by_month(models, top_k=top_types),
        adapter_monthly=adapter_monthly,
        adapter_trend=share_trend(adapter_monthly, never="no model is an adapter",
                                  always="every model is an adapter"),
        real_person_monthly=real_person_monthly,
        real_person_trend=share_trend(real_person_monthly, never=NO_REAL_PERSON,
                                      always=ONLY_REAL_PERSON),
        by_type=real_person_share_by_type(models),
        gender=depicted_gender_split(models),
        nsfw_by_real_person=by_real_person[definition],
        nsfw_by_gender=by_gender[definition],
        engagement=engagement_real_person_vs_other(models),
        engagement_nsfw=engagement_nsfw[definition],
        downloads=real_person_downloads(models),
        tags_real=_ranked_tags(models, "real_person", top_tags, name_filter),
        tags_all=_ranked_tags(models, "all", top_tags, name_filter),
        **real_person_fields(models, definition, validation, nsfw),
        family_monthly=new_models_by_family_by_month(models),
        sensitivity=model_sensitivity({
            d: {"overall": _overall_share(overview, d), "trend": nsfw[1][d],
                "by_real_person": by_real_person[d], "by_gender": by_gender[d],
                "engagement": engagement_nsfw[d]} for d in NSFW_DEFINITIONS}),
    )


def _overall_share(overview: dict[str, Any], definition: str) -> pd.Series | NotEstimable:
    """The overall NSFW share of models under ``definition`` from :func:`model_overview`."""
    key = f"nsfw_share_{definition}"
    if isinstance(overview[key], NotEstimable):
        return overview[key]
    return pd.Series({"n": overview["n_models"], "share": overview[key],
                      "ci_low": overview[f"{key}_ci_low"], "ci_high": overview[f"{key}_ci_high"]})
