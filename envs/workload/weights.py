"""Loading a local state dict into a model, strictly, with errors that say what does not match.

Never downloads: the machines AUTO-PRUNE runs on are often offline, and a silent download of a
different checkpoint would change the baseline the search compares against.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

WRAPPER_KEYS = ("state_dict", "model")  # common checkpoint wrappers around the state dict
SHOWN = 5  # how many offending keys an error lists


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors saved at `path` by torch.save(model.state_dict()) (or a dict wrapping one).

    Accepts {"state_dict": sd} / {"model": sd} wrappers and strips DataParallel's "module." prefix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model weights file {str(path)!r} does not exist; expected a state dict saved with "
            "torch.save(model.state_dict(), path) (model.weights=<path>, or null to train)"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"model weights file {str(path)!r} is not a readable torch state dict: {error}") from error
    for key in WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(
            f"model weights file {str(path)!r} holds a {type(loaded).__name__}, expected a state dict "
            "(a mapping of parameter names to tensors)"
        )
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _listed(keys: list[str]) -> str:
    more = f" ... (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped keys (a few of each)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listed(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_listed(shapes)}")
    if problems:
        raise ValueError(
            f"weights in {source} do not fit the model ({type(model).__name__}): " + "; ".join(problems)
            + ". Check model.name, model.small_input, model.stem and the dataset's classes/channels."
        )


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the state dict at `path` into `model` strictly and return the model."""
    state = read_state_dict(path)
    check_state_dict(model, state, repr(str(path)))
    model.load_state_dict(state, strict=True)
    return model
