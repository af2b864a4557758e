"""How well the labels work: metrics, error analysis, the platform-miss check, the gold set,
the real-data validation report and the tables the label notebook shows.

* **Metrics** of the real-person labels against the platform's ``poi`` flag (precision,
  recall, F1, accuracy with seeded bootstrap intervals), the confusion matrix and what the
  errors look like (by model type and by the strongest rule cue that fired).
* **Platform misses**: unflagged models that score as real persons, estimated from the scores
  and from a hand check shipped with the package.
* **Depicted gender** against a hand-annotated gold set (``docs/codebook_depicted_gender.md``).
* **Marker precision** on real showcase prompts: a hand check of seeded samples of hits of
  every marker category (``docs/codebook_markers.md``), precision with Wilson intervals.
* **The real-data report**: the validation on the real 2023 API records, computed by
  ``python -m helpers validate --real PATH`` into ``docs/validation/real_records.{json,md}``
  (aggregates only) and shown by notebook 02 from that committed file on every machine.

No function here returns or prints a model's name; the real-data report carries no model id,
score or per-model cue either.
"""
from __future__ import annotations

import math
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .. import db
from ..paths import RunPaths, repo_root
from ..schema import (GENDERS, MARKER_CATEGORIES, MARKER_KINDS, MARKER_MIN_PRECISION,
                      MARKERS_DROPPED_ON_PROMPTS, marker_column)
from ..stats import wilson_bounds
from .images import LEXICON_VERSION, Lexicon, load_lexicon, match_markers
from .models import (CLASSIFIER_THRESHOLD, RULE_THRESHOLD, RULE_WEIGHTS, ModelLabelling,
                     depicted_gender, label_model_frame)


# --------------------------------------------------------------------------- evaluation
def binary_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Counts, precision, recall, F1 and accuracy of boolean predictions (NaN where undefined)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    tp = int(np.sum(t & p)); fp = int(np.sum(~t & p)); fn = int(np.sum(t & ~p)); tn = int(np.sum(~t & ~p))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    accuracy = (tp + tn) / len(t) if len(t) else float("nan")
    return {"n": len(t), "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision,
            "recall": recall, "f1": f1, "accuracy": accuracy}


def bootstrap_metrics(y_true: Any, y_pred: Any, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> pd.DataFrame:
    """Precision, recall, F1 and accuracy with percentile bootstrap CIs (rows resampled, seeded)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    point = binary_metrics(t, p)
    rng = np.random.default_rng(seed)
    names = ("precision", "recall", "f1", "accuracy")
    draws = {k: np.empty(n_boot) for k in names}
    for b in range(n_boot):
        idx = rng.integers(0, len(t), len(t))
        m = binary_metrics(t[idx], p[idx])
        for k in names:
            draws[k][b] = m[k]
    alpha = (1 - level) / 2
    rows = [{"metric": k, "estimate": point[k],
             "ci_low": float(np.nanquantile(draws[k], alpha)), "ci_high": float(np.nanquantile(draws[k], 1 - alpha)),
             "n": point["n"]} for k in names]
    return pd.DataFrame(rows)


def confusion_table(y_true: Any, y_pred: Any, truth_name: str = "poi",
                    pred_name: str = "predicted") -> pd.DataFrame:
    """2x2 confusion matrix as a tidy frame: truth, prediction, n."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    rows = [{truth_name: a, pred_name: b, "n": int(np.sum((t == a) & (p == b)))}
            for a in (True, False) for b in (True, False)]
    return pd.DataFrame(rows)


def evaluate_real_person(models: pd.DataFrame, scores: pd.DataFrame, n_boot: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """Metrics with bootstrap 95% CIs of rules alone and rules + classifier against ``poi``.

    Only models that carry ``poi`` are evaluated; classifier scores there are out-of-fold.
    Returns method, metric, estimate, ci_low, ci_high, n (empty if no model carries ``poi``).
    """
    poi = models["poi"].astype("boolean")
    mask = poi.notna().to_numpy()
    if not mask.any():
        return pd.DataFrame(columns=["method", "metric", "estimate", "ci_low", "ci_high", "n"])
    y = poi[mask].astype(bool).to_numpy()
    frames = [bootstrap_metrics(y, scores["rule_predicted"].to_numpy()[mask], n_boot, seed).assign(method="rules")]
    clf = scores["classifier_score"].to_numpy()[mask]
    if not np.isnan(clf).any():
        frames.append(bootstrap_metrics(y, clf >= CLASSIFIER_THRESHOLD, n_boot, seed)
                      .assign(method="rules+classifier"))
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "metric", "estimate", "ci_low", "ci_high", "n"]]


