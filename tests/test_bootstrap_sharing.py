"""The image analyses' shortcuts give what the plain computations give: replayed bootstrap
draws (exactly), the shift-share replicates from weighted sums (to rounding), and text held once."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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
            assert a.dtype == np.float64 and np.array_equal(a, b)
    assert users._SHARED is None                # nothing kept after the block


def test_a_bootstrap_stopped_early_keeps_nothing_half_drawn():
    with users.shared_weights():
        next(iter(users.poisson_weights(100, 200, 1)))
        full = _draws(100, 200, 1)
    assert len(full) == 4 and all(np.array_equal(a, b) for a, b in zip(full, _draws(100, 200, 1)))


@pytest.mark.parametrize("n_users, n_boot, chunk", [(0, 10, 5), (1, 3, 50), (1000, 120, 50), (64, 7, 3),
                                                    (65, 51, 50)])
def test_weights_drawn_in_blocks_of_users_equal_the_whole_matrix_drawn_at_once(monkeypatch, n_users,
                                                                                n_boot, chunk):
    monkeypatch.setattr(users, "DRAW_ROWS", 64)
    rng, want, done = np.random.default_rng(7), [], 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        uniform = rng.integers(0, 2 ** 32, size=(n_users, size), dtype=np.uint32)
        want.append((uniform[..., None] >= users.poisson_thresholds()).sum(axis=-1))
        done += size
    got = list(users._drawn_weights(n_users, n_boot, 7, chunk))
    assert len(got) == len(want)
    assert all(g.dtype == np.uint8 and np.array_equal(g, w) for g, w in zip(got, want))


def test_poisson_thresholds_are_the_inverse_cdf_of_poisson_one_to_thirty_two_bits():
    t = users.poisson_thresholds().astype(np.float64) / 2 ** 32
    assert np.all(np.diff(t) > 0)
    assert np.allclose(t, stats.poisson.cdf(np.arange(len(t)), 1.0), rtol=0, atol=2 ** -32)
    # the largest weight is len(t); a larger one is rarer than half a step of 2⁻³²
    assert stats.poisson.sf(len(t), 1.0) * 2 ** 32 < 0.5 <= stats.poisson.sf(len(t) - 1, 1.0) * 2 ** 32


def test_drawn_weights_follow_poisson_one():
    draws = np.concatenate(list(users._drawn_weights(20_000, 100, 3, 50)), axis=1).ravel()
    assert abs(draws.mean() - 1) < 0.003 and abs(draws.var() - 1) < 0.005
    observed = np.bincount(draws, minlength=7)[:7].astype(float)
    observed[6] = (draws >= 6).sum()
    expected = np.append(stats.poisson.pmf(np.arange(6), 1.0), stats.poisson.sf(5, 1.0)) * draws.size
    assert stats.chisquare(observed, expected).pvalue > 0.001


def _period_arrays(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    n_a = rng.poisson(3, n).astype(float)
    n_a[rng.random(n) < 0.4] = 0
    n_b = rng.poisson(3, n).astype(float)
    n_b[rng.random(n) < 0.3] = 0
    n_b[(n_a == 0) & (n_b == 0)] = 1
    return [x[:, None] for x in (n_a, np.floor(n_a * rng.random(n)), n_b, np.floor(n_b * rng.random(n)))]


@pytest.mark.parametrize("width", [1, 2, 50])
def test_shift_share_replicates_from_sums_equal_the_decomposition_of_weighted_counts(width):
    rng = np.random.default_rng(width)
    arrays = _period_arrays(rng, 5000)
    weights = rng.poisson(1.0, (5000, width)).astype(np.float64)
    full = users._decompose(*(a * weights for a in arrays))
    fast = users.decompose_sums(users.decomposition_terms(arrays) @ weights)
    np.testing.assert_allclose(fast, full, rtol=1e-12, atol=1e-15)
    # the change is a ratio of exact integer sums: the same to the bit
    assert np.array_equal(fast[0], full[0])


def test_shift_share_replicate_with_an_empty_period_matches_the_decomposition():
    rng = np.random.default_rng(3)
    arrays = _period_arrays(rng, 40)
    weights = rng.poisson(1.0, (40, 4)).astype(np.float64)
    weights[arrays[0][:, 0] > 0, 0] = 0     # replicate 0: nobody of period A drawn
    weights[arrays[2][:, 0] > 0, 1] = 0     # replicate 1: nobody of period B drawn
    weights[:, 2] = 0                       # replicate 2: nobody at all
    full = users._decompose(*(a * weights for a in arrays))
    fast = users.decompose_sums(users.decomposition_terms(arrays) @ weights)
    np.testing.assert_allclose(fast, full, rtol=1e-12, atol=1e-15, equal_nan=True)
    assert np.isnan(fast[0, :3]).all() and (fast[1, :3] == 0).all()


def test_shared_text_keeps_values_and_missing_text():
    frame = pd.DataFrame({"user": ["b", "a", "b", "c"], "month": ["m", None, "m", "n"], "n": [1, 2, 3, 4]})
    out = common.shared_text(frame.copy(), ["user", "month", "n"])
    pd.testing.assert_frame_equal(out, frame)
    assert out["user"].iloc[0] is out["user"].iloc[2]
