"""Labelling validated on real CivitAI records (../shared/data; skipped with a reason when absent).

Targets: real-person F1 against the platform's ``poi`` flag, out-of-fold, >= 0.85 for
the rules alone and >= 0.88 with the classifier; depicted-gender accuracy >= 0.95 on the
hand-annotated gold set where the labeller does not say ``unknown``. No output may name a
real person depicted by a model. The committed real-data report
(``docs/validation/real_records.json``, which notebook 02 shows) is recomputed here and must
equal the committed copy.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import db
from helpers import label

pytestmark = pytest.mark.realdata

SEED = 20250507  # the study's default seed (pipeline parameter `seed`)
F1_RULES_TARGET = 0.85
F1_CLASSIFIER_TARGET = 0.88
GENDER_ACCURACY_TARGET = 0.95


@pytest.fixture(scope="module")
def real_models(api_run) -> pd.DataFrame:
    """Interim models of the real records, via the project's api adapter and cleaner."""
    return pq.read_table(api_run.table("interim", "models")).to_pandas()


@pytest.fixture(scope="module")
def evaluation(real_models) -> dict[str, pd.DataFrame]:
    return label.real_data_evaluation(real_models, seed=SEED, n_boot=500)


def poi_names(api_file: Path, min_length: int = 6) -> list[str]:
    """Names of the real-person (poi) models in the raw records, long enough to be specific."""
    names = set()
    with gzip.open(api_file, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            name = str(rec.get("name") or "").strip()
            if rec.get("poi") and len(name) >= min_length:
                names.add(name)
    return sorted(names)


def test_real_person_f1_meets_targets_out_of_fold(real_models, evaluation):
    metrics = evaluation["metrics"].set_index(["method", "metric"])
    n_poi = int(real_models["poi"].notna().sum())
    assert (metrics["n"] == n_poi).all()
    rules_f1 = metrics.loc[("rules", "f1"), "estimate"]
    clf_f1 = metrics.loc[("rules+classifier", "f1"), "estimate"]
    assert rules_f1 >= F1_RULES_TARGET, f"rules-alone F1 {rules_f1:.3f} < {F1_RULES_TARGET}"
    assert clf_f1 >= F1_CLASSIFIER_TARGET, f"rules+classifier F1 {clf_f1:.3f} < {F1_CLASSIFIER_TARGET}"
    for method in ("rules", "rules+classifier"):
        row = metrics.loc[(method, "f1")]
        assert row["ci_low"] < row["estimate"] < row["ci_high"]
    confusion = evaluation["confusion"]
    assert confusion["n"].sum() == n_poi


def test_shipped_rule_threshold_is_as_good_as_the_calibrated_one(real_models):
    features = label.real_person_rule_features(real_models)
    rule = label.real_person_rule_score(features)
    poi = real_models["poi"].astype(bool)
    best = label.calibrate_rule_threshold(rule, poi)
    f1_best = label.binary_metrics(poi, rule >= best)["f1"]
    f1_shipped = label.binary_metrics(poi, rule >= label.RULE_THRESHOLD)["f1"]
    assert f1_shipped >= f1_best - 0.005


def test_gold_set_is_real_poi_models(real_models):
    gold = label.load_gold_gender()
    known = real_models.set_index("model_id")
    assert gold["model_id"].isin(known.index).all(), "gold ids missing from the real records"
    assert known.loc[gold["model_id"], "poi"].all(), "gold set must be drawn from poi models"


def test_depicted_gender_accuracy_on_gold_set(evaluation):
    ev = evaluation["gender_gold"].set_index("metric")
    acc = ev.loc["accuracy_where_decided"]
    assert acc["n"] >= 200
    assert acc["estimate"] >= GENDER_ACCURACY_TARGET, f"gold accuracy {acc['estimate']:.3f}"
    assert acc["ci_low"] <= acc["estimate"] <= acc["ci_high"]
    assert ev.loc["coverage", "estimate"] >= 0.8  # "unknown" must not become the easy way out


def test_platform_misses_are_estimated_and_listed_without_names(evaluation):
    miss = evaluation["platform_miss"].set_index("score")
    assert miss.loc["rule_score", "high_score"] > 0
    assert miss.loc["real_person_score", "high_score"] <= miss.loc["rule_score", "poi_false"]
    sample = evaluation["platform_miss_sample"]
    assert list(sample.columns) == ["model_id", "type", "score", "cues"] and len(sample) > 0
    assert (sample["score"] >= label.PLATFORM_MISS_SCORE).all()


def test_platform_miss_check_covers_current_candidates(real_models):
    labelling = label.label_model_frame(real_models, seed=SEED)
    scored = real_models.assign(real_person_score=labelling.scores["real_person_score"])
    candidates = set(scored.loc[label.platform_miss_candidates(scored), "model_id"])
    check = label.load_platform_miss_check()
    not_candidates = sorted(set(check["model_id"]) - candidates)
    assert not not_candidates, f"checked ids no longer high-score & poi False: {not_candidates}"
    # The checked ids are the documented seeded sample (codebook, "Platform-miss check").
    sample = label.platform_miss_sample(real_models, labelling.scores, labelling.features, n=40, seed=SEED,
                                        score_column="real_person_score")
    assert set(sample["model_id"]) == set(check["model_id"])


def test_platform_miss_estimate_reports_the_lower_bound(evaluation):
    est = evaluation["platform_miss_check"].set_index("counted")
    strict = est.loc["real_person"]
    assert strict["checked"] == len(label.load_platform_miss_check())
    assert np.isfinite(strict["ci_low"]) and 0 < strict["ci_low"] <= strict["share"] <= strict["ci_high"] <= 1
    assert np.isfinite(strict["missed_low"]) and strict["missed_low"] <= strict["missed_estimate"]
    assert 0 < strict["missed_share_low"] <= strict["missed_share_of_real_person"] < 1
    assert est.loc["real_person or plausible", "confirmed"] >= strict["confirmed"]


def test_evaluation_outputs_name_no_real_person(real_data, evaluation):
    text = "\n".join(frame.to_csv() for frame in evaluation.values())
    leaked = [n for n in poi_names(real_data) if n in text]
    assert not leaked, f"{len(leaked)} real-person model names appear in evaluation outputs"


def test_sql_labels_equal_pandas_labels_on_real_prompts(api_run):
    counts = label.label_images(api_run)
    interim = pq.read_table(api_run.table("interim", "images")).to_pandas()
    processed = db.read_table(api_run.table("processed", "images")).to_pandas()
    assert counts["rows"] == len(interim) == len(processed)
    assert (processed["image_id"].to_numpy() == interim["image_id"].to_numpy()).all()
    expected = label.label_image_frame(interim)
    for col in expected.columns:
        got = processed[col].astype(object).where(processed[col].notna(), None).tolist()
        want = expected[col].astype(object).where(expected[col].notna(), None).tolist()
        mismatches = sum(a != b for a, b in zip(got, want))  # None == None counts as agreement
        assert mismatches == 0, f"{col}: {mismatches} rows differ between SQL and pandas"
    assert counts["with_lora"] > 0 and counts["mk_sexual"] > 0


def test_label_all_report_on_real_data_names_no_one(real_data, api_run):
    report = label.label_all(api_run, seed=SEED, n_boot=200)
    text = json.dumps(report)
    assert report["rows"]["models"] == pq.ParquetFile(api_run.table("processed", "models")).metadata.num_rows
    assert report["models"]["real_person_source"] == {"platform": report["rows"]["models"]}
    gender = report["models"]["depicted_gender"]
    assert sum(gender.values()) == report["models"]["is_real_person"]
    assert gender["female"] > gender["male"]  # the study's headline, on real 2023 records
    leaked = [n for n in poi_names(real_data) if n in text]
    assert not leaked, f"{len(leaked)} real-person model names appear in the label report"


# --------------------------------------------------------------------------- the committed report
def test_committed_report_equals_the_recomputed_one(real_data, tmp_path):
    """``docs/validation/real_records.{json,md}`` are what ``validate --real`` writes today:
    regenerate them (``python -m helpers validate --real PATH``) when the labelling changes."""
    committed_json, committed_md = label.report_paths()
    assert committed_json.exists(), "docs/validation/real_records.json is missing"
    cmd = [sys.executable, "-m", "helpers", "validate", "--real", str(real_data), "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh_json, fresh_md = label.report_paths(tmp_path)
    assert json.loads(fresh_json.read_text()) == json.loads(committed_json.read_text()), \
        "the committed real-data report is stale: run `python -m helpers validate --real PATH`"
    assert fresh_json.read_bytes() == committed_json.read_bytes()
    assert fresh_md.read_bytes() == committed_md.read_bytes()


def test_committed_report_names_no_real_person_and_shows_no_model_id(real_data):
    text = "\n".join(p.read_text(encoding="utf-8") for p in label.report_paths())
    leaked = [n for n in poi_names(real_data) if n in text]
    assert not leaked, f"{len(leaked)} real-person model names appear in the committed report"
    with gzip.open(real_data, "rt", encoding="utf-8") as fh:
        ids = {str(json.loads(line)["id"]) for line in fh}
    report = label.load_real_records_report()
    cells = {str(v) for t in report["tables"].values() for row in t["rows"] for v in row}
    # Counts may coincide with small ids; a cell that is an id of 5+ digits would be one.
    assert not {c for c in cells & ids if len(c) >= 5}, "a real model id appears in the report"


def _published_files(out: Path) -> list[Path]:
    """Files a run publishes: executed notebooks, figures, tables, numbers, reports."""
    roots = [out / "notebooks", out / "paper", out / "data" / "reports"]
    return sorted(p for r in roots if r.exists() for p in r.rglob("*") if p.is_file())


@pytest.mark.slow
def test_pipeline_on_real_data_publishes_no_real_person_name(real_data, tmp_path):
    """The whole pipeline on the real records: no poi model's name in anything it publishes."""
    path = real_data
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers", "run", "--quiet", "--source", "api", "--path", str(path),
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    files = _published_files(out)
    assert any(f.suffix == ".ipynb" for f in files)
    names = [n.encode("utf-8") for n in poi_names(real_data)]
    leaks = {}
    for f in files:
        blob = f.read_bytes()
        hits = [n for n in names if n in blob]
        if hits:
            leaks[str(f.relative_to(out))] = len(hits)
    assert not leaks, f"real-person model names published in: {leaks}"
    report = json.loads((out / "data" / "reports" / "label.json").read_text()) \
        if (out / "data" / "reports" / "label.json").exists() else None
    if report is not None:
        assert np.isfinite(report["rows"]["models"])


# --------------------------------------------------------------------------- marker precision
def test_marker_check_is_the_documented_seeded_sample(real_data):
    """The hand-checked ids are the seeded sample of hits the codebook describes, drawn under the
    lexicon as it stood before the check (v2 with 'kid' and 'kids' among the minor-coded terms)."""
    prompts = label.real_showcase_prompts(real_data)
    current = label.load_lexicon()
    before = label.Lexicon(version=current.version, categories={
        **current.categories, "minor": (*current.categories["minor"], "kid", "kids")})
    check = label.load_marker_check()
    for cat, n in label.MARKER_CHECK_SIZES.items():
        drawn = label.marker_check_sample(prompts, before, cat, n, SEED)
        assert sorted(check.loc[check["category"] == cat, "image_id"]) == drawn, cat
