"""Degenerate but valid snapshots run to the end, and say "not estimable" (with the reason)
wherever there is nothing to estimate from: every variant of :mod:`degenerate` goes through
the study's stages (:func:`helpers.pipeline.run_study_in_process`, what notebooks 00–05 call);
combinations of them are drawn by hypothesis; the issue's own example runs through the real
runner (papermill)."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import nbformat
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from degenerate import VARIANTS, base_tables, plain_prompt_snapshot, write_variant
from helpers import analyse, paper, pipeline, plots
from helpers.paths import RunPaths
from helpers.stats import NOT_ESTIMABLE_TEXT, NotEstimable

Tables = tuple[pd.DataFrame | None, pd.DataFrame | None]
NO_IMAGES = {"models_only"}
NO_MODELS = {"images_only"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    return base_tables(tmp_path_factory.mktemp("degenerate_base"))


@pytest.fixture(scope="module")
def study(base, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], pipeline.StudyOutputs]:
    """Variant name → its full run (each variant runs once per module)."""
    done: dict[str, pipeline.StudyOutputs] = {}
    root = tmp_path_factory.mktemp("degenerate_runs")

    def run(name: str) -> pipeline.StudyOutputs:
        if name not in done:
            snapshot = write_variant(name, *base, root / "snapshots" / name)
            done[name] = pipeline.run_study_in_process(RunPaths(root / "runs" / name),
                                                       path=str(snapshot), n_boot=20)
        return done[name]
    return run


def not_estimable_fields(results: Any) -> dict[str, str]:
    """``field`` or ``field.key`` → reason, for every not-estimable part of a results object."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(results):
        value = getattr(results, f.name)
        if isinstance(value, NotEstimable):
            out[f.name] = value.reason
        elif isinstance(value, dict):
            out.update({f"{f.name}.{k}": v.reason for k, v in value.items()
                        if isinstance(v, NotEstimable)})
    return out


def check_outputs_say_why(out: pipeline.StudyOutputs) -> None:
    """What reaches the reader: numbers, macros, tables and figures of a finished run."""
    paths = out.paths
    stored = paper.read_numbers(paths)["numbers"]
    assert stored.keys() == out.numbers.keys()
    for key, number in stored.items():
        assert "nan" not in number["text"].lower() and number["text"] != "n/a", (key, number)
        if number["value"] is None and number["kind"] != "text":
            assert number["text"] == NOT_ESTIMABLE_TEXT and number["reason"], (key, number)
    tex = (paths.paper / paper.NUMBERS_TEX).read_text(encoding="utf-8")
    for key, why in paper.not_estimable_reasons(out.numbers, bounds=True).items():
        assert f"\\newcommand{{\\{paper.macro_name(key)}}}{{{NOT_ESTIMABLE_TEXT}}}" in tex, key
    for table in paths.tables.glob("*.tex"):
        assert not re.search(r"\bnan\b", table.read_text(encoding="utf-8"), re.I), table.name
    for name in out.figures:
        assert (paths.figures / f"{name}.pdf").exists() and (paths.figures / f"{name}.png").exists()
    # Every table, figure and macro of the manuscript is there for the tables the snapshot has.
    check = paper.manuscript_check(paths)
    if out.images is not None and out.models is not None:
        assert (check["status"] == "ok").all(), check[check["status"] != "ok"]
    # What was saved reads back the same, reasons included (notebook 05 reads it back).
    for results in (out.images, out.models):
        if results is not None:
            back = type(results).load_from_run(paths)
            assert not_estimable_fields(back) == not_estimable_fields(results)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_runs_to_the_end(study, name: str):
    out = study(name)
    assert (out.images is None) == (name in NO_IMAGES)
    assert (out.models is None) == (name in NO_MODELS)
    figures = [] if name in NO_IMAGES else list(plots.IMAGE_FIGURES)
    figures += [] if name in NO_MODELS else list(plots.MODEL_FIGURES)
    assert out.figures == figures
    check_outputs_say_why(out)


