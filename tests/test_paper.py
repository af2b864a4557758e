"""Numbers, tables, the comparison with published figures, the README block, and the manuscript:
every figure, table and macro main.tex uses is one the pipeline produces."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import analyse, comparison, interventions_report, paper, parameters, plots
from helpers.paths import RunPaths, repo_root

from test_analyse import make_models, write_images

MAIN_TEX = paper.MAIN_TEX


# --------------------------------------------------------------------------- a small study
def small_study(root: Path, synthetic: bool = True) -> tuple[RunPaths, dict[str, dict]]:
    """Run every analysis on a small random processed snapshot and write what the notebooks
    write: results, figures, paper tables and numbers. Returns the numbers."""
    rng = np.random.default_rng(5)
    months = [f"2023-{m:02d}" for m in range(1, 13)]
    recs = []
    for i in range(2400):
        month = months[i % 12]
        lora = int(rng.random() < 0.3 + 0.02 * (i % 12))
        level = rng.choice(["PG", "PG13", "R", "X", "XXX"],
                           p=[0.35, 0.15, 0.2, 0.2, 0.1] if lora else [0.5, 0.2, 0.15, 0.1, 0.05])
        recs.append({"month": month, "level": level, "n_lora": lora,
                     "prompt": "masterpiece, nude" if level in ("R", "X", "XXX") else "masterpiece, landscape",
                     "reaction_count": int(rng.poisson(6 if level in ("X", "XXX") else 3)),
                     "user_hash": f"u{int(rng.zipf(1.5)) % 1500:04d}",
                     "mk_sexual": level in ("R", "X", "XXX"), "mk_booru": True})
    paths = RunPaths(root).ensure()
    images = write_images(root / "images.parquet", recs)
    models = make_models(
        [{"name": f"Valena Morcastle{i}", "tags": ["celebrity", "woman"], "is_real_person": True,
          "depicted_gender": "female" if i % 10 else "male", "is_nsfw_r": i % 2 == 0,
          "download_count": 100 + i, "month": months[i % 12]} for i in range(60)]
        + [{"name": f"Style {i}", "tags": ["anime", "style"], "type": "Checkpoint" if i % 4 == 0 else "LORA",
            "is_adapter": i % 4 != 0, "is_nsfw_r": i % 5 == 0, "download_count": i,
            "month": months[i % 12]} for i in range(240)])

    # What notebooks 03, 04 and 05 do, through the same functions.
    con = analyse.connect(paths)
    image_results = analyse.image_results(images, models, con=con)
    model_results = analyse.model_results(models)
    con.close()
    intervention_results = analyse.intervention_results(
        images, None, None, parameters.default("moderation_rules"),
        parameters.default("policy_events"), synthetic_run=synthetic, n_boot=50)
    for results in (image_results, model_results, intervention_results):
        results.save_to_run(paths)
        plots.save_figures(results, paths, synthetic=synthetic)
    paper.write_paper_tables(paths, {**paper.image_tables(image_results),
                                      **paper.model_tables(model_results),
                                      **interventions_report.intervention_tables(intervention_results)})
    numbers = paper.study_numbers(analyse.ImageResults.load_from_run(paths),
                                  analyse.ModelResults.load_from_run(paths), "sample", synthetic,
                                  analyse.InterventionResults.load_from_run(paths))
    paper.write_numbers(paths, numbers, synthetic=synthetic, source="sample")
    comparison.write_comparison(paths, numbers, synthetic)
    return paths, numbers


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[RunPaths, dict[str, dict]]:
    return small_study(tmp_path_factory.mktemp("study"))


# --------------------------------------------------------------------------- formatting
def test_macro_names_are_letters_only():
    assert paper.macro_name("nsfw_share_r") == "NsfwShareR"
    assert paper.macro_name("top1_share") == "TopOneShare"
    assert paper.macro_name("nsfw_share_r_2023_10") == "NsfwShareRTwoZeroTwoThreeOneZero"
    with pytest.raises(ValueError):
        paper.macro_name("__")


def test_format_value_kinds():
    assert paper.format_value(0.35249, "percent") == ("35.2%", r"35.2\%")
    assert paper.format_value(40123456, "count") == ("40,123,456", "40{,}123{,}456")
    assert paper.format_value(0.00001, "pvalue")[0] == "<0.001"
    assert paper.format_value(0.0456, "pvalue")[0] == "0.046"
    assert paper.format_value(float("nan"), "percent") == ("n/a", "n/a")
    assert paper.format_value("a_b & 50%", "text")[1] == r"a\_b \& 50\%"
    with pytest.raises(ValueError):
        paper.format_value(1, "weird")


def test_numbers_roundtrip_and_tex(tmp_path: Path):
    paths = RunPaths(tmp_path)
    numbers = paper.merge_numbers({"images": {"nsfw_share_r": paper.entry(0.5, "percent")},
                                   "models": {"n_models": paper.entry(1234, "count")}})
    written = paper.write_numbers(paths, numbers, synthetic=True, source="sample")
    payload = paper.read_numbers(paths)
    assert payload["synthetic"] is True and payload["source"] == "sample"
    assert payload["numbers"]["n_models"]["value"] == 1234
    assert payload["numbers"]["nsfw_share_r"]["macro"] == "NsfwShareR"
    tex = written["tex"].read_text()
    assert "\\newcommand{\\NModels}{1{,}234}" in tex and "\\newcommand{\\NsfwShareR}{50.0\\%}" in tex
    assert not list(paths.paper.glob(".*tmp")) and not list(paths.reports.glob(".*tmp"))
    # A key defined differently by two parts is an error, not a silent overwrite.
    with pytest.raises(ValueError, match="defined differently"):
        paper.merge_numbers({**{"first": numbers}, "other": {"n_models": paper.entry(1, "count")}})
    with pytest.raises(FileNotFoundError, match="notebooks 03"):
        paper.study_numbers(None, None, "sample", True)


def test_study_numbers_are_the_same_from_saved_results(study):
    # Notebook 06 computes the numbers from the results 03, 04 and 05 saved: the round trip
    # through Parquet and JSON changes nothing but the stored precision of floats.
    paths, numbers = study
    image_results = analyse.ImageResults.load_from_run(paths)
    model_results = analyse.ModelResults.load_from_run(paths)
    intervention_results = analyse.InterventionResults.load_from_run(paths)
    assert {p.suffix for p in analyse.ImageResults.folder(paths).iterdir()} == {".json", ".parquet"}
    for results in (image_results, model_results, intervention_results):
        back = type(results).load(results.save(paths.tmp / results.part))
        for f in dataclasses.fields(results):
            value, again = getattr(results, f.name), getattr(back, f.name)
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(again, analyse.stored_frame(value))
                pd.testing.assert_frame_equal(again, value, check_exact=False, rtol=1e-9)
            else:
                stored = dict(sort_keys=True, default=analyse.NotEstimable.as_json)
                assert json.dumps(again, **stored) == json.dumps(analyse.stored_value(value), **stored)
    assert paper.study_numbers(image_results, model_results, "sample", True,
                               intervention_results) == numbers
    assert paper.image_numbers(image_results)["n_images"]["value"] == 2400


def test_macro_collisions_are_refused():
    with pytest.raises(ValueError, match="macro"):
        paper.numbers_tex({"top1": paper.entry(1, "count"), "top_1": paper.entry(2, "count")})


def test_write_table_csv_and_latex(tmp_path: Path):
    paths = RunPaths(tmp_path)
    frame = pd.DataFrame({"group_name": ["a_b", "50% & more"], "share": [0.25, 0.5]})
    out = paper.write_table(frame, paths, "demo", kinds={"share": "percent"})
    csv = out["csv"].read_text()
    assert csv.splitlines()[0] == "group_name,share" and "0.25" in csv
    tex = out["tex"].read_text()
    assert tex.startswith("\\begin{tabular}{lr}") and "\\toprule" in tex and "\\bottomrule" in tex
    assert "a\\_b & 25.0\\%" in tex and "50\\% \\& more" in tex
    with pytest.raises(ValueError):
        paper.write_table(frame, paths, "Bad Name")
    with pytest.raises(ValueError, match="unknown paper table"):
        paper.write_paper_table(paths, "nope", frame)


# --------------------------------------------------------------------------- reference
def test_reference_csv_has_the_published_figures():
    ref = comparison.read_reference().set_index("metric")
    assert list(comparison.read_reference().columns) == list(comparison.REFERENCE_COLUMNS)
    civiverse = [ref.loc[f"civiverse_nsfw_ratio_{paper.month_key(m)}", "value"]
                 for m in paper.CIVIVERSE_MONTHS]
    assert civiverse == [0.5519, 0.5829, 0.5597, 0.5859, 0.6121, 0.6504, 0.7294]
    assert ref.loc["wei_nsfw_model_share", "value"] == 16.97
    assert ref.loc["wei_nsfw_image_share", "value"] == 72.05
    assert ref.loc["wei_deepfake_model_share", "value"] == 23.54
    assert ref.loc["wagner_cetinic_images", "value"] == 40_000_000
    assert ref.loc["wagner_cetinic_models", "value"] == 230_000
    assert ref.loc["hawkins_deepfake_models", "value"] == 35_000
    assert ref.loc["hawkins_deepfake_downloads", "value"] == 15_000_000
    assert ref.loc["hawkins_deepfake_female_share", "value"] == 96
    assert ref.loc["ghosh_deepfake_bounty_female_share", "value"] == 89.5
    assert ref["source"].str.len().gt(0).all() and ref["citation"].str.contains("arXiv").all()
    assert ref["definition"].str.len().gt(0).all() and ref["scope"].str.len().gt(0).all()
    # Every row either names our comparable number (with its definition) or says why none is.
    comparable = ref["not_comparable_because"] == ""
    assert (ref.loc[comparable, "ours"] != "").all() and (ref.loc[comparable, "our_definition"] != "").all()
    assert not (comparable & (ref["unit"] == "count")).any()  # counts of other snapshots never compare
    assert comparable.sum() >= 3 and (~comparable).sum() >= 3


def test_a_comparable_row_without_our_number_is_refused(tmp_path: Path):
    ref = comparison.read_reference()
    ref.loc[ref["metric"] == "wagner_cetinic_images", "not_comparable_because"] = ""
    bad = tmp_path / "reference.csv"
    ref.to_csv(bad, index=False)
    with pytest.raises(ValueError, match="comparable row"):
        comparison.read_reference(bad)


def test_comparison_table(study):
    _, numbers = study
    ref = comparison.read_reference()
    comp = comparison.comparison_table(numbers, ref, synthetic=True).set_index("metric")
    comparable = set(ref.loc[ref["not_comparable_because"] == "", "metric"])
    assert set(comp.index) == comparable
    row = comp.loc["wei_deepfake_model_share"]
    share, low, high = (numbers[k]["value"] for k in
                        ("real_person_share", "real_person_share_ci_low", "real_person_share_ci_high"))
    assert row["published"] == "23.54%" and row["ours"].startswith(numbers["real_person_share"]["text"][:-1] + " [")
    want = [100 * (v - 0.2354) for v in (share, low, high)]
    assert row["difference_pp"] == (f"{want[0]:+.1f} [{want[1]:+.1f}, {want[2]:+.1f}]").replace("-", "−")
    expected = ("ours higher" if want[1] > 0 else "ours lower" if want[2] < 0
                else "no detectable difference")
    assert row["agreement"] == expected
    # Months the run does not cover are n/a, never invented; planted months say so on the sample.
    assert comp.loc["civiverse_nsfw_ratio_2024_04", "ours"] == "n/a"
    assert comp.loc["civiverse_nsfw_ratio_2023_10", "agreement"] == "planted"
    real = comparison.comparison_table(numbers, ref, synthetic=False).set_index("metric")
    assert real.loc["civiverse_nsfw_ratio_2023_10", "agreement"] != "planted"
    # The incompatible figures are listed with their reason, never set beside a number of ours.
    excluded = comparison.not_comparable_table(ref).set_index("metric")
    assert set(excluded.index) == set(ref["metric"]) - comparable
    assert "ghosh_deepfake_bounty_female_share" in excluded.index and "wagner_cetinic_images" in excluded.index
    assert excluded["why_not_compared"].str.len().gt(0).all()


def test_real_records_numbers_from_the_committed_report():
    from helpers import label
    from helpers.stats import wilson_bounds

    report = label.load_real_records_report()
    if report is None:
        pytest.skip("docs/validation/real_records.json is not there")
    numbers = paper.real_records_numbers(report)
    rec = report["records"]
    assert numbers["real_records_models"]["value"] == rec["models"]
    assert numbers["real_records_real_person_share"]["value"] == pytest.approx(rec["poi_true"] / rec["with_poi"])
    gender = dict(report["tables"]["gender_distribution"]["rows"])
    known = sum(v for k, v in gender.items() if k != "unknown")
    assert numbers["real_records_female_share"]["value"] == pytest.approx(gender["female"] / known)
    assert numbers["real_records_female_share_ci_low"]["value"] == pytest.approx(
        wilson_bounds(gender["female"], known)[0])
    # The committed report carries the linkage and the enforcement table the paper reads.
    calls = report["linkage"]["calls"]
    assert numbers["real_records_calls_found"]["value"] == calls["found"] > 0
    assert numbers["real_records_calls_resolved_share"]["value"] == pytest.approx(calls["resolved"] / calls["found"])
    nsfw = dict(zip(*[[row[report["tables"]["real_person_adapter_nsfw"]["columns"].index(c)]
                       for row in report["tables"]["real_person_adapter_nsfw"]["rows"]]
                      for c in ("uses_real_person_adapter", "share")]))
    assert numbers["real_records_nsfw_with_rp_adapter"]["value"] == pytest.approx(nsfw[True])
    assert numbers["real_records_nsfw_without_rp_adapter"]["value"] == pytest.approx(nsfw[False])
    ratio = numbers["real_records_nsfw_rp_adapter_odds_ratio"]["value"]
    assert numbers["real_records_nsfw_rp_adapter_odds_ratio_ci_low"]["value"] <= ratio
    assert ratio <= numbers["real_records_nsfw_rp_adapter_odds_ratio_ci_high"]["value"]
    # What the report lacks is not estimable, with the reason, never a number.
    empty = paper.real_records_numbers({})
    assert all(v["value"] is None and v["reason"] for v in empty.values())
    with_link = paper.real_records_numbers({**report, "linkage": {"calls": {
        "found": 200, "resolved": 150, "ambiguous": 10, "unresolved": 40}}})
    assert with_link["real_records_calls_resolved_share"]["value"] == pytest.approx(0.75)
    # The NSFW share of showcase images by real-person adapter use, in the shape the link
    # analysis returns it (helpers.analyse.links.nsfw_share_by_real_person_adapter).
    from helpers.analyse.links import nsfw_share_by_real_person_adapter

    counts = pd.DataFrame({"uses_real_person_adapter": [False, True], "n": [1000, 100], "k": [200, 5]})
    frame = nsfw_share_by_real_person_adapter(counts)
    table = {"columns": list(frame.columns), "rows": frame.to_numpy(dtype=object).tolist()}
    enforced = paper.real_records_numbers({**report, "tables": {**report["tables"],
                                                                paper.REAL_RECORDS_ENFORCEMENT: table}})
    assert enforced["real_records_nsfw_with_rp_adapter"]["value"] == pytest.approx(0.05)
    assert enforced["real_records_nsfw_without_rp_adapter"]["value"] == pytest.approx(0.2)
    from helpers import prose

    sentence = prose.real_records({**enforced, **paper.method_numbers()}).markdown
    assert "NSFW less often than the rest" in sentence


# --------------------------------------------------------------------------- README
def test_readme_findings_and_update(study, tmp_path: Path):
    paths, _ = study
    payload = paper.read_numbers(paths)
    text = paper.readme_findings(payload)
    assert "synthetic sample" in text and "n/a" not in text.replace("1% n/a", "")
    for key in ("n_images", "nsfw_share_r", "real_person_female_share", "lora_nsfw_or"):
        assert payload["numbers"][key]["text"] in text
    real = paper.readme_findings({**payload, "synthetic": False, "source": "hf"})
    assert "synthetic" not in real and "`hf`" in real
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{paper.README_START}\nOLD-BLOCK\n{paper.README_END}\ntail\n")
    paper.update_readme(readme, text)
    updated = readme.read_text()
    assert updated.startswith("intro\n") and updated.endswith(f"{paper.README_END}\ntail\n")
    assert "OLD-BLOCK" not in updated and text in updated
    paper.update_readme(readme, text)
    assert readme.read_text() == updated  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        paper.update_readme(readme, text)


def test_committed_readme_block_matches_committed_numbers():
    paths = RunPaths(repo_root())
    if not (paths.paper / paper.NUMBERS_JSON).exists():
        pytest.skip("paper/numbers.json not generated yet (run make reproduce)")
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    block = readme.split(paper.README_START, 1)[1].split(paper.README_END, 1)[0]
    assert block.strip() == paper.readme_findings(paper.read_numbers(paths)).strip()


# --------------------------------------------------------------------------- the manuscript
def manuscript_needs() -> dict[str, set[str]]:
    return paper.manuscript_needs(MAIN_TEX.read_text(encoding="utf-8"))


def test_manuscript_uses_only_pipeline_figures_tables_and_macros(study):
    paths, numbers = study
    needs = manuscript_needs()
    for graphic in needs["graphics"]:
        m = re.fullmatch(r"figures/(fig\d\d_[a-z0-9_]+)\.pdf", graphic)
        assert m and m.group(1) in plots.FIGURES, f"{graphic} is not a figure plots makes"
        assert (paths.paper / graphic).exists()
    assert {g.split("/")[1][:-4] for g in needs["graphics"]} == set(plots.FIGURES)
    for target in needs["inputs"]:
        if target == "numbers.tex":
            continue
        m = re.fullmatch(r"tables/([a-z0-9_]+)\.tex", target)
        assert m and m.group(1) in paper.PAPER_TABLES, f"\\input{{{target}}} is not a paper table"
        assert (paths.paper / target).exists()
    assert "numbers.tex" in needs["inputs"]
    produced = {paper.macro_name(k) for k in numbers}
    missing = sorted(needs["macros"] - produced)
    assert not missing, f"main.tex uses macros the pipeline does not produce: {missing}"
    tex = (paths.paper / "numbers.tex").read_text()
    for macro in needs["macros"]:
        assert f"\\newcommand{{\\{macro}}}" in tex


def test_manuscript_check_reports_each_item(study, tmp_path: Path):
    paths, _ = study
    check = paper.manuscript_check(paths)
    assert set(check["kind"]) == {"figure", "input", "macro"}
    assert (check["status"] == "ok").all(), check[check["status"] != "ok"]
    empty = paper.manuscript_check(RunPaths(tmp_path / "empty"))
    assert (empty["status"] == "missing").all() and len(empty) == len(check)


def test_manuscript_types_no_numbers_in_prose():
    """Digits in the text outside commands, labels, references and the bibliography are a
    sign of a number typed by hand (names such as PG-13 excepted)."""
    body = MAIN_TEX.read_text(encoding="utf-8").split("\\begin{document}", 1)[1]
    body = body.split("\\begin{thebibliography}", 1)[0]
    body = re.sub(r"(?<!\\)%.*", "", body)
    body = re.sub(r"\\(label|ref|input|includegraphics|cite|begin|end)(\[[^\]]*\])?\{[^}]*\}", "", body)
    body = re.sub(r"\\[A-Za-z]+", "", body)
    body = re.sub(r"\[[^\]]*\]", "", body)  # optional arguments (widths, float placement)
    for name in ("PG-13", "Civiverse-6M"):  # names of a rating and a dataset, not numbers
        body = body.replace(name, "")
    assert not re.search(r"\d", body), re.findall(r".{30}\d.{30}", body)[:5]


def test_committed_run_provides_everything_main_tex_needs():
    paths = RunPaths(repo_root())
    if not (paths.paper / paper.NUMBERS_TEX).exists():
        pytest.skip("paper/numbers.tex not generated yet (run make reproduce)")
    needs = manuscript_needs()
    tex = (paths.paper / paper.NUMBERS_TEX).read_text(encoding="utf-8")
    missing = sorted(m for m in needs["macros"] if f"\\newcommand{{\\{m}}}" not in tex)
    assert not missing, f"numbers.tex lacks {missing}"
    for target in [*needs["graphics"], *(t for t in needs["inputs"] if t != "numbers.tex")]:
        assert (paths.paper / target).exists(), f"{target} was not generated"


@pytest.mark.slow
def test_manuscript_builds_with_latexmk(study, tmp_path: Path):
    if shutil.which("latexmk") is None:
        pytest.skip("latexmk is not installed (Debian: latexmk texlive-latex-recommended "
                    "texlive-fonts-recommended)")
    paths, _ = study
    build = tmp_path / "paper"
    shutil.copytree(paths.paper, build)
    shutil.copy(MAIN_TEX, build / "main.tex")
    result = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
                             "main.tex"], cwd=build, capture_output=True, text=True, timeout=300)
    log = (build / "main.log").read_text(errors="replace") if (build / "main.log").exists() else ""
    assert result.returncode == 0, log[-3000:]
    assert (build / "main.pdf").stat().st_size > 10_000
    assert "Undefined control sequence" not in log and "undefined references" not in log


# --------------------------------------------------------------------------- published numbers
def test_committed_numbers_recover_the_planted_truth():
    """The published numbers are a test: ``paper/numbers.json``, committed from the sample run,
    must recover what the synthetic generator planted (counts exact).

    Users differ in NSFW propensity and adapter use, so a share is planted in expectation over
    users: the user-clustered intervals must cover those planted values; intervals that treat
    images as independent (Wilson, Woolf, the monthly HAC growth ratio) can only be asked to
    cover what the users who posted give in expectation (:func:`synth.user_month_truth`)."""
    from helpers import synth
    from helpers.analyse.growth import growth_ratio
    from helpers.parameters import PARAMETERS
    from helpers.stats import wilson_bounds

    payload = json.loads((repo_root() / "paper" / paper.NUMBERS_JSON).read_text(encoding="utf-8"))
    assert payload["synthetic"] is True and payload["source"] == "sample"
    got = {k: v["value"] for k, v in payload["numbers"].items()}
    params = synth.default_params(n_images=PARAMETERS["sample_images"].default,
                                  n_models=PARAMETERS["sample_models"].default, seed=PARAMETERS["seed"].default)
    truth = synth.expected_truth(params)

    def inside(key: str, planted: float, low: str = "_ci_low", high: str = "_ci_high") -> None:
        assert got[f"{key}{low}"] <= planted <= got[f"{key}{high}"], \
            f"{key}: planted {planted:.4f} outside [{got[key + low]:.4f}, {got[key + high]:.4f}]"

    assert got["n_images"] == truth["clean_image_rows"] and got["n_models"] == truth["clean_model_rows"]
    months = truth["months"]
    assert (got["image_first_month"], got["image_last_month"]) == (months[0], months[-1])
    counts = np.array([truth["clean_images_per_month"][m] for m in months], dtype=float)
    weights = counts / counts.sum()
    # Over users: the headline share in its user-clustered interval, the planted (within user
    # and month) adapter odds ratio in the adjusted one, the pooled ratio in its clustered one.
    inside("nsfw_share", float(weights @ np.array([truth["nsfw_share_by_month"][m] for m in months])),
           "_boot_low", "_boot_high")
    inside("lora_nsfw_or_adjusted", truth["lora_nsfw_odds_ratio"])
    inside("lora_nsfw", truth["lora_nsfw_odds_ratio_crude"], "_or_boot_low", "_or_boot_high")
    # Given the users who posted: every monthly and pooled share in its naive interval.
    given = synth.user_month_truth(params).groupby("month").sum(numeric_only=True).reindex(months)
    nsfw = (given["nsfw"] / given["n"]).to_numpy()
    x_given_nsfw = np.array([sum(truth["nsfw_level_mix_by_month"][m][x] for x in ("X", "XXX", "Blocked"))
                             for m in months])
    pg13 = np.array([truth["sfw_level_mix_by_month"][m]["PG13"] for m in months])
    by_definition = {"r": nsfw, "x": nsfw * x_given_nsfw,
                     "platform": nsfw + truth["pg13_flagged_share"] * (1 - nsfw) * pg13}
    for definition, monthly in by_definition.items():
        inside(f"nsfw_share_{definition}", float(weights @ monthly))
        inside(f"nsfw_share_{definition}_first_month", float(monthly[0]))
        inside(f"nsfw_share_{definition}_last_month", float(monthly[-1]))
    for month in truth["civiverse_nsfw_share"]:
        n = truth["clean_images_per_month"][month]
        low, high = wilson_bounds(round(got[f"nsfw_share_r_{paper.month_key(month)}"] * n), n)
        assert low <= nsfw[months.index(month)] <= high, month
    lora = (given["adapter"] / given["prompted"]).to_numpy()
    inside("lora_share", float((counts * lora).sum() / counts.sum()))
    inside("lora_share_first_month", float(lora[0]))
    inside("lora_share_last_month", float(lora[-1]))
    p1 = given["nsfw_adapter"].sum() / given["adapter"].sum()
    p0 = (given["nsfw_prompted"].sum() - given["nsfw_adapter"].sum()) / (given["prompted"].sum() - given["adapter"].sum())
    inside("nsfw_share_with_lora", p1)
    inside("nsfw_share_without_lora", p0)
    assert got["lora_nsfw_or_ci_low"] <= p1 / (1 - p1) / (p0 / (1 - p0)) <= got["lora_nsfw_or_ci_high"]
    # "Disproportionate": NSFW grew faster than SFW, by the ratio the users' expected counts give.
    expected = pd.DataFrame({"month": months, "n": given["n"].to_numpy(), "k": given["nsfw"].to_numpy()})
    planted_ratio = growth_ratio(expected)["ratio"]
    assert got["growth_ratio_ci_low"] <= planted_ratio <= got["growth_ratio_ci_high"], planted_ratio
    # Over users, the planted (within user × month, among adapter callers) real-person adapter
    # odds ratio in the adjusted interval.
    inside("rp_adapter_or_adjusted", truth["real_person_adapter_nsfw_odds_ratio"])
    # Models: real-person share, whom they depict, and their NSFW odds ratio.
    inside("real_person_share", truth["real_person_share"])
    inside("real_person_female_share", truth["real_person_female_share"])
    inside("real_person_male_share", truth["real_person_male_share"])
    assert got["real_person_nsfw_or_ci_low"] <= truth["real_person_nsfw_odds_ratio"] \
        <= got["real_person_nsfw_or_ci_high"]


def test_not_estimable_numbers_and_tables(tmp_path: Path):
    """A not-estimable result is a number with value null and its reason, a macro reading
    "not estimable", and a one-cell table with the reason."""
    why = analyse.NotEstimable("one month only: no trend")
    assert paper.format_value(why, "percent") == ("not estimable", "not estimable")
    number = paper.entry(why, "float", 2)
    assert number == {"value": None, "kind": "float", "text": "not estimable",
                      "latex": "not estimable", "reason": "one month only: no trend"}
    assert "\\newcommand{\\NsfwTrendROr}{not estimable}" in paper.numbers_tex({"nsfw_trend_r_or": number})
    assert paper.not_estimable_reasons({"a": number, "a_ci_low": number,
                                        "b": paper.entry(1, "count")}) == {"a": why.reason}
    paths = RunPaths(tmp_path)
    files = paper.write_paper_table(paths, "adapter_nsfw", analyse.NotEstimable("no image calls an adapter"))
    assert "no image calls an adapter" in files["tex"].read_text()
    trends = paper.image_trend_table({"r": why}, {"odds_ratio_per_year": 2.0, "ci_low": 1.5,
                                                   "ci_high": 2.5, "p_value": 0.01, "mk_tau": 0.5})
    assert trends["series"].tolist() == ["NSFW (level ≥ R): not estimable: one month only: no trend",
                                         "LoRA in prompt"]
    assert trends["odds_ratio_per_year"].isna().tolist() == [True, False]
