"""Figures: every figure draws from analysis-shaped frames, carries the synthetic mark when asked,
and is saved as byte-identical PDF and PNG files for the same input (also across processes)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from helpers import plots, schema
from helpers.paths import RunPaths, repo_root

MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]
FRESH_PROCESS_FIGURES = ("fig01_volume_nsfw", "fig05_distinctive_terms", "fig09_real_person")


def _shares(k: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    from helpers.analyse import wilson_interval

    low, high = wilson_interval(k, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    return {"k": k, "n": n, "share": share, "ci_low": low, "ci_high": high}


def figure_inputs(seed: int = 0) -> dict[str, object]:
    """Small frames shaped like helpers.analyse outputs, enough to draw every figure."""
    rng = np.random.default_rng(seed)
    n = rng.integers(200, 400, len(MONTHS))
    monthly = pd.concat([pd.DataFrame({"month": MONTHS, "definition": d, "n_images": n,
                                       **_shares(rng.binomial(n, p), n)})
                         for d, p in (("platform", 0.5), ("r", 0.45), ("x", 0.2))])
    levels = pd.DataFrame([(m, lvl, int(rng.integers(0, 50))) for m in MONTHS
                           for lvl in schema.LEVEL_NAMES], columns=["month", "level", "n"])
    levels["level"] = pd.Categorical(levels["level"], categories=list(schema.LEVEL_NAMES), ordered=True)
    levels["n_month"] = levels.groupby("month")["n"].transform("sum")
    levels["share"] = levels["n"] / levels["n_month"]
    lora = pd.DataFrame({"month": MONTHS, **_shares(rng.binomial(n, 0.3), n)})
    by_use = pd.concat([pd.DataFrame({"month": MONTHS, "definition": "r", "uses_adapter": u,
                                      **_shares(rng.binomial(n, p), n)})
                        for u, p in ((True, 0.7), (False, 0.4))])
    overall = pd.DataFrame({"uses_adapter": [False, True], "share": [0.4, 0.7]})
    counts = pd.DataFrame({"value": np.r_[np.arange(20), np.arange(30)],
                           "nsfw": [False] * 20 + [True] * 30,
                           "n": np.r_[np.arange(20, 0, -1), np.arange(30, 0, -1)]})
    terms = pd.DataFrame({"side": ["nsfw"] * 3 + ["sfw"] * 3, "rank": [1, 2, 3] * 2,
                          "term": ["nude", "score_9", "explicit", "landscape", "sky", "city"],
                          "z": [9.0, 7.5, 6.0, -8.0, -6.5, -5.0]})
    markers = pd.concat([pd.DataFrame({"month": MONTHS, "marker": m, **_shares(rng.binomial(n, p), n)})
                         for m, p in (("booru", 0.6), ("pony", 0.2), ("sexual", 0.3),
                                      ("minor", 0.01), ("real_person", 0.05))])
    lorenz = pd.DataFrame({"population_share": np.linspace(0, 1, 11),
                           "image_share": np.linspace(0, 1, 11) ** 3})
    summary = {"gini": 0.5, "top1_share": 0.2}
    types = pd.DataFrame([(m, t, int(rng.integers(1, 30))) for m in MONTHS
                          for t in ("LORA", "Checkpoint", "Other")], columns=["month", "type", "n"])
    types["share"] = types["n"] / types.groupby("month")["n"].transform("sum")
    bases = types.rename(columns={"type": "base_model"}).replace(
        {"LORA": "SD 1.5", "Checkpoint": "SDXL 1.0"})
    rp_month = pd.DataFrame({"month": MONTHS, **_shares(rng.binomial(n, 0.1), n)})
    gender = pd.DataFrame({"depicted_gender": ["female", "male", "mixed", "unknown"],
                           **_shares(np.array([80, 10, 2, 8]), np.full(4, 100))})
    nsfw_gender = pd.DataFrame({"group": ["real person: female", "real person: male",
                                          "real person: mixed", "real person: unknown",
                                          "not a real person"],
                                **_shares(np.array([40, 3, 0, 2, 100]), np.array([80, 10, 0, 8, 900]))})
    tags = pd.DataFrame({"rank": [1, 2, 3], "tag": ["celebrity", "woman", "realistic"],
                         "share": [0.9, 0.6, 0.3]})
    rp_nsfw = pd.DataFrame({"definition": "r", "uses_real_person_adapter": [False, True],
                            **_shares(np.array([400, 80]), np.array([900, 100]))})
    families = pd.DataFrame({"definition": "r", "family": ["SD 1.x", "SDXL", "Pony"],
                             **_shares(np.array([50, 60, 80]), np.array([100, 100, 100]))})
    curve = pd.DataFrame({"threshold": [0.2, 0.5, 0.8], **_shares(np.array([30, 20, 10]), np.full(3, 200))})
    corrected = {"corrected": 0.11, "ci_low": 0.09, "ci_high": 0.13}
    model_nsfw = pd.concat([rp_month.assign(definition=d) for d in ("platform", "r", "x")])
    family_monthly = pd.concat([pd.DataFrame({"month": MONTHS, "family": f, "definition": d,
                                              **_shares(rng.binomial(n, p), n)})
                                for f, p in (("SD 1.x", 0.4), ("SDXL", 0.5), ("Pony", 0.8))
                                for d in ("platform", "r", "x")])
    family_monthly = family_monthly.assign(boot_low=(family_monthly["ci_low"] - 0.05).clip(0, 1),
                                           boot_high=(family_monthly["ci_high"] + 0.05).clip(0, 1))
    edges = np.linspace(0, 1, 11)
    histogram = pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:],
                              "user_share": np.full(10, 0.1), "image_share": np.linspace(0.01, 0.19, 10),
                              "suppressed": [True] + [False] * 9})
    histogram.loc[0, ["user_share", "image_share"]] = np.nan
    decomposition = pd.DataFrame([(d, part, est, est - 0.02, est + 0.02)
                                  for d in ("platform", "r", "x")
                                  for part, est in (("change", 0.1), ("within users", 0.07),
                                                    ("who posts", 0.03))],
                                 columns=["definition", "part", "estimate", "boot_low", "boot_high"])
    removed = {f"{c}_removed{s}": np.array([1.0, 0.8, 0.1]) + d for c in ("real_person_nsfw", "minor_nsfw")
               for s, d in (("", 0.0), ("_low", -0.05), ("_high", 0.0))}
    rules = pd.DataFrame({"label": ["targeted", "de-list", "blunt"], **removed,
                          "collateral": [0.0, 0.02, 0.6], "collateral_low": [0.0, 0.01, 0.55],
                          "collateral_high": [0.0, 0.03, 0.65]})
    harm = pd.DataFrame({"category": ["real_person_nsfw", "minor_nsfw"], "images": [100, 0]})
    lineage = pd.DataFrame({"month": MONTHS, "denominator": "all", **_shares(rng.binomial(n, 0.3), n)})
    syntax = families.assign(marker="booru", booru_lineage=[False, False, True],
                             boot_low=lambda f: f["ci_low"], boot_high=lambda f: f["ci_high"])
    return {
        "fig01_volume_nsfw": (monthly,),
        "fig02_level_composition": (levels,),
        "fig03_adapter_use": (lora, by_use, overall),
        "fig04_engagement": (counts,),
        "fig05_distinctive_terms": (terms,),
        "fig06_markers": (markers,),
        "fig07_creator_lorenz": (lorenz, summary),
        "fig08_model_types": (types, bases),
        "fig09_real_person": (rp_month, gender, nsfw_gender),
        "fig10_top_tags": (tags, tags),
        "fig11_personalisation": (rp_month, rp_nsfw, families),
        "fig12_real_person_label": (curve, corrected, model_nsfw),
        "fig14_interventions": (rules, harm),
        "fig13_subculture_lineage": (lineage, lineage, syntax),
        "fig15_family_nsfw": (family_monthly, "r"),
        "fig16_per_user": (histogram, decomposition),
    }


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.texts] + ([fig._suptitle.get_text()] if fig._suptitle else [])


def test_every_figure_is_registered_and_named():
    assert list(plots.FIGURES) == sorted(plots.FIGURES)
    assert set(plots.FIGURES) == set(figure_inputs())
    for name in plots.FIGURES:
        assert name[:3] == "fig" and name[3:5].isdigit()


@pytest.mark.parametrize("name", sorted(figure_inputs()))
def test_figure_draws_and_marks_synthetic(name):
    args = figure_inputs()[name]
    plain = plots.FIGURES[name](*args, synthetic=False)
    marked = plots.FIGURES[name](*args, synthetic=True)
    assert isinstance(plain, Figure) and plain.axes
    assert not any(plots.SYNTHETIC_MARK in t.lower() for t in _texts(plain))
    assert any(plots.SYNTHETIC_MARK in t.lower() for t in _texts(marked))
    width, _ = marked.get_size_inches()
    assert width == pytest.approx(plots.COLUMN_WIDTH)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(figure_inputs()))
def test_savefig_is_deterministic_and_free_of_timestamps(tmp_path: Path, name: str):
    paths = RunPaths(tmp_path)
    args = figure_inputs()[name]
    first = plots.savefig(plots.FIGURES[name](*args, synthetic=True), paths, name)
    digests = {ext: _digest(p) for ext, p in first.items()}
    again = plots.savefig(plots.FIGURES[name](*args, synthetic=True), paths, name)
    assert {ext: _digest(p) for ext, p in again.items()} == digests
    pdf = first["pdf"].read_bytes()
    assert b"CreationDate" not in pdf and b"Producer" not in pdf and b"Matplotlib" not in pdf
    png = first["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in png and b"matplotlib" not in png
    assert sorted(p.name for p in paths.figures.iterdir()) == [f"{name}.pdf", f"{name}.png"]


@pytest.mark.slow  # a fresh interpreter draws every figure
def test_same_bytes_in_a_fresh_process(tmp_path: Path):
    """A new interpreter (another hash seed) writes identical files (text-, line- and bar-heavy
    figures; every figure is checked within one process above, through the same savefig)."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_plots import figure_inputs
        from helpers import plots
        from helpers.paths import RunPaths
        out = RunPaths(Path(sys.argv[1]))
        for name in {FRESH_PROCESS_FIGURES!r}:
            args = figure_inputs()[name]
            plots.savefig(plots.FIGURES[name](*args, synthetic=True), out, name)
    """)
    digests = []
    for i in range(2):
        target = tmp_path / f"run{i}"
        env = {**os.environ, "PYTHONHASHSEED": str(i + 1)}
        subprocess.run([sys.executable, "-c", script, str(target)], check=True, cwd=repo_root(),
                       env=env)
        digests.append({p.name: _digest(p) for p in sorted((target / "paper" / "figures").iterdir())})
    assert len(digests[0]) == 2 * len(FRESH_PROCESS_FIGURES)
    assert digests[0] == digests[1]


#: Figure → the positions of its inputs that may be not estimable.
NOT_ESTIMABLE_INPUTS = {"fig03_adapter_use": (1, 2), "fig05_distinctive_terms": (0,),
                        "fig07_creator_lorenz": (0, 1), "fig09_real_person": (1,),
                        "fig10_top_tags": (0,), "fig15_family_nsfw": (0,),
                        "fig16_per_user": (0, 1)}


@pytest.mark.parametrize("name", sorted(NOT_ESTIMABLE_INPUTS))
def test_not_estimable_panel_says_why(name):
    """A panel whose result is not estimable draws, and says so with the reason inside it."""
    from helpers.stats import NotEstimable

    args = list(figure_inputs()[name])
    for i in NOT_ESTIMABLE_INPUTS[name]:
        args[i] = NotEstimable("nothing to compare here")
    fig = plots.FIGURES[name](*args)
    fig.canvas.draw()
    panel_texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "not estimable:\nnothing to compare here" in panel_texts


def test_family_figure_draws_the_user_bootstrap_band_and_names_both_intervals():
    fig = plots.fig15_family_nsfw(*figure_inputs()["fig15_family_nsfw"])
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "95% CI, users resampled" in labels
    assert "95% Wilson CI, images independent" in labels
