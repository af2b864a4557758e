"""The synthetic prompts are as long as real ones: the benchmark's text work (regexes over every
prompt) is measured at its real size. Checked against the real 2023 showcase prompts in
``../shared/data`` (skipped without them)."""
from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import synth
from helpers.synth.text import prompt_length_summary

pytestmark = pytest.mark.realdata

#: Largest relative gap allowed between the synthetic and the real figure.
TOLERANCE = 0.10


def real_prompts(path) -> pa.Array:
    """Positive prompts of the showcase images of the real model records."""
    prompts = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            for version in json.loads(line).get("modelVersions") or []:
                for image in version.get("images") or []:
                    meta = image.get("meta")
                    if isinstance(meta, dict) and isinstance(meta.get("prompt"), str):
                        prompts.append(meta["prompt"])
    return pa.array(prompts, pa.string())


def test_synthetic_prompt_lengths_follow_the_real_ones(real_data, tmp_path):
    real = prompt_length_summary(real_prompts(real_data))
    assert real["prompts"] > 10_000
    synth.write_snapshot(tmp_path, synth.default_params(n_images=100_000, n_models=1_000, seed=7))
    table = pq.read_table(sorted((tmp_path / "images").glob("*.parquet")), columns=["positivePrompt"])
    fake = prompt_length_summary(table.column("positivePrompt"))
    for key in ("median", "mean", "p90", "commas"):
        assert abs(fake[key] - real[key]) <= TOLERANCE * real[key], (key, fake[key], real[key])
    # and the tail is really there: long prompts are not an average of medium ones
    assert fake["p90"] > 1.8 * fake["median"]