def calibrate_rule_threshold(rule_score: pd.Series, truth: pd.Series,
                             grid: Iterable[float] = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2))) -> float:
    """The threshold on ``rule_score`` that maximises F1 against ``truth`` (ties: the lowest)."""
    y = truth.astype(bool).to_numpy()
    s = rule_score.to_numpy()
    best = max(grid, key=lambda t: (binary_metrics(y, s >= t)["f1"], -t))
    return float(best)


def _cue_category(features: pd.DataFrame) -> pd.Series:
    """The strongest rule cue that fired for each model (a category, never a name)."""
    order = sorted(RULE_WEIGHTS, key=lambda k: -abs(RULE_WEIGHTS[k]))
    values = features[order].to_numpy()
    first = np.where(values.any(axis=1), values.argmax(axis=1), -1)
    return pd.Series([order[i] if i >= 0 else "no_cue" for i in first], index=features.index, name="cue")


def error_categories(models: pd.DataFrame, features: pd.DataFrame, y_true: Any, y_pred: Any) -> pd.DataFrame:
    """What the errors look like: false positives / negatives counted by model type and by the
    strongest rule cue that fired. Returns error, dimension, category, n, share (of that error)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    frame = pd.DataFrame({"type": models["type"].fillna("unknown").astype(str).to_numpy(),
                          "cue": _cue_category(features).to_numpy()})
    rows = []
    for error, mask in (("false_positive", ~t & p), ("false_negative", t & ~p)):
        sub = frame[mask]
        for dim in ("type", "cue"):
            counts = sub[dim].value_counts()
            for cat, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                rows.append({"error": error, "dimension": dim, "category": cat, "n": int(n),
                             "share": n / len(sub) if len(sub) else float("nan")})
    return pd.DataFrame(rows, columns=["error", "dimension", "category", "n", "share"])


#: Score above which a model the platform did not flag is counted as a likely platform miss.
PLATFORM_MISS_SCORE = 0.8


def platform_miss_estimate(models: pd.DataFrame, scores: pd.DataFrame, high: float = PLATFORM_MISS_SCORE,
                           score_column: str = "real_person_score") -> dict[str, float]:
    """How many models with ``poi`` False score as real persons anyway (share with Wilson CI)."""
    poi = models["poi"].astype("boolean")
    negatives = (poi == False).fillna(False).to_numpy()  # noqa: E712 (nullable boolean)
    n_neg = int(negatives.sum())
    hits = int((scores[score_column].to_numpy()[negatives] >= high).sum())
    low, upp = wilson_bounds(hits, n_neg)
    return {"score": score_column, "threshold": high, "poi_false": n_neg, "high_score": hits,
            "share": hits / n_neg if n_neg else float("nan"), "ci_low": low, "ci_high": upp}


def platform_miss_table(models: pd.DataFrame, scores: pd.DataFrame, high: float = PLATFORM_MISS_SCORE) -> pd.DataFrame:
    """Platform-miss estimate by the rules alone and by the final score, one row each.

    The rules never see ``poi``; the classifier learns the platform's own flagging habits from
    it, so it is the conservative of the two estimates.
    """
    return pd.DataFrame([platform_miss_estimate(models, scores, high, column)
                         for column in ("rule_score", "real_person_score")])


def platform_miss_sample(models: pd.DataFrame, scores: pd.DataFrame, features: pd.DataFrame, n: int = 20,
                         seed: int = 0, high: float = PLATFORM_MISS_SCORE,
                         score_column: str = "real_person_score") -> pd.DataFrame:
    """A seeded sample of likely platform misses for a hand check: id, type, score and the cues
    that fired (categories only, no names)."""
    poi = models["poi"].astype("boolean")
    mask = ((poi == False).fillna(False) & (scores[score_column] >= high)).to_numpy()  # noqa: E712
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False)) if len(idx) else idx
    cues = features.iloc[chosen]
    return pd.DataFrame({
        "model_id": models["model_id"].to_numpy()[chosen],
        "type": models["type"].to_numpy()[chosen],
        "score": np.round(scores[score_column].to_numpy()[chosen], 3),
        "cues": [", ".join(c for c in RULE_WEIGHTS if row[c] and RULE_WEIGHTS[c] > 0) for _, row in cues.iterrows()],
    }).sort_values("model_id", ignore_index=True)


# --------------------------------------------------------------------------- platform-miss hand check
PLATFORM_MISS_CHECK_FILE = "platform_miss_check.csv"
#: Verdicts of the hand check of likely platform misses (rubric: docs/codebook_depicted_gender.md,
#: "Platform-miss check"): an identifiable real individual / suggests one but unverifiable / not one.
PLATFORM_MISS_CHECK_LABELS: tuple[str, ...] = ("real_person", "plausible", "not_real_person")


def load_labelled_ids(filename: str, allowed: tuple[str, ...]) -> pd.DataFrame:
    """A hand-labelled resource shipped with the package (model_id, label), labels checked."""
    with resources.files("helpers").joinpath(f"resources/{filename}").open("r", encoding="utf-8") as fh:
        labelled = pd.read_csv(fh, dtype={"model_id": "int64", "label": "string"})
    bad = sorted(set(labelled["label"]) - set(allowed))
    if bad:
        raise ValueError(f"{filename} has labels outside {allowed}: {bad}")
    return labelled


def load_platform_miss_check() -> pd.DataFrame:
    """The hand check of likely platform misses shipped with the package: model_id, label."""
    return load_labelled_ids(PLATFORM_MISS_CHECK_FILE, PLATFORM_MISS_CHECK_LABELS)


def platform_miss_candidates(models: pd.DataFrame, high: float = PLATFORM_MISS_SCORE) -> pd.Series:
    """True for models the platform did not flag (``poi`` False) whose ``real_person_score`` is >= ``high``."""
    poi = models["poi"].astype("boolean")
    return ((poi == False).fillna(False) & (models["real_person_score"] >= high)).astype(bool)  # noqa: E712


def platform_miss_checked_estimate(models: pd.DataFrame, check: pd.DataFrame,
                                   high: float = PLATFORM_MISS_SCORE) -> pd.DataFrame:
    """Real-person models the platform flag misses, estimated from the hand check.

    ``models`` needs ``model_id``, ``poi`` and the out-of-fold ``real_person_score``; ``check``
    is :func:`load_platform_miss_check`. Only checked ids that are candidates now are counted.
    One row per definition of "confirmed" (``real_person``; ``real_person`` or ``plausible`` as
    the generous bound): the confirmed share with a Wilson 95% interval, candidates × share as
    the estimated number of misses, and that number as a share of all real-person models
    (``poi`` True + estimated misses). Misses scoring below ``high`` are not counted, so this is
    a lower bound. When every candidate was checked (``checked_all_candidates``) the count is
    exact for this snapshot and the interval describes the rate, not the count's uncertainty.
    """
    candidate = platform_miss_candidates(models, high)
    n_candidates = int(candidate.sum())
    n_poi_true = int(models["poi"].astype("boolean").fillna(False).sum())
    checked = check[check["model_id"].isin(models.loc[candidate, "model_id"])]
    n = len(checked)
    rows = []
    for counted, labels in (("real_person", {"real_person"}),
                            ("real_person or plausible", {"real_person", "plausible"})):
        k = int(checked["label"].isin(labels).sum())
        if n:
            low, upp = wilson_bounds(k, n)
            share = k / n
        else:
            share = low = upp = math.nan
        missed = [n_candidates * v for v in (share, low, upp)]
        # The share of misses rises with their number, so the interval's ends map to its ends.
        of_real = [m / (n_poi_true + m) if n_poi_true + m else math.nan for m in missed]
        rows.append({"counted": counted, "threshold": high, "candidates": n_candidates, "checked": n,
                     "checked_all_candidates": n == n_candidates, "confirmed": k, "share": share,
                     "ci_low": float(low), "ci_high": float(upp), "missed_estimate": missed[0],
                     "missed_low": missed[1], "missed_high": missed[2], "poi_true": n_poi_true,
                     "missed_share_of_real_person": of_real[0], "missed_share_low": of_real[1],
                     "missed_share_high": of_real[2]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- gold set (gender)
GOLD_GENDER_FILE = "gold_depicted_gender.csv"


def load_gold_gender() -> pd.DataFrame:
    """The hand-annotated gold set shipped with the package: model_id, label (see the codebook)."""
    return load_labelled_ids(GOLD_GENDER_FILE, GENDERS)


def evaluate_gender_gold(predicted: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of the gender labeller where it does not say ``unknown`` and its coverage, with
    Wilson 95% intervals. ``predicted`` has model_id and depicted_gender; only gold ids present
    in ``predicted`` are scored. Returns metric, estimate, ci_low, ci_high, successes, n."""
    merged = gold.merge(predicted[["model_id", "depicted_gender"]], on="model_id", how="inner")
    decided = merged["depicted_gender"] != "unknown"
    correct = int((merged.loc[decided, "depicted_gender"] == merged.loc[decided, "label"]).sum())
    gold_known = merged["label"] != "unknown"
    rows = []
    for metric, k, n in (
            ("accuracy_where_decided", correct, int(decided.sum())),
            ("coverage", int(decided.sum()), len(merged)),
            ("coverage_of_gold_known", int((decided & gold_known).sum()), int(gold_known.sum())),
            ("accuracy_overall", int((merged["depicted_gender"] == merged["label"]).sum()), len(merged))):
        low, high = wilson_bounds(k, n)
        rows.append({"metric": metric, "estimate": k / n if n else float("nan"), "ci_low": low,
                     "ci_high": high, "successes": k, "n": n})
    return pd.DataFrame(rows)


