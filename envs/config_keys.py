"""One check for every config section envs reads: a misspelled key fails, naming it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def reject_unknown_keys(values: Mapping[str, Any], known: Iterable[str], section: str) -> None:
    """Raise ValueError listing the keys of `values` that are not in `known`."""
    known = sorted(set(known))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {section} keys {unknown}; expected some of {known}")
