"""Policy events as interrupted time series: a step planted in the synthetic generator's NSFW
path is recovered inside its interval, a path without a break gives an interval that covers 0,
and events the snapshot does not cover say why."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import clean, label, parameters, sources, synth
from helpers.analyse import policy
from helpers.paths import RunPaths
from helpers.stats import NotEstimable

STEP = 0.15
EVENT = {"date": "2024-06-01", "label": "planted break, synthetic sample only", "source": "test",
         "synthetic": True}


def nsfw_path(step: float) -> dict[str, float]:
    """A linear NSFW share over the default window with ``step`` added from 2024-06 on."""
    path = synth.linear_share_path(synth.DEFAULT_START, synth.DEFAULT_END, 0.30, 0.55)
    return {m: round(v + (step if m >= "2024-06" else 0.0), 4) for m, v in path.items()}


def labelled_images(folder: Path, step: float) -> Path:
    """The synthetic snapshot with the NSFW path of :func:`nsfw_path`, acquired, cleaned and
    labelled (images only)."""
    params = synth.default_params(n_images=30_000, n_models=300, seed=7, messy_rows=0,
                                  messy_model_rows=0, nsfw_share_by_month=nsfw_path(step))
    synth.write_snapshot(folder / "snapshot", params)
    paths = RunPaths(folder / "run").ensure()
    sources.acquire("local", paths, path=str(folder / "snapshot"))
    clean.clean_all(paths)
    label.label_images(paths)
    return paths.table("processed", "images")


def nsfw_row(images: Path, n_boot: int = 300) -> pd.Series:
    counts = policy.user_month_counts(images, None, None)
    its = policy.interrupted_time_series(counts, [EVENT], synthetic_run=True, n_boot=n_boot, seed=2)
    return its.set_index("series").loc["nsfw"]


def test_planted_nsfw_step_is_recovered(tmp_path):
    row = nsfw_row(labelled_images(tmp_path, STEP))
    assert row["not_estimable"] is None
    assert row["level_ci_low"] <= STEP <= row["level_ci_high"]
    assert row["level_boot_low"] <= STEP <= row["level_boot_high"]
    assert row["level_ci_low"] > 0.05  # the step is detected, not merely allowed
    assert row["slope_boot_low"] <= 0 <= row["slope_boot_high"]  # the planted slope does not change
    assert (row["months_before"], row["months_after"]) == (19, 7)


def test_no_break_gives_an_interval_covering_zero(tmp_path):
    row = nsfw_row(labelled_images(tmp_path, 0.0))
    assert row["level_ci_low"] <= 0 <= row["level_ci_high"]
    assert row["level_boot_low"] <= 0 <= row["level_boot_high"]
    assert abs(row["level_change"]) < 0.05


def binomial_counts(shares: dict[str, float], users: int = 40, per_user: int = 50,
                    seed: int = 0) -> pd.DataFrame:
    """Per user and month: images drawn with the month's NSFW share (no link)."""
    rng = np.random.default_rng(seed)
    rows = [{"user": f"u{u}", "month": m, "images": per_user, "n": per_user,
             "k": int(rng.binomial(per_user, s)), "rp": 0}
            for m, s in shares.items() for u in range(users)]
    out = pd.DataFrame(rows)
    out.attrs["linked"] = False
    return out


def test_segmented_regression_recovers_level_and_slope():
    months = synth.month_range("2022-01", "2024-12")
    t = np.arange(len(months)) / 12
    after = np.array([m >= "2023-07" for m in months])
    shares = 0.2 + 0.05 * t + 0.10 * after + 0.06 * after * (t - t[months.index("2023-07")])
    counts = binomial_counts(dict(zip(months, shares)))
    row = policy.interrupted_time_series(counts, [{**EVENT, "date": "2023-07-01"}],
                                         synthetic_run=True, n_boot=200).set_index("series").loc["nsfw"]
    assert row["level_ci_low"] <= 0.10 <= row["level_ci_high"]
    assert row["slope_ci_low"] <= 0.06 <= row["slope_ci_high"]
    assert row["slope_before_per_year"] == pytest.approx(0.05, abs=0.02)


def test_events_outside_the_snapshot_or_synthetic_say_why():
    months = synth.month_range("2022-11", "2024-12")
    counts = binomial_counts({m: 0.5 for m in months}, users=5)
    events = policy.validate_events(parameters.default("policy_events"))
    its = policy.interrupted_time_series(counts, events, synthetic_run=False, n_boot=20)
    assert its["not_estimable"].notna().all()
    real = its[~its["synthetic"]]
    assert real["not_estimable"].str.contains("6 are needed on each side").all()
    assert its.loc[its["synthetic"], "not_estimable"].str.contains("synthetic sample").all()
    # the real-person series needs a link table
    on_sample = policy.interrupted_time_series(counts, [EVENT], synthetic_run=True, n_boot=20)
    assert on_sample.set_index("series").loc["real_person", "not_estimable"].startswith("no link table")
    assert on_sample.set_index("series").loc["nsfw", "not_estimable"] is None


def test_event_month_handling():
    assert policy.break_month("2025-04-23") == ("2025-05", "2025-04")
    assert policy.break_month("2024-06-01") == ("2024-06", None)


@pytest.mark.parametrize("events, match", [
    ([{"date": "2025-13-01", "label": "x", "source": "y"}], "not a date"),
    ([{"date": "2025-01-01", "label": "x"}], "missing source"),
    ([{"date": "2025-01-01", "label": "x", "source": "y", "when": 1}], "unknown key"),
    ([{"date": "2025-01-01", "label": "x", "source": "y", "synthetic": "yes"}], "true or false"),
])
def test_bad_events_are_refused(events, match):
    with pytest.raises(parameters.ParameterError, match=match):
        parameters.parse_parameters({"policy_events": events})


def test_default_events_cite_their_source():
    for event in parameters.default("policy_events"):
        assert event["source"].startswith("https://civitai.com/articles/") or event.get("synthetic")


def test_enforcement_is_read_from_the_report_as_it_is():
    assert isinstance(policy.enforcement_from_report(None), NotEstimable)
    assert isinstance(policy.enforcement_from_report({"tables": {}}), NotEstimable)
    table = {"columns": ["uses_real_person_adapter", "n", "k", "share", "ci_low", "ci_high"],
             "rows": [[False, 100, 40, 0.4, 0.31, 0.5], [True, 50, 5, 0.1, 0.04, 0.21]]}
    frame = policy.enforcement_from_report({"tables": {policy.ENFORCEMENT_TABLE: table}})
    assert list(frame["share"]) == [0.4, 0.1]