def gender_confusion(predicted: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Gold label × predicted label counts (all four genders on both axes)."""
    merged = gold.merge(predicted[["model_id", "depicted_gender"]], on="model_id", how="inner")
    table = pd.crosstab(pd.Categorical(merged["label"], categories=GENDERS),
                        pd.Categorical(merged["depicted_gender"], categories=GENDERS), dropna=False)
    table.index.name, table.columns.name = "gold", "predicted"
    return table


# --------------------------------------------------------------------------- marker precision
MARKER_CHECK_FILE = "marker_precision_check.csv"
#: Verdicts of the marker hand check (docs/codebook_markers.md): the hit is what its category
#: claims, or it is not.
MARKER_CHECK_LABELS: tuple[str, ...] = ("yes", "no")


def load_marker_check() -> pd.DataFrame:
    """The hand check of marker hits shipped with the package: category, image_id, label."""
    with resources.files("helpers").joinpath(f"resources/{MARKER_CHECK_FILE}").open("r", encoding="utf-8") as fh:
        check = pd.read_csv(fh, dtype={"category": "string", "image_id": "int64", "label": "string"})
    bad = sorted(set(check["label"]) - set(MARKER_CHECK_LABELS))
    unknown = sorted(set(check["category"]) - set(MARKER_CATEGORIES))
    if bad or unknown:
        raise ValueError(f"{MARKER_CHECK_FILE}: labels outside {MARKER_CHECK_LABELS}: {bad}; "
                         f"unknown categories: {unknown}")
    return check


def real_showcase_prompts(api_file: Path) -> pd.DataFrame:
    """Image id and positive prompt of every showcase image nested in the model records of a raw
    CivitAI API file, through the project's own flattening (first record of an id kept; empty
    prompts left out). Read in memory: used by the validation only, never written anywhere."""
    from collections import Counter

    from ..sources import iter_json_records
    from ..sources.raw import flatten_api_image, model_images

    rows: dict[int, str] = {}
    for record in iter_json_records(Path(api_file), Counter()):
        for image in model_images(record):
            flat = flatten_api_image(image)
            prompt, image_id = flat.get("prompt"), flat.get("image_id")
            if prompt and prompt.strip() and image_id is not None:
                rows.setdefault(int(image_id), prompt)
    return pd.DataFrame({"image_id": pd.array(list(rows), dtype="int64"), "prompt": list(rows.values())})


#: Hits drawn per category for the hand check (docs/codebook_markers.md, "Procedure").
MARKER_CHECK_SIZES: dict[str, int] = {"booru": 60, "pony": 60, "sexual": 60, "minor": 80,
                                      "real_person": 70}


def marker_check_sample(prompts: pd.DataFrame, lexicon: Lexicon, category: str, n: int,
                        seed: int) -> list[int]:
    """Image ids of a seeded sample of ``n`` hits of ``category`` (all hits when fewer), drawn
    as the codebook says: hits in image-id order, ``numpy.random.default_rng(seed).choice``."""
    ordered = prompts.sort_values("image_id", kind="stable")
    ids = [int(i) for i, p in zip(ordered["image_id"], ordered["prompt"])
           if match_markers(p, lexicon)[category]]
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(ids, size=min(n, len(ids)), replace=False)) if ids else []


def marker_precision_status(hits: int, still_checked: int, checked: int, precision: float,
                            category: str) -> str:
    """What became of a marker category after the hand check (see :func:`marker_precision`)."""
    if category in MARKERS_DROPPED_ON_PROMPTS:
        return "dropped on prompts"
    if hits == 0:
        return "no hits on these prompts"
    if math.isnan(precision) or precision < MARKER_MIN_PRECISION:
        return f"below {MARKER_MIN_PRECISION}: fix or drop"
    return "fixed (terms removed after the check)" if still_checked < checked else "kept"


def marker_precision(prompts: pd.DataFrame, check: pd.DataFrame, lexicon: Lexicon | None = None
                     ) -> pd.DataFrame:
    """Precision of every marker category on real prompts, from the hand check.

    ``prompts`` has image_id and prompt (:func:`real_showcase_prompts`); ``check`` is
    :func:`load_marker_check`. Only checked ids that are hits of the category under the current
    lexicon are scored: terms removed after the check drop their hits from the sample, and what
    remains is still a random sample of the current hits (they are a subset of the hits the
    sample was drawn from). One row per category: kind, prompts, hits, checked, still hits,
    correct, precision with a Wilson 95% interval, and status (kept, fixed, dropped on prompts,
    no hits, or below the threshold).
    """
    lexicon = lexicon or load_lexicon()
    hits = pd.DataFrame([match_markers(p, lexicon) for p in prompts["prompt"]],
                        index=prompts["image_id"].to_numpy(), columns=list(MARKER_CATEGORIES)).fillna(False)
    rows = []
    for cat in MARKER_CATEGORIES:
        mine = check[check["category"] == cat]
        hit_ids = set(hits.index[hits[cat].astype(bool).to_numpy()])
        scored = mine[mine["image_id"].isin(hit_ids)]
        n, k = len(scored), int((scored["label"] == "yes").sum())
        low, high = wilson_bounds(k, n)
        precision = k / n if n else math.nan
        rows.append({"category": cat, "kind": MARKER_KINDS[cat], "prompts": len(prompts),
                     "hits": len(hit_ids), "checked": len(mine), "checked_still_hits": n,
                     "correct": k, "precision": precision, "ci_low": low, "ci_high": high,
                     "status": marker_precision_status(len(hit_ids), n, len(mine), precision, cat)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- a run's own evaluation
def real_person_evaluation(models: pd.DataFrame, labelling: ModelLabelling, seed: int,
                           n_boot: int = 1000) -> dict[str, Any]:
    """Evaluation against the run's own ``poi`` (where present) as JSON-ready records."""
    poi = models["poi"].astype("boolean")
    mask = poi.notna().to_numpy()
    out: dict[str, Any] = {"n_with_poi": int(mask.sum()), "rule_threshold": RULE_THRESHOLD,
                           "classifier_threshold": CLASSIFIER_THRESHOLD}
    if not mask.any():
        return out
    y = poi[mask].astype(bool).to_numpy()
    final = labelling.scores["predicted"].to_numpy()[mask]
    out["metrics"] = evaluate_real_person(models, labelling.scores, n_boot=n_boot, seed=seed).to_dict("records")
    out["confusion"] = confusion_table(y, final).to_dict("records")
    out["errors"] = error_categories(models[mask], labelling.features[mask], y, final).to_dict("records")
    out["platform_miss"] = platform_miss_table(models, labelling.scores).to_dict("records")
    # The report is shown in notebook 02: what the sample is made of, never its ids or scores.
    out["platform_miss_sample"] = sample_composition(platform_miss_sample(
        models, labelling.scores, labelling.features, seed=seed, score_column="rule_score")).to_dict("records")
    return out


