"""Statistics shared by the labelling and analysis stages (one implementation of each)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

#: Confidence level of every interval.
CONFIDENCE = 0.95


def wilson_interval(successes: Sequence[float] | np.ndarray | pd.Series,
                    totals: Sequence[float] | np.ndarray | pd.Series,
                    confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for proportions ``successes / totals``; NaN where total is 0.

    Wilson rather than the normal approximation because it stays inside [0, 1] and keeps its
    coverage for small groups and shares near 0 or 1.
    """
    k = np.atleast_1d(np.asarray(successes, dtype=float))
    n = np.atleast_1d(np.asarray(totals, dtype=float))
    low = np.full(k.shape, np.nan)
    high = np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        lo, hi = proportion_confint(k[ok], n[ok], alpha=1 - confidence, method="wilson")
        low[ok], high[ok] = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    return low, high


def wilson_bounds(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson interval of one proportion as two floats (NaN, NaN when ``n`` is 0)."""
    low, high = wilson_interval([successes], [n], confidence)
    return float(low[0]), float(high[0])
