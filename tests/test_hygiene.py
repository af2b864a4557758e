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


def _make_recipe(target: str) -> str:
    """The recipe lines of a Makefile target (joined)."""
    lines = (repo_root() / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{target}:"))
    recipe = []
    for ln in lines[start + 1:]:
        if not ln.startswith("\t"):
            break
        recipe.append(ln.strip())
    return "\n".join(recipe)


def _make_variable(name: str) -> str:
    text = (repo_root() / "Makefile").read_text(encoding="utf-8")
    return re.search(rf"^{name}\s*[:?]?=\s*(.*)$", text, re.M).group(1).strip()


def test_ci_runs_the_readme_test_command_which_runs_every_notebook():
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    ci = (repo_root() / ".ci" / "run").read_text(encoding="utf-8")
    make = (repo_root() / "Makefile").read_text(encoding="utf-8")
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in ci
    # nbval collects every notebook in the folder: the notebooks of a copy of the repository
    assert "--nbval $(NBVAL_REPO)/notebooks" in make and "nbval" in _make_recipe("test")
    assert "notebooks" in _make_variable("NBVAL_COPY").split()


def test_make_test_leaves_the_checkout_as_it_was():
    """nbval executes the notebooks, which write their run into the repository they are in:
    it runs them in a copy (the repository root moved there), and CI fails on any change."""
    nbval = _make_recipe("nbval")
    assert "HELPERS_REPO_ROOT=$(CURDIR)/$(NBVAL_REPO)" in nbval
    assert _make_variable("NBVAL_REPO").startswith("runs/")  # git-ignored
    assert "/runs/" in (repo_root() / ".gitignore").read_text(encoding="utf-8").split()
    # everything the notebooks read from the repository is copied
    copied = set(_make_variable("NBVAL_COPY").split())
    assert {"notebooks", "paper", "docs", "params", "README.md", "pyproject.toml"} <= copied
    ci = (repo_root() / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("make test") < ci.index("git status --porcelain") < ci.index("make paper")


def test_fast_tier_leaves_out_the_slow_tests():
    assert '-m "not slow and not realdata"' in _make_recipe("test-fast")
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    assert "make test-fast" in readme


# --------------------------------------------------------------------------- the environment
def _lock() -> dict[str, str]:
    text = (repo_root() / pipeline.LOCK_FILE).read_text(encoding="utf-8")
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def test_every_installed_dependency_is_the_locked_version():
    """The environment the tests run in is the lock: every dependency, transitively."""
    lock = _lock()
    resolved = pipeline.resolved_dependencies(pipeline.LOCK_EXTRAS)
    assert {"pandas", "duckdb", "pyarrow", "nbval", "pytest"} <= set(lock)
    wrong = {name: (version, lock.get(_canonical(name))) for name, version in resolved.items()
             if lock.get(_canonical(name)) != version}
    assert not wrong, f"installed version differs from requirements/lock.txt (run make lock?): {wrong}"


def test_installs_use_the_lock_and_reinstall_when_it_changes():
    make = (repo_root() / "Makefile").read_text(encoding="utf-8")
    assert _make_variable("LOCK") == pipeline.LOCK_FILE.as_posix()
    for stamp in ("$(BASE_STAMP)", "$(DEV_STAMP)", "$(LAB_STAMP)"):
        rule = re.search(rf"^{re.escape(stamp)}:(.*)$", make, re.M).group(1)
        assert "$(LOCK)" in rule.split("|")[0], f"{stamp} does not depend on the lock"
        recipe = _make_recipe(stamp)
        assert "pip install" in recipe and "-c $(LOCK)" in recipe, stamp


def test_environment_yml_installs_under_the_lock():
    import yaml

    env = yaml.safe_load((repo_root() / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip[0] == f"-c {pipeline.LOCK_FILE.as_posix()}" and "-e .[dev]" in pip
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    lock_text = (repo_root() / pipeline.LOCK_FILE).read_text(encoding="utf-8")
    locked_python = re.search(r"^# python (\d+\.\d+)\.", lock_text, re.M).group(1)
    assert python == f"python={locked_python}"


def test_jupyterlab_is_an_extra_for_readers_not_a_dependency():
    import tomllib

    project = tomllib.loads((repo_root() / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(_canonical(r).startswith("jupyterlab") for r in project["dependencies"])
    assert any(_canonical(r).startswith("jupyterlab") for r in project["optional-dependencies"]["lab"])
    for py in (repo_root() / "src" / "helpers").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+jupyterlab", py.read_text(encoding="utf-8"), re.M), py


# --------------------------------------------------------------------------- the README, licence, citation
def test_readme_says_how_to_run_what_ci_runs_and_where_it_was_measured():
    readme = " ".join((repo_root() / "README.md").read_text(encoding="utf-8").split())
    for text in (".venv/bin/python -m helpers params", "make paper RUN=runs/full",
                 "make html RUN=runs/full", "make test-fast", "'.[lab]'", "hf auth login",
                 "What CI runs.", "`make paper`", "requirements/lock.txt"):
        assert text in readme, text
    assert "this machine" not in readme and "huggingface-cli login" not in readme
    assert "2 cores" in readme and "GB of memory" in readme  # the machine of the scale figures


def test_licence_and_citation():
    import yaml

    licence = (repo_root() / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Copyright (c) 2026 the authors of this repository" in licence
    cff = yaml.safe_load((repo_root() / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["license"] == "MIT"
    study = cff["references"][0]
    assert "Misogyny" in study["title"] and study["year"] == 2025
    assert [a["family-names"] for a in study["authors"]] == ["Wagner", "Cetinic"]
    assert "2505.04600" in study["url"]


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
