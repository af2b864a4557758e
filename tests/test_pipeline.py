"""The runner: parameters refused before any work, failures named, manifest complete, resume."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import pipeline
from helpers.paths import RunPaths, repo_root


@pytest.mark.parametrize("raw,match", [
    ({"colour": "red"}, "unknown parameter"),
    ({"sample_images": "many"}, "not a valid int"),
    ({"sample_images": "5"}, "at least 100"),
    ({"window_start": "2023-13-01"}, "YYYY-MM-DD"),
    ({"window_start": "2024-01-01", "window_end": "2023-01-01"}, "after window_end"),
    ({"window_start": "2019-01-01"}, "before CivitAI"),
    ({"source": "ftp"}, "not one of sample, hf, local, api"),
    ({"source": "local"}, "needs --path"),
    ({"source": "local", "path": "/nonexistent/snapshot"}, "does not exist"),
    ({"source": "sample", "path": "/tmp"}, "takes no --path"),
    ({"memory_limit": "lots"}, "memory size"),
])
def test_bad_parameters_are_refused(raw, match):
    with pytest.raises(pipeline.ParameterError, match=match):
        pipeline.parse_parameters(raw)


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(pipeline.ParameterError) as err:
        pipeline.parse_parameters({"sampel_images": 10})
    for name in pipeline.PARAMETERS:
        assert name in str(err.value)


def test_source_that_does_not_match_the_files_is_refused(tmp_path):
    (tmp_path / "images.parquet").write_bytes(b"x")
    with pytest.raises(pipeline.ParameterError, match="use --source local"):
        pipeline.parse_parameters({"source": "api", "path": str(tmp_path)})


def test_cli_refuses_before_running_anything(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "helpers", "run", "--out", str(out),
                           "-p", "colour", "red"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown parameter" in proc.stderr and "sample_images" in proc.stderr
    assert not out.exists()


def test_parameters_match_the_notebooks():
    """Every notebook parameter is a runner parameter with the same default (and vice versa)."""
    seen = set()
    for nb in pipeline.notebook_files():
        params = pipeline.notebook_parameters(nb)
        assert params.get("out_dir") == "", f"{nb.name}: out_dir must default to ''"
        for name, default in params.items():
            if name == "out_dir":
                continue
            assert name in pipeline.PARAMETERS, f"{nb.name}: {name} is not a runner parameter"
            assert pipeline.PARAMETERS[name].default == default, f"{nb.name}: default of {name}"
            seen.add(name)
    assert seen == set(pipeline.PARAMETERS)


def _failing_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('out_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# boom"), params,
                nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('planted')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "00_fail_here.ipynb"
    nbformat.write(nb, path)
    return path


def test_failure_names_notebook_and_cell(tmp_path):
    nb = _failing_notebook(tmp_path)
    with pytest.raises(pipeline.StageError) as err:
        pipeline.run(pipeline.parse_parameters({}), out=tmp_path / "out", progress=False,
                     notebooks=[nb], log=lambda m: None)
    msg = str(err.value)
    assert "00_fail_here" in msg and "cell 4 (`raise ValueError('planted')`)" in msg and "ValueError: planted" in msg
    assert (tmp_path / "out" / "notebooks" / "00_fail_here.failed.ipynb").exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed at 00_fail_here"


def test_strip_run_metadata(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1")
    cell.metadata.update({"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "t"},
                          "tags": ["parameters"]})
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": "now", "input_path": "/abs"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    pipeline.strip_run_metadata(path)
    again = nbformat.read(path, as_version=4)
    assert "papermill" not in again.metadata
    assert again.cells[0].metadata == {"tags": ["parameters"]}


@pytest.mark.slow
@pytest.mark.realdata
def test_api_run_end_to_end_then_resume(tmp_path, real_data):
    path = real_data
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "helpers", "run", "--quiet", "--source", "api", "--path", str(path),
           "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["source"]["name"] == "api"
    assert manifest["rows"]["models"]["raw"] == 5394
    rows = manifest["rows"]["models"]
    assert rows["raw"] == rows["clean"] + rows["quarantined"]
    assert "pandas" in manifest["packages"] and "duckdb" in manifest["packages"]
    assert "data/interim/models.parquet" in manifest["files"]
    assert all(len(h) == 64 for h in manifest["files"].values())
    for nb in pipeline.notebook_files():
        assert (out / "notebooks" / nb.name).exists()
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0
    assert "skipped" in second.stderr and f"0 stage(s) executed" in second.stdout
    third = subprocess.run(cmd + ["-p", "window_end", "2023-03-31"], capture_output=True, text=True)
    assert third.returncode == 0, third.stderr[-2000:]
    m3 = json.loads((out / "manifest.json").read_text())
    assert m3["rows"]["models"]["clean"] < rows["clean"]
    assert m3["rows"]["models"]["raw"] == m3["rows"]["models"]["clean"] + m3["rows"]["models"]["quarantined"]
