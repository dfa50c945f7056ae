"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def baseline_cache(tmp_path_factory) -> Path:
    """One baseline cache for the whole run, so each dense baseline (the quickstart's small CNN on digits,
    say) trains once per test session instead of once per end-to-end test. Entries are keyed by
    everything that determines the weights (envs/workload/baseline.py), so tests with different recipes
    never share one by mistake."""
    return tmp_path_factory.mktemp("baselines")
