"""CIFAR-10 from a local copy of its python version (torchvision's layout), never downloaded.

Read directly rather than through torchvision.datasets.CIFAR10, whose MD5 check rejects anything
but the official files (so it cannot be tested on generated data) and which has no offline hint.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from envs.workload.datasets.arrays import ArrayData

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def find_folder(root: str | Path | None) -> Path:
    if root is None:
        raise FileNotFoundError(
            "cifar10 needs data.root=<folder holding cifar-10-batches-py/> (the python version of "
            "CIFAR-10, as torchvision stores it); AUTO-PRUNE never downloads"
        )
    root = Path(root).expanduser()
    for folder in (root / FOLDER, root):
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    raise FileNotFoundError(
        f"CIFAR-10 not found under {str(root)!r}: expected {FOLDER}/{{{', '.join(TRAIN_FILES)}, {TEST_FILE}}} "
        "(the python version from https://www.cs.toronto.edu/~kriz/cifar.html, as torchvision stores it); "
        "AUTO-PRUNE never downloads"
    )


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch: {'data': (N, 3072) uint8, 'labels': [N ints]} -> (N, 3, 32, 32), (N,)."""
    with path.open("rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = entry.get("labels", entry.get("fine_labels"))
    if labels is None or len(labels) != len(data):
        raise ValueError(f"CIFAR batch {str(path)!r} has {len(data)} images but labels {type(labels).__name__}")
    return torch.from_numpy(data.copy()), torch.as_tensor(labels, dtype=torch.int64)


def load(root: str | Path | None) -> ArrayData:
    folder = find_folder(root)
    parts = [read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / TEST_FILE)
    classes = CLASSES
    if (folder / META_FILE).is_file():
        with (folder / META_FILE).open("rb") as handle:
            classes = tuple(pickle.load(handle, encoding="latin1").get("label_names", CLASSES))
    return ArrayData(
        train_images=torch.cat([p[0] for p in parts]),
        train_labels=torch.cat([p[1] for p in parts]),
        test_images=test_images, test_labels=test_labels,
        classes=classes, mean=MEAN, std=STD,
    )
