"""The programmed-crossbar export: cells as hw/ slices them, read back into exactly what the simulator runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hw.programming import quantize_layer
from hw.quantization import quantize_weights, slice_weights, unslice_weights
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from mapping.crossbar_export import CrossbarExportError, export_crossbars, read_crossbars
from mapping.mapper import map_model
from tests.test_mapping_layout import SHAPE, small_cnn

ISAAC, PRIME = load_hw_spec("isaac"), load_hw_spec("prime")


@pytest.mark.parametrize("spec", [ISAAC, PRIME], ids=["offset", "differential"])
def test_unslicing_inverts_slicing_for_every_level(spec):
    top = 2 ** (spec.weight_bits - 1) - 1
    levels = torch.arange(-top, top + 1, dtype=torch.float32).reshape(1, -1)
    cells = slice_weights(levels, spec)
    assert int(cells.max()) <= 2**spec.cell_bits - 1
    assert torch.equal(unslice_weights(cells, spec), levels)


def test_one_weight_by_hand():
    # ISAAC: 8-bit weights in offset binary on 2-bit cells, least significant slice first.
    # -3 + 128 = 125 = 0b01_11_11_01 -> cells 1, 3, 3, 1
    cells = slice_weights(torch.tensor([[-3.0]]), ISAAC)
    assert cells.tolist() == [[1.0, 3.0, 3.0, 1.0]]


@pytest.mark.parametrize(("spec", "granularity"), [(ISAAC, "ou_row"), (PRIME, "crossbar_row")])
def test_the_exported_cells_read_back_into_what_the_simulator_runs(tmp_path, spec, granularity):
    torch.manual_seed(0)
    model = small_cnn().eval()
    layout = map_model(model, 0.5, spec, granularity, SHAPE, model_name="small_cnn")
    folder = export_crossbars(layout, model, spec, tmp_path / "crossbars")
    read = read_crossbars(folder, spec)
    original = layout.packed_layers(model, spec)
    simulator = CrossbarSimulator(spec)
    for name, packed in original.items():
        back = read[name]
        assert torch.equal(quantize_layer(back.packed, spec).matrix, quantize_layer(packed, spec).matrix)
        x = torch.rand(7, packed.rows, generator=torch.Generator().manual_seed(1))
        assert torch.equal(simulator.matmul(x, back.packed), simulator.matmul(x, packed))
        assert back.scale == quantize_weights(packed.weights, spec.weight_bits).scale
        assert len(back.crossbar) == len(back.position) == back.packed.slots
        assert back.crossbar.max() < next(layer for layer in layout.layers if layer.name == name).packing.crossbars


def test_a_tampered_export_or_other_hardware_is_refused(tmp_path):
    model = small_cnn().eval()
    layout = map_model(model, 0.5, ISAAC, "ou_row", SHAPE, model_name="small_cnn")
    folder = export_crossbars(layout, model, ISAAC, tmp_path / "crossbars")
    with pytest.raises(CrossbarExportError, match="programmed for isaac"):
        read_crossbars(folder, PRIME)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["cells_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CrossbarExportError, match=r"cells\.npz does not match the SHA-256"):
        read_crossbars(folder, ISAAC)
    with pytest.raises(CrossbarExportError, match="cannot read a crossbar export"):
        read_crossbars(tmp_path / "missing", ISAAC)


def test_every_cell_holds_a_level_the_cell_can_store(tmp_path):
    model = small_cnn().eval()
    layout = map_model(model, 0.3, ISAAC, "ou_row", SHAPE, model_name="small_cnn")
    folder = export_crossbars(layout, model, ISAAC, tmp_path / "crossbars")
    arrays = np.load(folder / "cells.npz")
    cells = [arrays[key] for key in arrays.files if key.endswith(".cells")]
    assert cells and all(c.dtype == np.uint8 and c.max() <= 3 for c in cells)
