"""Deterministic synthetic churn data: eight customer features and a churned/stayed label."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FEATURES = (
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "late_payments",
    "contract_months",
    "logins_per_week",
    "discount_pct",
    "devices",
)
N_FEATURES = len(FEATURES)


class ChurnData(NamedTuple):
    x: np.ndarray  # (n, 8) float32, raw (unstandardized) features
    y: np.ndarray  # (n, 1) float32, 1.0 = churned


def make_churn_data(n: int = 256, *, seed: int = 0) -> ChurnData:
    """`n` synthetic customers; the same `seed` always gives the same arrays."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([
        rng.integers(1, 72, n),            # tenure_months
        rng.normal(65.0, 20.0, n),         # monthly_charges
        rng.poisson(1.5, n),               # support_calls
        rng.poisson(0.4, n),               # late_payments
        rng.choice([1, 12, 24], n),        # contract_months
        rng.gamma(2.0, 2.0, n),            # logins_per_week
        rng.uniform(0.0, 30.0, n),         # discount_pct
        rng.integers(1, 6, n),             # devices
    ]).astype(np.float32)
    # Short tenure, month-to-month contracts, support calls and late payments drive churn.
    logit = (
        -0.04 * x[:, 0] + 0.02 * (x[:, 1] - 65.0) + 0.6 * x[:, 2] + 0.9 * x[:, 3]
        - 0.08 * x[:, 4] - 0.15 * x[:, 5] - 0.03 * x[:, 6] + 0.5
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return ChurnData(x, y.reshape(-1, 1))
