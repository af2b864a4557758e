"""The scale benchmark runs end to end on a tiny snapshot and reports every stage and ratio.

No timing is asserted here: timings belong to the benchmark's own report
(benchmarks/results), not to unit tests that run on any machine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from helpers import bench, bench_peers, label
from helpers.analyse import Results

ROWS = 3_000


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results"
    assert bench.main(ROWS, baseline=True, out=out, data_dir=tmp / "data") == 0
    return json.loads((out / f"{ROWS}.json").read_text(encoding="utf-8")), out


@pytest.mark.slow  # the benchmark end to end, with its baseline
def test_every_stage_and_reference_is_measured(result):
    data, _ = result
    assert [s["name"] for s in data["stages"]] == list(bench.STAGES)
    peers = [data[p] for p in (bench.POLARS_PEER, bench.DUCKDB_PEER) if data[p] is not None]
    for m in data["stages"] + [data[bench.SCAN_FLOOR], data[bench.LABEL_FLOOR], data[bench.NAIVE],
                               data[bench.SAME_RESULTS], data[bench.NOTEBOOK_START],
                               data[bench.LABEL_FLOOR_REFERENCE], *peers]:
        for key in ("seconds", "process_seconds", "rows", "rows_per_second", "peak_rss_mb",
                    "peak_rss_kernel_mb", "peak_rss_polled_mb", "bytes_written"):
            assert key in m, (m["name"], key)
        assert m["seconds"] > 0 and m["peak_rss_mb"] > 0
        assert m["process_seconds"] >= m["seconds"]
    rows = {s["name"]: s["rows"] for s in data["stages"]}
    # Raw rows: the N generated rows plus the malformed rows the generator plants.
    assert rows["acquire"] == rows["clean"] >= ROWS
    assert data[bench.SCAN_FLOOR]["rows"] == data[bench.NAIVE]["rows"] == rows["acquire"]
    assert data[bench.LABEL_FLOOR]["rows"] == rows["label_images"]  # every cleaned row labelled
    assert data[bench.LABEL_FLOOR_REFERENCE]["rows"] == rows["label_images"]
    for m in peers:  # the peers keep exactly the rows cleaning keeps
        assert m["rows"] == rows["label_images"]


@pytest.mark.slow  # the benchmark end to end, with its baseline
def test_peers_compute_the_pipelines_results(result):
    data, _ = result
    assert data["peers"][bench.DUCKDB_PEER] == {"equal": True, "differences": []}
    if bench_peers.polars_available():
        assert data["peers"][bench.POLARS_PEER] == {"equal": True, "differences": []}
    else:
        assert data["peers"][bench.POLARS_PEER] == {"skipped": "polars is not installed"}
        assert data[bench.POLARS_PEER] is None


@pytest.mark.slow  # the benchmark end to end, with its baseline
def test_ratios_machine_and_targets_are_reported(result):
    data, _ = result
    s = data["summary"]
    for key in ("pipeline_seconds", "pipeline_peak_rss_mb", "scan_floor_seconds", "pipeline_over_scan",
                "label_floor_seconds", "label_floor_over_scan", "pipeline_over_label_floor",
                "naive_seconds", "naive_peak_rss_mb", "naive_over_pipeline", "peak_share_of_naive",
                "same_results_seconds", "duckdb_peer_seconds", "same_results_over_duckdb_peer",
                "pipeline_over_duckdb_peer", "snapshot_bytes", "bytes_written",
                "bytes_written_over_snapshot", "label_floor_reference_seconds",
                "label_floor_reference_over_light"):
        assert s[key] is not None, key
    polars_keys = ("polars_peer_seconds", "pipeline_over_polars_peer", "same_results_over_polars_peer")
    assert all((s[k] is not None) == bench_peers.polars_available() for k in polars_keys)
    by_name = {m["name"]: m for m in data["stages"]}
    assert s["same_results_seconds"] == pytest.approx(
        sum(by_name[n]["seconds"] for n in bench.SAME_RESULTS_STAGES) + data[bench.SAME_RESULTS]["seconds"],
        abs=0.01)
    assert s["pipeline_whole_seconds"] == pytest.approx(
        s["pipeline_seconds"] + s["notebooks"] * data[bench.NOTEBOOK_START]["process_seconds"], abs=0.01)
    assert s["notebooks"] >= 6 and s["notebook_start_seconds"] > 0
    assert s["pipeline_over_duckdb_peer"] == pytest.approx(
        s["pipeline_whole_seconds"] / data[bench.DUCKDB_PEER]["process_seconds"], rel=0.01)
    assert s["bytes_written"] == sum(m["bytes_written"] for m in data["stages"]) > 0
    assert len(data["load_average"]["start"]) == len(data["load_average"]["end"]) == 3
    assert s["pipeline_seconds"] == pytest.approx(sum(m["seconds"] for m in data["stages"]), abs=0.01)
    assert s["pipeline_over_scan"] == pytest.approx(s["pipeline_seconds"] / s["scan_floor_seconds"],
                                                    rel=0.01)
    assert set(s["targets"]) == {"same_results_over_polars_peer<=1", "pipeline_over_polars_peer<=4",
                                 "bytes_written_over_snapshot<=1.5", "peak_rss<=1GB",
                                 "naive_over_pipeline>=5", "peak_share_of_naive<=1/3"}
    for key in ("cores", "memory_gb", "cpu", "python", "duckdb", "pyarrow"):
        assert data["machine"][key], key


@pytest.mark.slow  # the benchmark end to end, with its baseline
def test_markdown_table_lists_every_stage(result):
    data, out = result
    text = (out / f"{ROWS}.md").read_text(encoding="utf-8")
    for name in [*bench.STAGES, bench.SCAN_FLOOR, bench.LABEL_FLOOR, bench.NAIVE, bench.SAME_RESULTS,
                 bench.DUCKDB_PEER, bench.NOTEBOOK_START, bench.LABEL_FLOOR_REFERENCE]:
        assert f"| {name} |" in text
    assert "duckdb_peer: results equal to the pipeline's" in text
    assert f"labelling floor / scan floor: {data['summary']['label_floor_over_scan']}" in text


def test_a_peer_that_differs_is_reported():
    frames = {"monthly": pd.DataFrame({"month": ["2023-01"], "n_images": [3]}),
              "adapter": pd.DataFrame({"uses_adapter": [False, True], "n": [2, 1], "k": [1, 0]})}
    assert bench_peers.compare_frames(frames, frames) == []
    other = {**frames, "monthly": frames["monthly"].assign(n_images=[4])}
    problems = bench_peers.compare_frames(other, frames)
    assert len(problems) == 1 and problems[0].startswith("monthly")
    assert bench_peers.compare_frames({"monthly": frames["monthly"]}, frames) == ["adapter: missing"]


def test_extrapolation_is_linear_in_rows():
    def fake(rows: int, per_row: float, peaks: dict[str, float]) -> dict:
        return {"rows": rows, "stages": [{"name": s, "seconds": 1.0 + per_row * rows,
                                          "peak_rss_mb": peaks.get(s, 300.0)} for s in bench.STAGES]}

    # acquire is the larger peak but bounded; label_models grows and overtakes it.
    small = fake(1_000, 0.01, {"acquire": 500.0, "label_models": 400.0})
    large = fake(2_000, 0.01, {"acquire": 500.0, "label_models": 420.0})
    pred = bench.extrapolate([small, large], 10_000)
    assert pred["stage_seconds"]["clean"] == pytest.approx(101.0)
    assert pred["pipeline_seconds"] == pytest.approx(101.0 * len(bench.STAGES))
    assert pred["stage_peak_rss_mb"]["acquire"] == pytest.approx(500.0)
    assert pred["pipeline_peak_rss_mb"] == pytest.approx(420.0 + 0.02 * 8_000)
    with pytest.raises(ValueError):
        bench.extrapolate([small], 10_000)


def test_label_floor_counts_every_label_without_writing(tmp_path):
    sql = bench.label_floor_sql(tmp_path / "interim.parquet")
    assert "regexp_matches" in sql and "COPY" not in sql.upper()
    assert sql.count("count(") == 1 + 3 + len(label.MARKER_CATEGORIES)


def test_scan_floor_reads_every_needed_column():
    sql = bench.scan_floor_sql([Path("a.parquet")], ["id", "positivePrompt"])
    assert '"id"' in sql and '"positivePrompt"' in sql and "read_parquet(['a.parquet'])" in sql


def test_readme_scale_figures_are_the_committed_benchmark_results():
    # The README quotes the benchmark; its figures must be the ones in benchmarks/results.
    from helpers.paths import repo_root

    readme = " ".join((repo_root() / "README.md").read_text(encoding="utf-8").split())  # line breaks as spaces
    four_result, eight_result, before_result, previous_result = bench.committed_results()
    four, eight, before = four_result["summary"], eight_result["summary"], before_result["summary"]
    previous = previous_result["summary"]
    forty = bench.extrapolate([four_result, eight_result], 40_000_000)
    quoted = [f"took {four['same_results_seconds']:.0f} s ({previous['same_results_seconds']:.0f} s before this design",
              f"{four['same_results_over_polars_peer']:.1f} times the polars peer ({four['polars_peer_seconds']:.1f} s; "
              f"DuckDB peer {four['duckdb_peer_seconds']:.1f} s)",
              f"at least {four['write_and_label_floor_seconds']:.1f} s on the benchmark machine "
              f"({four['write_and_label_floor_over_polars_peer']:.1f} times the polars peer",
              f"{four['notebooks']} notebook starts of {four['notebook_start_seconds']:.1f} s, took "
              f"{four['pipeline_whole_seconds']:.0f} s ({four['pipeline_over_polars_peer']:.1f} times the polars peer)",
              f"{four['pipeline_peak_rss_mb']:,.0f} MB peak",
              f"{eight['pipeline_whole_seconds']:.0f} s at 8M rows "
              f"({eight['pipeline_whole_seconds'] / four['pipeline_whole_seconds']:.2f} times 4M)",
              f"peak of {eight['pipeline_peak_rss_mb']:,.0f} MB",
              f"about {forty['pipeline_seconds'] / 60:.0f} minutes",
              f"{before['naive_seconds']:,.0f} s and {before['naive_peak_rss_mb'] / 1000:.1f} GB",
              f"{four['label_floor_reference_over_light']:.1f} times faster",
              f"{four['bytes_written_over_snapshot']:.2f} times the snapshot's bytes",
              f"load average {four_result['load_average']['start'][0]:.1f}"]
    for text in quoted:
        assert text in readme, text
    for result in (four_result, eight_result):
        assert result["peers"][bench.POLARS_PEER]["equal"] and result["peers"][bench.DUCKDB_PEER]["equal"]


def test_benchmark_readme_table_is_the_committed_results():
    from helpers.paths import repo_root

    text = (repo_root() / "benchmarks" / "README.md").read_text(encoding="utf-8")
    results = bench.committed_results()
    assert bench.comparison_table(results[0], results[1], results[3]) in text
    assert bench.benchmark_readme_results(*results) in text
    readme = " ".join((repo_root() / "README.md").read_text(encoding="utf-8").split())
    assert " ".join(bench.readme_scale_paragraph(*results).split()) in readme


@dataclass(frozen=True)
class Demo(Results):
    part: ClassVar[str] = "demo"
    definition: str
    monthly: pd.DataFrame
    concentration: dict


def test_results_pass_between_stages_as_parquet_and_json(tmp_path):
    # The analysis stages hand their results objects to the figures stage through files.
    import numpy as np

    demo = Demo("r", pd.DataFrame({"month": ["2023-01", "2023-02"], "share": [0.25, 0.5]}),
                {"gini": np.float64(0.82), "n_users": np.int64(12), "label": "x",
                 "top1_share": float("nan")})
    demo.save(tmp_path / "f")
    back = Demo.load(tmp_path / "f")
    assert sorted(p.suffix for p in (tmp_path / "f").iterdir()) == [".json", ".parquet"]
    pd.testing.assert_frame_equal(back.monthly, demo.monthly)
    assert back.definition == "r"
    nan = back.concentration.pop("top1_share")
    assert np.isnan(nan) and back.concentration == {"gini": 0.82, "n_users": 12, "label": "x"}


def test_a_before_run_on_another_cpu_is_said_to_be_so():
    from helpers.bench_report import where_before

    now = {"machine": {"cpu": "Intel Xeon"}, "summary": {"polars_peer_seconds": 10.0}}
    assert where_before(now, {"machine": {"cpu": "Intel Xeon"}, "summary": {}}) == "the same machine"
    other = where_before(now, {"machine": {"cpu": "AMD EPYC"}, "summary": {"polars_peer_seconds": 5.4}})
    assert other.startswith("another machine, AMD EPYC") and "5.4 s against 10.0 s" in other
