"""The model layout: what every matrix keeps and where each of its OU slots sits (docs/hardware-model.md).

A `ModelLayout` is the hand-off between mapping/ and hw/: `occupancies()` is what the cost
model prices and `packed_layers(model, spec)` is what the simulator executes. It holds no
weights (those stay in the model), only masks, slot tables and the crossbar assignment, so
one layout describes a model through fine-tuning.

On disk a layout is a directory of `manifest.json` (metadata, per-layer scalars, the npz's
sha256 and its own) and `arrays.npz` (masks as packed bits, slot tables). Saving writes a
temporary directory beside the target and renames it into place, so a reader sees the old
layout or the new one, never half of one. Loading trusts nothing it reads: both checksums are
verified, every per-layer figure the manifest states (slots, crossbars, kept weights, the
dense and total crossbars) is recounted from the masks, and any failure to parse either file
raises `LayoutError` naming the file rather than return a partial or lying layout.

Longer than this project's usual 250 lines on purpose: the format is written and read here,
side by side, so every check the loader makes faces the write it checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hw.layout_types import LayerOccupancy, PackedLayer
from hw.spec import HardwareSpec
from mapping.directories import write_directory
from mapping.granularity import expand_segments
from mapping.matrices import LayerMatrix, model_fingerprint, prunable_layers, transposed_matrix
from mapping.packing import LayerPacking, SlotTable, pack_layer, packed_layer, total_crossbars, utilization

FORMAT = "auto-prune-layout"
FORMAT_VERSION = 2  # 2: the manifest carries its own sha256 and every count is recounted on load
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
SLOT_ARRAYS = ("input_index", "output_group", "crossbar", "position")
GEOMETRY_FIELDS = ("xbar_rows", "xbar_cols", "cell_bits", "weight_bits", "signed", "ou_rows", "ou_cols")


MANIFEST_SHA256 = "manifest_sha256"


class LayoutError(ValueError):
    """A layout that cannot be used: missing, corrupt, tampered with, of another version or another model."""


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum entry."""
    body = {key: value for key, value in manifest.items() if key != MANIFEST_SHA256}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def hw_geometry(spec: HardwareSpec) -> dict:
    """The spec fields a layout depends on: change any and the slot tables no longer fit."""
    return {name: getattr(spec, name) for name in GEOMETRY_FIELDS}


@dataclass
class LayerLayout:
    """One mapped matrix: its origin, its ratio, its kept segments and its packing.

    keep[j, r] says whether column group j keeps row r (groups are packing.group_width wide);
    dense_rows/dense_cols are the matrix before structural pruning (equal to rows/cols otherwise).
    """

    matrix: LayerMatrix
    ratio: float
    keep: np.ndarray
    packing: LayerPacking
    dense_rows: int
    dense_cols: int

    @property
    def name(self) -> str:
        return self.matrix.name

    @property
    def granularity(self) -> str:
        return self.packing.granularity

    def matrix_mask(self) -> np.ndarray:
        """The R x C keep-mask of the matrix."""
        return expand_segments(self.keep, self.matrix.cols, self.packing.group_width)

    def transposed_mask(self) -> np.ndarray:
        """The C x R keep-mask (one row per output column), the weight's own layout."""
        return np.repeat(self.keep, self.packing.group_width, axis=0)[: self.matrix.cols]

    def occupancy(self) -> LayerOccupancy:
        return self.packing.occupancy(self.name, self.matrix.positions, self.dense_rows, self.dense_cols)

    @property
    def sparsity(self) -> float:
        """Fraction of the unpruned matrix's weights removed (by the mask or by structural pruning)."""
        return 1.0 - self.packing.kept_weights / (self.dense_rows * self.dense_cols)