# --------------------------------------------------------------------------- report → tables
def nsfw_definition_shares(report: dict[str, Any]) -> pd.DataFrame:
    """Share of images and models that are NSFW under each definition (from the label report).

    The platform flag's share is over rows that carry the flag; the level definitions are over
    all rows. ``n`` is the denominator, so a missing flag is visible rather than hidden.
    """
    rows = []
    for table in ("images", "models"):
        counts = report.get(table) or {}
        if not counts.get("rows"):
            continue
        n_rows = counts["rows"]
        n_flag = counts.get("has_platform_flag", n_rows) if table == "images" else n_rows
        for definition, label_col, n in (("platform flag", "is_nsfw_platform", n_flag),
                                         ("level >= R", "is_nsfw_r", n_rows),
                                         ("level >= X", "is_nsfw_x", n_rows)):
            k = int(counts.get(label_col, 0))
            low, high = wilson_bounds(k, n)
            rows.append({"table": table, "definition": definition, "nsfw": k, "n": n,
                         "share": k / n if n else float("nan"), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["table", "definition", "nsfw", "n", "share", "ci_low", "ci_high"])


def marker_prevalence(report: dict[str, Any]) -> pd.DataFrame:
    """Share of image prompts and of model tag lists with each marker category, and LoRA calls."""
    rows = []
    for table, denominator in (("images", "with_prompt"), ("models", "rows")):
        counts = report.get(table) or {}
        n = counts.get(denominator) or 0
        if not n:
            continue
        for cat in MARKER_CATEGORIES:
            k = int(counts.get(marker_column(cat), 0))
            rows.append({"table": table, "marker": cat, "n_marked": k, "n": n, "share": k / n})
        if table == "images":
            k = int(counts.get("with_lora", 0))
            rows.append({"table": table, "marker": "lora call (n_lora > 0)", "n_marked": k, "n": n, "share": k / n})
    return pd.DataFrame(rows, columns=["table", "marker", "n_marked", "n", "share"])


def gender_distribution(report: dict[str, Any]) -> pd.DataFrame:
    """Depicted gender of real-person models (counts and shares) from the label report."""
    counts = ((report.get("models") or {}).get("depicted_gender")) or {}
    real = int(((report.get("models") or {}).get("is_real_person")) or 0)
    rows = [{"depicted_gender": g, "models": int(counts.get(g, 0)),
             "share_of_real_person_models": counts.get(g, 0) / real if real else float("nan")} for g in GENDERS]
    return pd.DataFrame(rows)


def evaluation_frames(report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The real-person evaluation stored in the label report as tidy frames (empty if none)."""
    ev = ((report.get("models") or {}).get("evaluation")) or {}
    return {"metrics": pd.DataFrame(ev.get("metrics", [])), "confusion": pd.DataFrame(ev.get("confusion", [])),
            "errors": pd.DataFrame(ev.get("errors", [])),
            "platform_miss": pd.DataFrame(ev.get("platform_miss", [])),
            "platform_miss_sample": pd.DataFrame(ev.get("platform_miss_sample", []))}


# --------------------------------------------------------------------------- real-data evaluation
def real_data_models(api_file: Path, work: Path) -> pd.DataFrame:
    """Canonical interim models of a raw CivitAI API file, through the project's own adapter
    and cleaner (models only), built under ``work`` (a scratch run folder, removed after)."""
    import shutil
    from collections import Counter

    from .. import clean, sources

    scratch = RunPaths(Path(work)).ensure()
    try:
        repairs: Counter = Counter()
        sources.write_raw_models(sources.iter_json_records(Path(api_file), repairs),
                                 scratch.table("raw", "models"), salt="", repairs=repairs)
        clean.clean_table("models", scratch)
        return pq.read_table(scratch.table("interim", "models")).to_pandas()
    finally:
        shutil.rmtree(scratch.root, ignore_errors=True)


def real_data_evaluation(models: pd.DataFrame, seed: int, n_boot: int = 1000) -> dict[str, pd.DataFrame]:
    """The validation on real records: real-person metrics (out-of-fold, vs ``poi``), the rule
    threshold re-calibrated on the data, the platform-miss estimate (score-based and from the
    hand check), and gold-set gender accuracy."""
    labelling = label_model_frame(models, seed=seed)
    poi = models["poi"].astype("boolean")
    mask = poi.notna().to_numpy()
    y = poi[mask].astype(bool)
    predicted = pd.DataFrame({"model_id": models["model_id"], "depicted_gender": labelling.labels["depicted_gender"]})
    # Gold labels are judged on poi models; the labeller is run on them as real persons.
    gold = load_gold_gender()
    gold_models = models[models["model_id"].isin(gold["model_id"])]
    gold_pred = pd.DataFrame({"model_id": gold_models["model_id"],
                              "depicted_gender": depicted_gender(gold_models, pd.Series(True, index=gold_models.index))})
    return {
        "metrics": evaluate_real_person(models, labelling.scores, n_boot=n_boot, seed=seed),
        "confusion": confusion_table(y.to_numpy(), labelling.scores["predicted"].to_numpy()[mask]),
        "errors": error_categories(models[mask], labelling.features[mask], y.to_numpy(),
                                   labelling.scores["predicted"].to_numpy()[mask]),
        "calibrated_rule_threshold": pd.DataFrame([{
            "shipped": RULE_THRESHOLD,
            "f1_maximising_on_this_data": calibrate_rule_threshold(labelling.scores["rule_score"][mask], y)}]),
        "platform_miss": platform_miss_table(models, labelling.scores),
        "platform_miss_sample": platform_miss_sample(models, labelling.scores, labelling.features, n=30, seed=seed,
                                                     score_column="rule_score"),
        "platform_miss_check": platform_miss_checked_estimate(
            models.assign(real_person_score=labelling.scores["real_person_score"]), load_platform_miss_check()),
        "gender_gold": evaluate_gender_gold(gold_pred, gold),
        "gender_confusion": gender_confusion(gold_pred, gold).reset_index(),
        "gender_distribution": predicted[labelling.labels["is_real_person"].fillna(False).to_numpy()]
        ["depicted_gender"].value_counts().reindex(list(GENDERS), fill_value=0).rename_axis("depicted_gender")
        .reset_index(name="models"),
    }


# --------------------------------------------------------------------------- targets and summaries
#: Targets of the real-data validation (shown beside the measured values; the real-data tests
#: enforce them).
REAL_PERSON_F1_TARGETS: dict[str, float] = {"rules": 0.85, "rules+classifier": 0.88}
GENDER_ACCURACY_TARGET = 0.95


def nsfw_definition_spread(shares: pd.DataFrame) -> pd.DataFrame:
    """How far the headline NSFW share moves between definitions, per table (percentage points)."""
    rows = []
    for table, group in shares.groupby("table", sort=True):
        low = group.loc[group["share"].idxmin()]
        high = group.loc[group["share"].idxmax()]
        rows.append({"table": table, "lowest": low["definition"], "lowest_share": low["share"],
                     "highest": high["definition"], "highest_share": high["share"],
                     "spread_points": 100 * (high["share"] - low["share"])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the real-data report
#: Where the committed report lives, relative to the repository root.
REPORT_FOLDER = Path("docs") / "validation"
REPORT_STEM = "real_records"
#: Decimals kept in the report: enough for every shown figure, few enough that the last bits of
#: floating-point arithmetic (BLAS, platform) cannot make two computations of it differ.
REPORT_DECIMALS = 6
#: Bootstrap resamples of the report's intervals (the label stage's default).
REPORT_BOOTSTRAP = 1000
#: Tables of the report, in the order they are shown.
REPORT_TABLES: tuple[str, ...] = (
    "metrics", "confusion", "calibrated_rule_threshold", "errors", "platform_miss",
    "platform_miss_sample", "platform_miss_check", "gender_gold", "gender_confusion",
    "gender_distribution", "marker_precision")
#: One line per table, for the Markdown report.
REPORT_TABLE_TITLES: dict[str, str] = {
    "metrics": "Real-person label vs the platform's `poi` flag (out-of-fold; bootstrap 95% CIs)",
    "confusion": "Confusion matrix of the final real-person prediction",
    "calibrated_rule_threshold": "Rule threshold: shipped vs F1-maximising on these records",
    "errors": "Misclassified models by type and by the strongest rule cue that fired (counts)",
    "platform_miss": "Unflagged models that score as real persons (likely platform misses)",
    "platform_miss_sample": "Seeded sample of likely platform misses: counts by type and by cue",
    "platform_miss_check": "Platform misses confirmed by the hand check (Wilson 95% CIs)",
    "gender_gold": "Depicted gender vs the hand-annotated gold set (Wilson 95% CIs)",
    "gender_confusion": "Depicted gender: gold label x predicted label",
    "gender_distribution": "Depicted gender of the models labelled real persons",
    "marker_precision": "Marker categories on real showcase prompts: precision of the hand-checked "
                        "hits (Wilson 95% CIs; docs/codebook_markers.md)",
}


def shared_real_data_file() -> Path | None:
    """The real 2023 API records next to the repository (``../shared/data``), if present."""
    path = repo_root().parent / "shared" / "data" / "civitai-api-models-2023" / "models.jsonl.gz"
    return path if path.exists() else None


def report_paths(folder: Path | None = None) -> tuple[Path, Path]:
    """The JSON and Markdown files of the real-data report (default: the repository's copy)."""
    folder = Path(folder) if folder is not None else repo_root() / REPORT_FOLDER
    return folder / f"{REPORT_STEM}.json", folder / f"{REPORT_STEM}.md"


def _plain(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars as Python ones, floats rounded, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), REPORT_DECIMALS) + 0.0
    if value is None or value is pd.NA:
        return None
    return str(value)


def sample_composition(sample: pd.DataFrame) -> pd.DataFrame:
    """What a platform-miss sample is made of, without its ids and scores: how many sampled
    models have each type and how many had each cue fire (dimension, category, n)."""
    rows = [{"dimension": "sampled", "category": "models", "n": len(sample)}]
    types = sample["type"].fillna("unknown").astype(str).value_counts()
    rows += [{"dimension": "type", "category": t, "n": int(n)}
             for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]
    cues = pd.Series([c for text in sample["cues"] for c in str(text).split(", ") if c]).value_counts()
    rows += [{"dimension": "cue", "category": c, "n": int(n)}
             for c, n in sorted(cues.items(), key=lambda kv: (-kv[1], kv[0]))]
    return pd.DataFrame(rows, columns=["dimension", "category", "n"])


def real_records_report(models: pd.DataFrame, seed: int, n_boot: int = REPORT_BOOTSTRAP,
                        source: dict[str, Any] | None = None,
                        prompts: pd.DataFrame | None = None) -> dict[str, Any]:
    """The real-data validation as a JSON-ready report of aggregates only.

    ``models`` are the canonical models of the real records (:func:`real_data_models`). The
    tables are those of :func:`real_data_evaluation`, except that the sample of likely
    platform misses is reduced to its composition (:func:`sample_composition`): the report
    carries no model id, name, score or per-model cue. ``prompts`` (:func:`real_showcase_prompts`)
    add the marker precision of the hand check; without them that table is empty.
    """
    evaluation = real_data_evaluation(models, seed=seed, n_boot=n_boot)
    evaluation["platform_miss_sample"] = sample_composition(evaluation["platform_miss_sample"])
    no_prompts = pd.DataFrame({"image_id": pd.array([], dtype="int64"), "prompt": []})
    precision = marker_precision(no_prompts if prompts is None else prompts, load_marker_check())
    evaluation["marker_precision"] = precision.iloc[0:0] if prompts is None else precision
    poi = models["poi"].astype("boolean")
    return _plain({
        "generated_by": "python -m helpers validate --real PATH",
        "source": source or {},
        "parameters": {"seed": seed, "n_boot": n_boot, "lexicon_version": LEXICON_VERSION,
                       "rule_threshold": RULE_THRESHOLD, "classifier_threshold": CLASSIFIER_THRESHOLD,
                       "platform_miss_score": PLATFORM_MISS_SCORE},
        "targets": {"real_person_f1": REAL_PERSON_F1_TARGETS,
                    "gender_accuracy_where_decided": GENDER_ACCURACY_TARGET,
                    "marker_precision": MARKER_MIN_PRECISION},
        "records": {"models": len(models), "with_poi": int(poi.notna().sum()),
                    "poi_true": int(poi.fillna(False).sum())},
        "tables": {name: table_json(evaluation[name]) for name in REPORT_TABLES},
    })


def table_json(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as ``{"columns": [...], "rows": [[...], ...]}``: the column order survives the
    report's sorted keys."""
    return {"columns": [str(c) for c in frame.columns], "rows": frame.to_numpy(dtype=object).tolist()}


def source_description(api_file: Path) -> dict[str, Any]:
    """How the report names its input: folder and file name (never an absolute path) and hash."""
    from ..pipeline import sha256_file  # local import: the runner is not a dependency of labelling

    api_file = Path(api_file)
    return {"file": f"{api_file.parent.name}/{api_file.name}", "sha256": sha256_file(api_file)}


def compute_real_records_report(api_file: Path, seed: int, n_boot: int = REPORT_BOOTSTRAP) -> dict[str, Any]:
    """:func:`real_records_report` of a raw CivitAI API file, built in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="label-realdata-") as work:
        models = real_data_models(Path(api_file), Path(work) / "run")
    return real_records_report(models, seed=seed, n_boot=n_boot, source=source_description(api_file),
                               prompts=real_showcase_prompts(Path(api_file)))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(table: dict[str, Any]) -> str:
    """A report table (:func:`table_json`) as a GitHub Markdown table (floats to three decimals)."""
    if not table["rows"]:
        return "(no rows)\n"
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: what it is, how it is made, and every table."""
    p, rec, src = report["parameters"], report["records"], report.get("source", {})
    targets = report["targets"]
    f1 = ", ".join(f"{k} >= {v}" for k, v in targets["real_person_f1"].items())
    parts = [
        "# Validation of the labels on real CivitAI records\n",
        "Generated by `python -m helpers validate --real PATH`; do not edit by hand. The numbers "
        "are aggregates only: no model id, name, score or per-model cue. Notebook 02 shows this "
        "report from `real_records.json`; `tests/test_label_realdata.py` recomputes it from the "
        "real records (when present) and checks that it equals the committed copy.\n",
        f"- input: `{src.get('file', '')}` (sha256 `{src.get('sha256', '')}`), not part of the repository",
        f"- models: {rec['models']}, with `poi`: {rec['with_poi']}, `poi` true: {rec['poi_true']}",
        f"- seed {p['seed']}, {p['n_boot']} bootstrap resamples, lexicon v{p['lexicon_version']}, "
        f"rule threshold {p['rule_threshold']}, classifier threshold {p['classifier_threshold']}, "
        f"platform-miss score >= {p['platform_miss_score']}",
        f"- targets: real-person F1 {f1}; gender accuracy where decided >= "
        f"{targets['gender_accuracy_where_decided']}; marker precision >= "
        f"{targets.get('marker_precision', '')} (or the marker is fixed or dropped)\n",
    ]
    for name in REPORT_TABLES:
        parts.append(f"## {REPORT_TABLE_TITLES[name]}\n")
        parts.append(markdown_table(report["tables"][name]))
    return "\n".join(parts)


def write_real_records_report(report: dict[str, Any], folder: Path | None = None) -> tuple[Path, Path]:
    """Write the report as JSON (sorted keys) and Markdown, atomically; return both paths."""
    json_path, md_path = report_paths(folder)
    db.write_json_atomic(report, json_path)
    db.write_text_atomic(report_markdown(report), md_path)
    return json_path, md_path


def load_real_records_report(path: Path | None = None) -> dict[str, Any] | None:
    """The committed real-data report (``docs/validation/real_records.json``); None if absent."""
    import json

    path = Path(path) if path is not None else report_paths()[0]
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def real_person_validation_counts(report: dict[str, Any] | None = None) -> dict[str, int] | None:
    """The predicted real-person label's confusion counts against ``poi`` on the real records,
    as the arguments of :func:`helpers.analyse.real_person.rogan_gladen`; None without a report."""
    report = load_real_records_report() if report is None else report
    if report is None:
        return None
    conf = real_records_frames(report)["confusion"]
    n = {(bool(r.poi), bool(r.predicted)): int(r.n) for r in conf.itertuples()}
    tp, fn = n.get((True, True), 0), n.get((True, False), 0)
    tn, fp = n.get((False, False), 0), n.get((False, True), 0)
    return {"true_positives": tp, "condition_positives": tp + fn,
            "true_negatives": tn, "condition_negatives": tn + fp}


def real_records_frames(report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The report's tables as frames, in the order they are shown (a table an older report
    lacks is left out)."""
    return {name: pd.DataFrame(report["tables"][name]["rows"], columns=report["tables"][name]["columns"])
            for name in REPORT_TABLES if name in report["tables"]}

