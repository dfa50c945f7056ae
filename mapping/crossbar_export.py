"""What each programmed crossbar holds, as files a hardware simulator or a chip's programming flow reads.

`export_crossbars(layout, model, spec, folder)` writes `cells.npz` and `manifest.json`
(docs/crossbar-export.md gives the schema). Per layer: every occupied OU slot's cell levels
(the quantized weights bit-sliced into cells, as hw/quantization.py slices them), the crossbar
and OU position the slot occupies, its input index table (which input feeds each wordline) and
its output group, plus the layer's weight scale. `read_crossbars` reads them back, checked
against the manifest's checksum, as the PackedLayers the simulator executes: the round trip is
exact (tests/test_mapping_crossbar_export.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hw.layout_types import PackedLayer
from hw.quantization import quantize_weights, slice_weights, unslice_weights
from hw.spec import HardwareSpec
from mapping.directories import write_directory
from mapping.layout import ModelLayout, hw_geometry

FORMAT, VERSION = "auto-prune-crossbar-cells", 1
CELLS, MANIFEST = "cells.npz", "manifest.json"


class CrossbarExportError(ValueError):
    """An export folder that cannot be read: missing, tampered, or for other hardware."""


@dataclass(frozen=True)
class ProgrammedLayer:
    """One layer read back: what the simulator executes, and where each slot sits."""

    packed: PackedLayer
    scale: float
    crossbar: np.ndarray
    position: np.ndarray


def export_crossbars(layout: ModelLayout, model: nn.Module, spec: HardwareSpec, folder: str | Path) -> Path:
    """Write the programmed cells of `model` mapped by `layout` on `spec` to `folder` (atomically)."""
    packed = layout.packed_layers(model, spec)
    arrays, layers = {}, []
    for i, layer in enumerate(layout.layers):
        slots, registers = layer.packing.slots, packed[layer.name]
        quantized = quantize_weights(registers.weights, spec.weight_bits)
        arrays[f"{i}.cells"] = slice_weights(quantized.levels, spec).to(torch.uint8).numpy()
        arrays[f"{i}.input_index"] = registers.input_index.numpy().astype(np.int32)
        arrays[f"{i}.output_group"] = registers.output_group.numpy().astype(np.int32)
        arrays[f"{i}.crossbar"] = slots.crossbar.astype(np.int32)
        arrays[f"{i}.position"] = slots.position.astype(np.int32)
        layers.append({"name": layer.name, "rows": registers.rows, "cols": registers.cols,
                       "group_width": registers.group_width, "slots": registers.slots,
                       "crossbars": layer.packing.crossbars, "scale": quantized.scale})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    payload = buffer.getvalue()
    manifest = {"format": FORMAT, "version": VERSION, "model_name": layout.model_name, "hw": spec.name,
                "geometry": hw_geometry(spec), "packing": layout.packing, "granularity": layout.granularity,
                "cells_sha256": hashlib.sha256(payload).hexdigest(), "layers": layers}
    return write_directory(folder, {CELLS: payload, MANIFEST: json.dumps(manifest, indent=1).encode()})


def read_crossbars(folder: str | Path, spec: HardwareSpec) -> dict[str, ProgrammedLayer]:
    """An export read back for `spec`, its checksum and geometry checked, as PackedLayers by layer name."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        payload = (folder / CELLS).read_bytes()
    except (OSError, json.JSONDecodeError) as error:
        raise CrossbarExportError(f"cannot read a crossbar export from {folder}: {error}") from error
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CrossbarExportError(f"{folder / MANIFEST} is not a version-{VERSION} {FORMAT} manifest")
    if hashlib.sha256(payload).hexdigest() != manifest.get("cells_sha256"):
        raise CrossbarExportError(f"{folder / CELLS} does not match the SHA-256 in {folder / MANIFEST}")
    if manifest["geometry"] != hw_geometry(spec):
        raise CrossbarExportError(f"{folder} was programmed for {manifest['hw']} {manifest['geometry']}, "
                                  f"not {spec.name} {hw_geometry(spec)}")
    arrays = np.load(io.BytesIO(payload))
    layers = {}
    for i, entry in enumerate(manifest["layers"]):
        levels = unslice_weights(torch.from_numpy(arrays[f"{i}.cells"].astype(np.int64)), spec)
        packed = PackedLayer(entry["rows"], entry["cols"], entry["group_width"], levels * entry["scale"],
                             torch.from_numpy(arrays[f"{i}.input_index"].astype(np.int64)),
                             torch.from_numpy(arrays[f"{i}.output_group"].astype(np.int64)))
        layers[entry["name"]] = ProgrammedLayer(packed, float(entry["scale"]), arrays[f"{i}.crossbar"],
                                                arrays[f"{i}.position"])
    return layers