@dataclass
class ModelLayout:
    """A whole model mapped onto crossbars with one granularity, packing and hardware preset.

    granularity is the pruning granularity asked for (ou_row, crossbar_row, filter, channel);
    the layers' own granularity is what the cost model prices (filter/channel map densely).
    fingerprint identifies the model structure the layout fits (see model_fingerprint).
    """

    model_name: str
    fingerprint: str
    hw: str
    geometry: dict
    granularity: str
    packing: str
    layers: list[LayerLayout]
    crossbars: int
    dense_crossbars: int
    version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def compression_rate(self) -> float:
        """Dense crossbars of the unpruned model / occupied crossbars (docs/hardware-model.md)."""
        return self.dense_crossbars / self.crossbars if self.crossbars else math.inf

    def utilization(self, spec: HardwareSpec) -> float:
        return utilization([layer.packing for layer in self.layers], self.crossbars, spec)

    @property
    def sparsity(self) -> float:
        """Realized weight sparsity: weights removed / weights of the unpruned model's matrices.

        For the structural baselines this counts the removed channels too.
        """
        kept = sum(layer.packing.kept_weights for layer in self.layers)
        total = sum(layer.dense_rows * layer.dense_cols for layer in self.layers)
        return 1.0 - kept / total if total else 0.0

    def occupancies(self) -> list[LayerOccupancy]:
        """One LayerOccupancy per matrix, in module order: the cost model's input."""
        return [layer.occupancy() for layer in self.layers]

    def check_spec(self, spec: HardwareSpec) -> None:
        if hw_geometry(spec) != self.geometry:
            raise LayoutError(f"layout was mapped for hardware {self.hw!r} {self.geometry}, not for "
                              f"{spec.name!r} {hw_geometry(spec)}")

    def check_model(self, model: nn.Module) -> None:
        found = model_fingerprint(model)
        if found != self.fingerprint:
            raise LayoutError(f"layout fits model fingerprint {self.fingerprint[:12]}..., the given model "
                              f"has {found[:12]}... (different layer names or shapes)")

    def packed_layers(self, model: nn.Module, spec: HardwareSpec) -> dict[str, PackedLayer]:
        """What the simulator executes: every matrix's slots filled with the model's masked weights."""
        self.check_model(model)
        self.check_spec(spec)
        modules = dict(prunable_layers(model))
        packed = {}
        for layer in self.layers:
            matrix_t = transposed_matrix(modules[layer.matrix.module_name], layer.matrix).cpu().float()
            masked = matrix_t * torch.from_numpy(layer.transposed_mask())
            packed[layer.name] = packed_layer(masked, layer.packing.slots, spec)
        return packed

    def recount(self, spec: HardwareSpec) -> int:
        """Crossbars recomputed from the layers' packings (equals `crossbars` for a consistent layout)."""
        return total_crossbars([layer.packing for layer in self.layers], spec, self.packing)

    # ---- persistence -------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for i, layer in enumerate(self.layers):
            arrays[f"{i}.keep"] = np.packbits(layer.keep, axis=None)
            slots = layer.packing.slots
            index_dtype = np.int16 if layer.matrix.rows <= np.iinfo(np.int16).max else np.int32
            arrays[f"{i}.input_index"] = slots.input_index.astype(index_dtype)
            for name in SLOT_ARRAYS[1:]:
                arrays[f"{i}.{name}"] = getattr(slots, name).astype(np.int32)
        return arrays

    def _manifest(self, arrays_sha256: str) -> dict:
        layers = []
        for layer in self.layers:
            m, p = layer.matrix, layer.packing
            layers.append({
                "name": m.name, "module_name": m.module_name, "kind": m.kind,
                "weight_shape": list(m.weight_shape), "group": m.group, "groups": m.groups,
                "rows": m.rows, "cols": m.cols, "positions": m.positions,
                "dense_rows": layer.dense_rows, "dense_cols": layer.dense_cols,
                "ratio": layer.ratio, "granularity": p.granularity, "group_width": p.group_width,
                "keep_shape": list(layer.keep.shape), "slots": p.slots.slots, "crossbars": p.crossbars,
                "kept_weights": p.kept_weights,
            })
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "model_name": self.model_name,
            "fingerprint": self.fingerprint, "hw": self.hw, "geometry": self.geometry,
            "granularity": self.granularity, "packing": self.packing, "crossbars": self.crossbars,
            "dense_crossbars": self.dense_crossbars, "extra": self.extra,
            "arrays": ARRAYS, "arrays_sha256": arrays_sha256, "layers": layers,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the layout atomically to `directory` (replacing a previous layout there; see
        mapping/directories.py: a failed save leaves the old layout intact and no partial folder)."""
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise LayoutError(f"cannot save a layout to {target}: it exists and is not a directory")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self._arrays())
        payload = buffer.getvalue()
        manifest = self._manifest(hashlib.sha256(payload).hexdigest())
        manifest[MANIFEST_SHA256] = manifest_digest(manifest)
        return write_directory(target, {ARRAYS: payload, MANIFEST: json.dumps(manifest, indent=1).encode()})


def load_layout(directory: str | Path, expected_fingerprint: str | None = None) -> ModelLayout:
    """Read a layout saved by ModelLayout.save, checking it completely before returning it.

    Raises LayoutError naming the problem: missing directory or file, unreadable or tampered
    manifest, unknown format or version, another model's fingerprint, npz checksum mismatch
    (corrupt or truncated), unreadable npz, arrays that do not match the manifest, or figures
    the manifest states that its masks do not reproduce.
    """
    root = Path(directory)
    if not root.is_dir():
        raise LayoutError(f"no layout directory at {root}")
    manifest = _read_manifest(root)
    if manifest.get("format") != FORMAT:
        raise LayoutError(f"{root / MANIFEST} is not an AUTO-PRUNE layout "
                          f"(format {manifest.get('format')!r}, expected {FORMAT!r})")
    if manifest.get("version") != FORMAT_VERSION:
        raise LayoutError(f"layout format version {manifest.get('version')!r} in {root} is not supported: "
                          f"this code reads version {FORMAT_VERSION}")
    if expected_fingerprint is not None and manifest.get("fingerprint") != expected_fingerprint:
        found = str(manifest.get("fingerprint"))
        raise LayoutError(f"layout in {root} was made for model fingerprint {found[:12]}..., "
                          f"expected {expected_fingerprint[:12]}... (a different model or structure)")
    arrays = _read_arrays(root, manifest)
    try:
        layout = _build_layout(manifest, arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise LayoutError(f"layout in {root} is inconsistent: {error}") from error
    _recount(layout, root)
    return layout


def _recount(layout: ModelLayout, root: Path) -> None:
    """Recount every figure the manifest states from the masks; a mismatch means a lying manifest."""
    try:
        spec = HardwareSpec(name=layout.hw, **layout.geometry)
    except (TypeError, ValueError) as error:
        raise LayoutError(f"{root / MANIFEST} holds an impossible geometry {layout.geometry}: {error}") from error
    for layer in layout.layers:
        stated = layer.packing
        recounted = pack_layer(layer.keep, layer.matrix.cols, stated.granularity, spec)
        for name in ("crossbars", "kept_weights"):
            if getattr(recounted, name) != getattr(stated, name) and not (
                    layout.packing == "shared" and name == "crossbars"):
                raise LayoutError(f"{root / MANIFEST} states {name}={getattr(stated, name)} for layer {layer.name}, "
                                  f"its mask gives {getattr(recounted, name)}")
        if recounted.slots.slots != stated.slots.slots:
            raise LayoutError(f"{root / MANIFEST} states {stated.slots.slots} OU slots for layer {layer.name}, "
                              f"its mask gives {recounted.slots.slots}")
    dense = sum(spec.dense_crossbars(layer.dense_rows, layer.dense_cols) for layer in layout.layers)
    for name, stated_total, recounted_total in (("dense_crossbars", layout.dense_crossbars, dense),
                                                ("crossbars", layout.crossbars, layout.recount(spec))):
        if stated_total != recounted_total:
            raise LayoutError(f"{root / MANIFEST} states {name}={stated_total}, its masks give {recounted_total}")


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise LayoutError(f"layout in {root} is missing {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LayoutError(f"{path} is not valid JSON (corrupt or truncated): {error}") from error
    if not isinstance(manifest, dict):
        raise LayoutError(f"{path} must hold a JSON object, got {type(manifest).__name__}")
    if manifest.get("version") == FORMAT_VERSION and manifest.get(MANIFEST_SHA256) != manifest_digest(manifest):
        raise LayoutError(f"{path} checksum mismatch: the manifest was edited or corrupted after it was saved")
    return manifest


def _read_arrays(root: Path, manifest: dict) -> dict[str, np.ndarray]:
    path = root / str(manifest.get("arrays", ARRAYS))
    if not path.is_file():
        raise LayoutError(f"layout in {root} is missing {path.name}")
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != manifest.get("arrays_sha256"):
        expected = str(manifest.get("arrays_sha256"))
        raise LayoutError(f"{path} checksum mismatch: the file is corrupt or truncated "
                          f"(sha256 {digest[:12]}..., manifest says {expected[:12]}...)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as error:  # noqa: BLE001 - zlib.error, NotImplementedError, ...: any failure is a bad file
        raise LayoutError(f"{path} cannot be read as npz: {type(error).__name__}: {error}") from error


def _build_layout(manifest: dict, arrays: dict[str, np.ndarray]) -> ModelLayout:
    layers = []
    for i, entry in enumerate(manifest["layers"]):
        missing = [f"{i}.{name}" for name in ("keep",) + SLOT_ARRAYS if f"{i}.{name}" not in arrays]
        if missing:
            raise ValueError(f"arrays {missing} of layer {entry['name']} are missing")
        matrix = LayerMatrix(entry["name"], entry["module_name"], entry["kind"],
                             tuple(entry["weight_shape"]), int(entry["group"]), int(entry["groups"]),
                             int(entry["rows"]), int(entry["cols"]), int(entry["positions"]))
        groups, rows = (int(v) for v in entry["keep_shape"])
        keep = np.unpackbits(arrays[f"{i}.keep"], count=groups * rows).astype(bool).reshape(groups, rows)
        slots = SlotTable(*(arrays[f"{i}.{name}"].astype(np.int32) for name in SLOT_ARRAYS))
        if slots.input_index.shape != (int(entry["slots"]), int(manifest["geometry"]["ou_rows"])):
            raise ValueError(f"layer {entry['name']}: input_index has shape {slots.input_index.shape}, "
                             f"manifest says {entry['slots']} slots")
        if any(getattr(slots, name).shape != (int(entry["slots"]),) for name in SLOT_ARRAYS[1:]):
            raise ValueError(f"layer {entry['name']}: slot arrays disagree with {entry['slots']} slots")
        packing = LayerPacking(entry["granularity"], matrix.rows, matrix.cols, int(entry["group_width"]),
                               np.count_nonzero(keep, axis=1), slots, int(entry["crossbars"]),
                               int(entry["kept_weights"]))
        layers.append(LayerLayout(matrix, float(entry["ratio"]), keep, packing, int(entry["dense_rows"]),
                                  int(entry["dense_cols"])))
    return ModelLayout(manifest["model_name"], manifest["fingerprint"], manifest["hw"],
                       dict(manifest["geometry"]), manifest["granularity"], manifest["packing"], layers,
                       int(manifest["crossbars"]), int(manifest["dense_crossbars"]), int(manifest["version"]),
                       dict(manifest.get("extra", {})))