SFW = "every image is SFW under this definition"
#: Variant → (results part, field) → the reason it is not estimable (None: it is estimable).
EXPECTED: dict[str, dict[tuple[str, str], str | None]] = {
    "no_adapter_call": {("images", "adapter"): "no image calls an adapter",
                        ("images", "adapter_monthly"): "no image calls an adapter",
                        ("images", "lora_trend"): "no image calls an adapter: no trend",
                        ("images", "trend.r"): None, ("images", "engagement"): None},
    "one_month": {("images", f"trend.{d}"): "one month only: no trend" for d in analyse.NSFW_DEFINITIONS}
    | {("images", "lora_trend"): "one month only: no trend", ("images", "adapter"): None},
    "one_day": {("images", "trend.r"): "one month only: no trend"},
    "gap_month": {("images", "trend.r"): "two months with data: a trend needs at least three"},
    "all_sfw": {("images", f"trend.{d}"): f"{SFW} ({label}): no trend"
                for d, label in analyse.NSFW_DEFINITION_LABELS.items()}
    | {("images", "engagement"): f"{SFW} (level ≥ R)", ("images", "terms"): f"{SFW} (level ≥ R)",
       ("models", "engagement_nsfw"): "every model is SFW under this definition (level ≥ R)"},
    "all_nsfw": {("images", "trend.x"): "every image is NSFW under this definition (level ≥ X): no trend",
                 ("images", "engagement"): "every image is NSFW under this definition (level ≥ R)"},
    "one_user": {("images", "concentration"): f"fewer than {analyse.MIN_USERS} users posted images "
                                              "(privacy floor)",
                 ("images", "lorenz"): f"fewer than {analyse.MIN_USERS} users posted images "
                                       "(privacy floor)"},
    "every_image_its_own_user": {("images", "concentration"): None, ("images", "concentration.gini"): None},
    "no_real_person_models": {("models", "gender"): "no model depicts a real person",
                              ("models", "nsfw_by_real_person"): "no model depicts a real person",
                              ("models", "engagement"): "no model depicts a real person",
                              ("models", "real_person_trend"): "no model depicts a real person: no trend",
                              ("models", "tags_real"): "no model depicts a real person"},
    "only_real_person_models": {("models", "nsfw_by_real_person"): "every model depicts a real person",
                                ("models", "engagement"): "every model depicts a real person",
                                ("models", "gender"): None, ("models", "tags_real"): None},
    "every_prompt_empty": {("images", "adapter"): "no image has a prompt",
                           ("images", "overview.lora_share"): "no image has a prompt",
                           ("images", "lora_trend"): "no image has a prompt",
                           ("images", "terms"): "no prompt term occurs in at least 5 prompts",
                           ("images", "markers_nsfw"): "no image has a prompt"},
    "no_engagement": {("models", "downloads.real_person_download_share"): "no model was downloaded",
                      ("images", "engagement"): None},
    "one_image_one_model": {("images", "concentration"): f"fewer than {analyse.MIN_USERS} users "
                                                         "posted images (privacy floor)",
                            ("models", "adapter_trend"): "one month only: no trend"},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_not_estimable_reasons(study, name: str):
    out = study(name)
    found = {part: not_estimable_fields(getattr(out, part)) for part in ("images", "models")}
    for (part, field), reason in EXPECTED[name].items():
        assert found[part].get(field) == reason, (part, field, found[part])


def test_models_only_has_model_numbers_and_no_image_numbers(study):
    out = study("models_only")
    assert "n_models" in out.numbers and "n_images" not in out.numbers
    assert analyse.ImageResults.load_from_run(out.paths) is None


def test_images_only_has_image_numbers_and_no_model_numbers(study):
    out = study("images_only")
    assert "n_images" in out.numbers and "n_models" not in out.numbers
    assert out.numbers["lora_nsfw_or"]["value"] is not None


def test_not_estimable_numbers_carry_the_reason(study):
    numbers = json.loads((study("no_adapter_call").paths.paper / paper.NUMBERS_JSON).read_text())
    lora = numbers["numbers"]["lora_nsfw_or"]
    assert lora == {"value": None, "kind": "float", "text": NOT_ESTIMABLE_TEXT,
                    "latex": NOT_ESTIMABLE_TEXT, "reason": "no image calls an adapter",
                    "macro": "LoraNsfwOr"}
    table = (study("no_adapter_call").paths.tables / "adapter_nsfw.tex").read_text()
    assert "no image calls an adapter" in table


def test_no_gender_cue_leaves_the_shares_of_known_gender_not_estimable(study):
    numbers = study("no_gender_cue").numbers
    for gender in ("female", "male"):
        assert numbers[f"real_person_{gender}_share"]["reason"] == paper.UNKNOWN_GENDER
    assert numbers["real_person_unknown_gender_share"]["value"] == 1.0
    assert numbers["n_real_person_known_gender"]["value"] == 0


@pytest.mark.parametrize("name, sentence", [
    ("no_adapter_call", "Whether images that call one are more often NSFW is not estimable: "
                        "no image calls an adapter."),
    ("one_user", "Concentration of posting is not estimable: fewer than 10 users posted images "
                 "(privacy floor)."),
    ("one_month", "(trend not estimable: one month only: no trend)."),
    ("no_real_person_models", "their depicted gender is not estimable (no model depicts a real person)"),
    ("only_real_person_models", "Their NSFW share cannot be compared with other models': every "
                                "model depicts a real person."),
])
def test_findings_say_what_is_not_estimable(study, name: str, sentence: str):
    findings = paper.readme_findings(paper.read_numbers(study(name).paths))
    assert sentence in findings
    assert "not estimable of" not in findings and "n/a" not in findings


# --------------------------------------------------------------------------- combinations
#: Variants that change the tables without removing one; any few of them apply together.
COMBINABLE = sorted(set(VARIANTS) - {"images_only", "models_only", "one_image_one_model"})


def combined(names: list[str], keep: str, rows: int) -> Callable[[pd.DataFrame, pd.DataFrame], Tables]:
    """The variants ``names`` applied in turn, the images cut to ``rows``, and ``keep`` one
    table ('images', 'models') or both."""
    def apply(images: pd.DataFrame, models: pd.DataFrame) -> Tables:
        for name in names:
            images, models = VARIANTS[name](images, models)
        images = images.head(rows)
        return (images if keep != "models" else None, models if keep != "images" else None)
    return apply


snapshots = st.tuples(st.lists(st.sampled_from(COMBINABLE), min_size=2, max_size=4, unique=True),
                      st.sampled_from(["both", "both", "images", "models"]),
                      st.integers(min_value=1, max_value=1_500))


def _run_combination(base, root: Path, drawn: tuple[list[str], str, int]) -> None:
    names, keep, rows = drawn
    key = "+".join([*names, keep, str(rows)])
    folder = root / str(abs(hash(key)))
    VARIANTS["_combined"] = combined(names, keep, rows)
    try:
        snapshot = write_variant("_combined", *base, folder / "snapshot")
    finally:
        del VARIANTS["_combined"]
    out = pipeline.run_study_in_process(RunPaths(folder / "run"), path=str(snapshot), n_boot=10)
    assert (out.images is None) == (keep == "models") and (out.models is None) == (keep == "images")
    check_outputs_say_why(out)


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=snapshots)
def test_combined_degenerate_snapshots_run_to_the_end(base, tmp_path, drawn):
    _run_combination(base, tmp_path, drawn)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=snapshots)
