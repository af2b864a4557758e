"""Degenerate but valid snapshots: what users bring (a month of data, one creator, an SFW-only
crawl, a models-only scrape). Each variant is the small synthetic sample, in the Hub's raw
format, with one property forced; :func:`write_variant` writes it as a ``local`` snapshot."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers import synth

Tables = tuple[pd.DataFrame | None, pd.DataFrame | None]
ZERO_STATS = json.dumps({"likeCount": 0, "heartCount": 0, "laughCount": 0, "cryCount": 0,
                         "commentCount": 0})
CALL_RE = re.compile(r",?\s*<(?:lora|lyco)[^<>]*>", re.IGNORECASE)


def base_tables(folder: Path, n_images: int = 1_500, n_models: int = 150,
                seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The small clean sample (no planted messy rows) as Hub-format frames."""
    params = synth.default_params(n_images=n_images, n_models=n_models, seed=seed, messy_rows=0,
                                  messy_model_rows=0)
    synth.write_snapshot(folder, params)
    return (pq.read_table(folder / "images").to_pandas(), pq.read_table(folder / "models").to_pandas())


def _dated(images: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Every image moved onto ``days`` in turn (times of day kept), ids still increasing."""
    out = images.copy()
    times = out["createdAt"].str.slice(10)
    out["createdAt"] = [days[i % len(days)] + t for i, t in enumerate(times)]
    order = np.argsort(out["createdAt"].to_numpy(), kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out["id"] = np.sort(images["id"].to_numpy())
    return out


def _models_with(models: pd.DataFrame, **columns) -> pd.DataFrame:
    out = models.copy()
    for name, value in columns.items():
        out[name] = [value(v) if callable(value) else value for v in out[name]]
    return out


def _neutral(models: pd.DataFrame) -> pd.DataFrame:
    """Models with no cue of a depicted gender: neutral names, tags and descriptions."""
    out = models.copy()
    out["name"] = [f"Model {i}" for i in range(len(out))]
    out["tags"] = [["style"] for _ in range(len(out))]
    out["description"] = "<p>A model.</p>"
    out["modelVersions"] = [[{**v, "trainedWords": []} for v in versions]
                            for versions in out["modelVersions"]]
    return out


VARIANTS: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Tables]] = {
    "images_only": lambda i, m: (i, None),
    "models_only": lambda i, m: (None, m),
    "no_adapter_call": lambda i, m: (i.assign(positivePrompt=i["positivePrompt"].str.replace(
        CALL_RE, "", regex=True)), m),
    "all_sfw": lambda i, m: (i.assign(browsingLevel=1, nsfw=False),
                             m.assign(nsfwLevel=1, nsfw=False)),
    "all_nsfw": lambda i, m: (i.assign(browsingLevel=16, nsfw=True),
                              m.assign(nsfwLevel=16, nsfw=True)),
    "one_month": lambda i, m: (_dated(i, [f"2023-05-{d:02d}" for d in range(1, 29)]), m),
    "one_day": lambda i, m: (_dated(i, ["2023-05-10"]), m),
    "gap_month": lambda i, m: (_dated(i, ["2023-04-15", "2023-06-15"]), m),
    "one_user": lambda i, m: (i.assign(usernameHash="0123456789abcdef"), m),
    "every_image_its_own_user": lambda i, m: (i.assign(usernameHash=[f"{k:016x}" for k in range(len(i))]), m),
    "no_real_person_models": lambda i, m: (i, m.assign(poi=False)),
    "only_real_person_models": lambda i, m: (i, m.assign(poi=True)),
    "no_gender_cue": lambda i, m: (i, _neutral(m)),
    "every_prompt_empty": lambda i, m: (i.assign(positivePrompt=None, negativePrompt=None), m),
    "no_engagement": lambda i, m: (i.assign(statsSummary=ZERO_STATS),
                                   _models_with(m, stats=lambda s: {k: 0 for k in s})),
    "one_image_one_model": lambda i, m: (i.head(1), m.head(1)),
    "model_id_never_matches": lambda i, m: (i.assign(modelId=i["modelId"] + 10**9), m),
}


def write_variant(name: str, images: pd.DataFrame, models: pd.DataFrame, folder: Path) -> Path:
    """Write variant ``name`` of the base tables as a Hub-format ``local`` snapshot in ``folder``."""
    var_images, var_models = VARIANTS[name](images, models)
    for table, frame, schema_ in (("images", var_images, synth.IMAGES_SCHEMA),
                                  ("models", var_models, synth.MODELS_SCHEMA)):
        if frame is not None:
            (folder / table).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(frame, schema=schema_, preserve_index=False),
                           folder / table / "part-00000.parquet")
    return folder


#: The prompt of every image in the issue's example snapshot (no adapter call).
PLAIN_PROMPT = "1girl, solo, masterpiece"


def plain_prompt_snapshot(folder: Path, n_images: int = 5_000, n_users: int = 300,
                          seed: int = 11) -> Path:
    """The snapshot users bring and the issue describes: ``n_images`` images in the Hub's
    columns, every prompt :data:`PLAIN_PROMPT`, images only (no models table), ``n_users``
    users. Written as a ``local`` snapshot in ``folder / "snapshot"``; returns that folder."""
    images, _ = base_tables(folder / "base", n_images=n_images, n_models=50, seed=seed)
    images = images.assign(positivePrompt=PLAIN_PROMPT,
                           usernameHash=[f"{k % n_users:016x}" for k in range(len(images))])
    out = folder / "snapshot"
    (out / "images").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(images, schema=synth.IMAGES_SCHEMA, preserve_index=False),
                   out / "images" / "part-00000.parquet")
    return out
