"""Shared fixtures: run folders in tmp, the synthetic sample built once per session, the real
data in ../shared/data (skipped when absent)."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class SyntheticRun:
    """The embedded synthetic sample acquired, cleaned and labelled, with its planted truth."""

    params: Any  # helpers.synth.SynthParams
    truth: dict[str, Any]
    paths: RunPaths
    clean_report: dict[str, Any]

    def interim_copy(self, root: Path) -> RunPaths:
        """A fresh run folder holding this run's cleaned tables, for a test that labels them
        itself (the session's folder is shared and must not change)."""
        paths = RunPaths(root).ensure()
        for table in ("images", "models"):
            shutil.copy(self.paths.table("interim", table), paths.table("interim", table))
        return paths


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    """The synthetic snapshot through the real adapter (``sample``), cleaning and labelling,
    once per session (a few seconds). Read it; never write into it."""
    from helpers import clean, label, sources, synth

    params = synth.default_params(n_images=40_000, n_models=4_000, seed=20250507)
    paths = RunPaths(tmp_path_factory.mktemp("synthetic_run")).ensure()
    sources.acquire("sample", paths, sample_images=params.n_images, sample_models=params.n_models,
                    seed=params.seed)
    report = clean.clean_all(paths)
    label.label_images(paths)
    label.label_models(paths, seed=params.seed, n_boot=20)
    return SyntheticRun(params, synth.expected_truth(params), paths, report)
