"""The ``sample`` source: the embedded synthetic snapshot, read through the ``local`` adapter."""
from __future__ import annotations

from ..paths import RunPaths
from .common import AcquireResult
from .local import acquire_local


def acquire_sample(paths: RunPaths, n_images: int, n_models: int, seed: int,
                   salt: str = "") -> AcquireResult:
    """Generate the embedded synthetic snapshot (Hub raw format) and read it as ``local``."""
    from .. import synth  # local import: generating is only needed for this source

    params = synth.default_params(n_images=n_images, n_models=n_models, seed=seed)
    folder = paths.source_cache / "sample"
    synth.write_snapshot(folder, params)
    result = acquire_local(folder, paths, salt=salt, source="sample",
                           location=f"synthetic sample (seed {seed}, {n_images} images, "
                                    f"{n_models} models)")
    return result


