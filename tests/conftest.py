"""Shared fixtures: run folders in tmp, the real data in ../shared/data (skipped when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.paths import RunPaths, repo_root

SHARED_DATA = repo_root().parent / "shared" / "data"
API_MODELS = SHARED_DATA / "civitai-api-models-2023" / "models.jsonl.gz"

# The Hub is unreachable here: make `datasets` / `huggingface_hub` fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def require_real_data() -> Path:
    """Path of the real CivitAI API records, or skip with the reason."""
    if not API_MODELS.exists():
        pytest.skip(f"real CivitAI records not found at {API_MODELS} (../shared/data is not "
                    f"part of the repository; see data/README.md)")
    return API_MODELS


@pytest.fixture
def real_data() -> Path:
    """Path of the real CivitAI API records; the test is skipped with the reason when absent."""
    return require_real_data()


@pytest.fixture
def run(tmp_path: Path) -> RunPaths:
    """An empty run folder."""
    return RunPaths(tmp_path / "run").ensure()


@pytest.fixture(scope="session")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> RunPaths:
    """The real API records acquired and cleaned once per session (≈10 s)."""
    from helpers import clean, sources

    path = require_real_data()
    paths = RunPaths(tmp_path_factory.mktemp("api_run")).ensure()
    sources.acquire("api", paths, path=str(path), salt="test-salt")
    clean.clean_all(paths)
    return paths
