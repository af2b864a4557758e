"""The image analyses' shortcuts give exactly what the plain computations give: replayed bootstrap
draws, the shift-share on the users each period holds, and text held once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.analyse import common, users


def _draws(n_users: int, n_boot: int, seed: int) -> list[np.ndarray]:
    return list(users.poisson_weights(n_users, n_boot, seed))


def test_shared_weights_replay_the_draws_each_call_would_make():
    alone = [_draws(300, 120, 5), _draws(200, 120, 5), _draws(300, 120, 6)]
    with users.shared_weights():
        first = _draws(300, 120, 5)
        replayed = _draws(300, 120, 5)          # same users, replicates and seed: replayed
        other = _draws(200, 120, 5)             # other users: drawn anew
        reseeded = _draws(300, 120, 6)          # other seed: drawn anew
        again = _draws(300, 120, 6)
    for got, want in ((first, alone[0]), (replayed, alone[0]), (other, alone[1]),
                      (reseeded, alone[2]), (again, alone[2])):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert a.dtype == np.float32 and np.array_equal(a, b)
    assert users._SHARED is None                # nothing kept after the block


def test_a_bootstrap_stopped_early_keeps_nothing_half_drawn():
    with users.shared_weights():
        next(iter(users.poisson_weights(100, 200, 1)))
        full = _draws(100, 200, 1)
    assert len(full) == 4 and all(np.array_equal(a, b) for a, b in zip(full, _draws(100, 200, 1)))


@pytest.mark.parametrize("width", [2, 3, 10, 11, 50])
def test_shift_share_replicates_equal_the_full_decomposition_bit_for_bit(width):
    rng = np.random.default_rng(width)
    n = 5000
    n_a = rng.poisson(3, n).astype(float)
    n_a[rng.random(n) < 0.4] = 0
    n_b = rng.poisson(3, n).astype(float)
    n_b[rng.random(n) < 0.3] = 0
    n_b[(n_a == 0) & (n_b == 0)] = 1
    arrays = [x[:, None] for x in (n_a, np.floor(n_a * rng.random(n)), n_b, np.floor(n_b * rng.random(n)))]
    weights = rng.poisson(1.0, (n, width)).astype(np.float32)
    full = users._decompose(*(a * weights for a in arrays))
    assert np.array_equal(users._decompose_replicates(arrays, weights), full, equal_nan=True)


def test_column_blocks_never_leave_a_single_column_alone():
    for width in range(2, 60):
        blocks = users.column_blocks(width)
        assert [i for b in blocks for i in range(width)[b]] == list(range(width))
        assert all(b.stop - b.start >= 2 for b in blocks)
    assert users.column_blocks(1) == [slice(0, 1)]


def test_shared_text_keeps_values_and_missing_text():
    frame = pd.DataFrame({"user": ["b", "a", "b", "c"], "month": ["m", None, "m", "n"], "n": [1, 2, 3, 4]})
    out = common.shared_text(frame.copy(), ["user", "month", "n"])
    pd.testing.assert_frame_equal(out, frame)
    assert out["user"].iloc[0] is out["user"].iloc[2]
