"""Coverage of a planted monthly path by the user-cluster bootstrap, shared by the planted-truth
tests: one replicate seed moves the count of covered months by a month or two either way, so
coverage is checked over several seeds, beside the naive interval's."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from helpers.analyse import users

#: Replicate seeds the coverage is averaged over.
SEEDS = range(1, 9)


def assert_monthly_coverage(counts: pd.DataFrame, planted: Mapping[str, float], n_boot: int) -> pd.DataFrame:
    """Check that every planted month (month → share) is estimated from ``counts``, and that the
    cluster-bootstrap intervals of the monthly NSFW shares cover the planted share in most months
    (mean over seeds at least 0.8, no seed below 0.75) and far more often than the naive Wilson
    interval (by more than 0.1). Returns the monthly shares with the first seed's intervals."""
    coverage, naive, first = [], [], None
    for seed in SEEDS:
        monthly = users.cluster_bootstrap_shares(counts, group="month", n_boot=n_boot, seed=seed)
        assert sorted(monthly["month"]) == sorted(planted), "every planted month is estimated"
        first = monthly if first is None else first
        share = monthly["month"].map(planted)
        coverage.append(float(((monthly["boot_low"] <= share) & (share <= monthly["boot_high"])).mean()))
        naive.append(float(((monthly["ci_low"] <= share) & (share <= monthly["ci_high"])).mean()))
    print(f"monthly coverage of the planted path by seed: {np.round(coverage, 3).tolist()}; "
          f"naive {naive[0]:.3f}")
    assert np.mean(coverage) >= 0.8 and min(coverage) >= 0.75, coverage
    assert np.mean(coverage) > naive[0] + 0.1, (coverage, naive[0])
    return first
