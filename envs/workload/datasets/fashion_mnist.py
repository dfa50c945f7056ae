"""Fashion-MNIST from IDX files: Debian's dataset-fashion-mnist or a folder the user names.

Read with a small IDX parser rather than torchvision.datasets.FashionMNIST, which only accepts
uncompressed files under root/FashionMNIST/raw, while Debian ships them gzipped.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from envs.workload.datasets.arrays import ArrayData

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
MEAN, STD = (0.2860,), (0.3530,)
IDX_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes as a numpy array of its declared shape."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{str(path)!r} holds {data.size} bytes of data, its header declares {dims}")
    return data.reshape(dims)


def find_files(root: str | Path | None) -> dict[str, Path]:
    """The four IDX files under root (flat or torchvision's root/FashionMNIST/raw) or the system dir."""
    folders = [Path(root).expanduser(), Path(root).expanduser() / "FashionMNIST" / "raw"] if root else [SYSTEM_DIR]
    for folder in folders:
        found = {}
        for key, base in FILES.items():
            for name in (base, base + ".gz"):
                if (folder / name).is_file():
                    found[key] = folder / name
                    break
        if len(found) == len(FILES):
            return found
    where = " or ".join(repr(str(f)) for f in folders)
    raise FileNotFoundError(
        f"Fashion-MNIST IDX files ({', '.join(FILES.values())}, optionally .gz) not found in {where}. "
        "Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, files land in "
        f"{SYSTEM_DIR}) or pass data.root=<folder with the IDX files>; AUTO-PRUNE never downloads."
    )


def load(root: str | Path | None = None) -> ArrayData:
    files = find_files(root)
    arrays = {key: torch.from_numpy(read_idx(path).copy()) for key, path in files.items()}
    return ArrayData(
        train_images=arrays["train_images"].unsqueeze(1),
        train_labels=arrays["train_labels"].to(torch.int64),
        test_images=arrays["test_images"].unsqueeze(1),
        test_labels=arrays["test_labels"].to(torch.int64),
        classes=CLASSES, mean=MEAN, std=STD,
    )
