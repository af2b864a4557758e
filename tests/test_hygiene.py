"""Repository hygiene: notebooks are thin, numbered, parameterised, executed and deterministic."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from helpers import pipeline
from helpers.paths import repo_root

NOTEBOOKS = pipeline.notebook_files()
NAME = re.compile(r"^(\d\d)_[a-z]+(_[a-z]+)*\.ipynb$")
ABSOLUTE = re.compile(r"(/work/|/tmp/|/root/|/home/|[A-Z]:\\\\)")


def load(path: Path):
    return nbformat.read(path, as_version=4)


def test_notebooks_exist_and_are_numbered_contiguously():
    names = [p.name for p in (repo_root() / "notebooks").glob("*.ipynb")]
    assert names, "no notebooks"
    for name in names:
        assert NAME.match(name), f"{name} is not NN_verb_object.ipynb"
    numbers = sorted(int(n[:2]) for n in names)
    assert numbers == list(range(len(numbers))), f"numbering is not contiguous: {numbers}"
    assert [p.name for p in NOTEBOOKS] == sorted(names), "the runner does not run every notebook"


def test_ci_runs_the_readme_test_command_which_runs_every_notebook():
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    ci = (repo_root() / ".ci" / "run").read_text(encoding="utf-8")
    make = (repo_root() / "Makefile").read_text(encoding="utf-8")
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in ci
    assert "--nbval notebooks" in make  # nbval collects every notebook in the folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_parameterised(path):
    nb = load(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "Content warning" in first.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert code[0] is tagged[0], "the first code cell is the parameters cell"
    for stmt in ast.parse(tagged[0].source).body:
        assert isinstance(stmt, ast.Assign), "parameters cell holds assignments only"
        ast.literal_eval(stmt.value)  # literals only: papermill does not recompute derived values
    for cell in code:
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defs, f"{path.name}: define functions in src/helpers, not in notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_without_run_metadata(path):
    nb = load(path)
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert "tags" not in cell.metadata or "injected-parameters" not in cell.metadata["tags"]
        for key in ("papermill", "execution", "ExecuteTime"):
            assert key not in cell.metadata, f"{path.name}: run metadata {key} committed"
        if cell.cell_type == "code":
            assert cell.execution_count is not None, f"{path.name}: not executed"
            for out in cell.outputs:
                assert out.output_type != "error", f"{path.name}: committed with an error"
                text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
                assert not ABSOLUTE.search(text), f"{path.name}: absolute path in output"


def test_no_helper_module_prints_timestamps_or_absolute_paths():
    # Cheap guard for determinism: helpers never format "now" into outputs.
    for py in (repo_root() / "src" / "helpers").rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        assert "datetime.now(" not in text and "date.today(" not in text, py.name