def test_many_combined_degenerate_snapshots_run_to_the_end(base, tmp_path, drawn):
    _run_combination(base, tmp_path, drawn)


# --------------------------------------------------------------------------- the snapshot
def test_the_notebooks_call_the_in_process_stages():
    """:func:`pipeline.run_study_in_process` stands in for the notebooks in the tests above: every
    stage function it calls is called by a notebook, so the two cannot drift apart unseen."""
    import inspect

    code = "\n".join(c.source for nb in pipeline.notebook_files()
                     for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
    called = set(re.findall(r"\b((?:sources|clean|label|link|analyse|paper|plots)\.[a-z_]+)\(",
                            inspect.getsource(pipeline.run_study_in_process)))
    assert called and {c for c in called if c not in code} == set()


def test_plain_prompt_snapshot_runs_through_the_notebooks(tmp_path):
    """The issue's example through the real runner: 5,000 images, every prompt the same plain
    prompt (no adapter call), no models table, a few hundred users. Every notebook finishes,
    and the executed notebooks say what is not estimable and why."""
    snapshot = plain_prompt_snapshot(tmp_path)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "helpers", "run", "--quiet", "--source", "local",
                           "--path", str(snapshot), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def text_of(name: str) -> str:
        nb = nbformat.read(out / "notebooks" / name, as_version=4)
        return "\n".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                         for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))

    images = text_of("03_analyse_images.ipynb")
    assert "5,000 images" in images
    assert "NSFW with vs without a LoRA call: not estimable: no image calls an adapter" in images
    assert "trend not estimable: no image calls an adapter: no trend" in images
    assert "distinctive prompt terms: not estimable" in images
    assert "This snapshot has no models table" in text_of("04_analyse_models.ipynb")
    figures = text_of("06_write_paper.ipynb")
    assert "\\LoraNsfwOr: not estimable (no image calls an adapter)" in figures
    numbers = json.loads((out / "paper" / paper.NUMBERS_JSON).read_text())["numbers"]
    assert numbers["lora_share"]["value"] == 0.0
    assert numbers["nsfw_share_with_lora"]["reason"] == "no image calls an adapter"
    assert not math.isnan(numbers["nsfw_share_r"]["value"])
