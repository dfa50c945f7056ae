"""The in-memory form every array-backed source returns before it is split."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ArrayData:
    """uint8 (N, C, H, W) images and int64 labels; test is None when the source has no test set."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor | None
    test_labels: Tensor | None
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
