"""Layouts on disk: round trip, atomic writes, and a clear error for every broken file."""

import hashlib
import io
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from mapping import directories as directories_module
from mapping.crossbar_model import CrossbarModel
from mapping.layout import MANIFEST_SHA256, LayoutError, load_layout, manifest_digest
from mapping.mapper import map_model
from mapping.matrices import model_fingerprint

ISAAC = load_hw_spec("isaac")
SHAPE = (1, 1, 28, 28)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 13 * 13, 10)).eval()


@pytest.fixture
def saved(tmp_path):
    model = small_cnn()
    layout = map_model(model, 0.5, ISAAC, "ou_row", SHAPE, model_name="small_cnn")
    return model, layout, layout.save(tmp_path / "layout")


def rewrite_arrays(directory, arrays: dict) -> None:
    """Replace arrays.npz with a valid-looking npz and fix the manifest's checksum to match."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (directory / "arrays.npz").write_bytes(buffer.getvalue())
    edit_manifest(directory, arrays_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())


def edit_manifest(directory, resign: bool = True, **changes) -> None:
    """Change manifest entries; resign=True also rewrites its checksum, as a deliberate tamperer would."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest.update(changes)
    if resign:
        manifest[MANIFEST_SHA256] = manifest_digest(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def edit_layer(directory, layer: int, **changes) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["layers"][layer].update(changes)
    edit_manifest(directory, layers=manifest["layers"])


def test_an_edited_manifest_fails_its_checksum(saved):
    _, layout, directory = saved
    edit_manifest(directory, resign=False, crossbars=layout.crossbars + 1)
    with pytest.raises(LayoutError, match="manifest.json checksum mismatch"):
        load_layout(directory)


@pytest.mark.parametrize(("field", "message"), [("crossbars", "states crossbars=.* for layer"),
                                                ("kept_weights", "states kept_weights=.* for layer"),
                                                ("slots", "input_index has shape .* manifest says")])
def test_a_re_signed_manifest_whose_layer_figures_lie_is_caught_by_the_recount(saved, field, message):
    _, layout, directory = saved
    stated = json.loads((directory / "manifest.json").read_text())["layers"][0][field]
    edit_layer(directory, 0, **{field: stated + 1})
    with pytest.raises(LayoutError, match=message):
        load_layout(directory)


@pytest.mark.parametrize("field", ["crossbars", "dense_crossbars"])
def test_a_re_signed_manifest_whose_totals_lie_is_caught_by_the_recount(saved, field):
    _, layout, directory = saved
    edit_manifest(directory, **{field: getattr(layout, field) + 1})
    with pytest.raises(LayoutError, match=f"states {field}="):
        load_layout(directory)


def test_a_re_signed_corrupt_npz_is_a_layout_error(saved):
    _, layout, directory = saved
    payload = bytearray((directory / "arrays.npz").read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # inside a compressed member: zlib fails, not the zip directory
    (directory / "arrays.npz").write_bytes(bytes(payload))
    edit_manifest(directory, arrays_sha256=hashlib.sha256(bytes(payload)).hexdigest())
    with pytest.raises(LayoutError, match="arrays.npz"):
        load_layout(directory)


def test_round_trip_gives_identical_outputs(saved):
    model, layout, directory = saved
    loaded = load_layout(directory, expected_fingerprint=model_fingerprint(model))
    simulator, x = CrossbarSimulator(ISAAC), torch.randn(3, 1, 28, 28)
    assert torch.equal(CrossbarModel(model, loaded, simulator)(x), CrossbarModel(model, layout, simulator)(x))
    assert (loaded.crossbars, loaded.dense_crossbars) == (layout.crossbars, layout.dense_crossbars)
    assert loaded.model_name == "small_cnn"


def test_round_trip_keeps_masks_and_slot_tables(saved):
    _, layout, directory = saved
    loaded = load_layout(directory)
    for before, after in zip(layout.layers, loaded.layers, strict=True):
        assert np.array_equal(before.keep, after.keep)
        assert np.array_equal(before.packing.slots.input_index, after.packing.slots.input_index)
        assert np.array_equal(before.packing.slots.crossbar, after.packing.slots.crossbar)
        assert before.occupancy().kept_rows.tolist() == after.occupancy().kept_rows.tolist()


def test_saving_over_a_layout_replaces_it_and_leaves_no_temporary_files(saved, tmp_path):
    model, _, directory = saved
    map_model(model, 0.8, ISAAC, "crossbar_row", SHAPE).save(directory)
    assert load_layout(directory).granularity == "crossbar_row"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_a_failed_write_keeps_the_previous_layout(saved, tmp_path, monkeypatch):
    model, _, directory = saved
    real = directories_module._write_synced

    def fail_on_manifest(path, payload):
        if path.name == "manifest.json":
            raise OSError("disk full")
        real(path, payload)

    monkeypatch.setattr(directories_module, "_write_synced", fail_on_manifest)
    with pytest.raises(OSError, match="disk full"):
        map_model(model, 0.8, ISAAC, "crossbar_row", SHAPE).save(directory)
    assert load_layout(directory).granularity == "ou_row"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_a_failed_rename_restores_the_previous_layout(saved, tmp_path, monkeypatch):
    model, _, directory = saved
    real = os.replace

    def fail_moving_the_new_one_in(source, target):
        if ".tmp-" in str(source):
            raise OSError("rename failed")
        real(source, target)

    monkeypatch.setattr(directories_module.os, "replace", fail_moving_the_new_one_in)
    with pytest.raises(OSError, match="rename failed"):
        map_model(model, 0.8, ISAAC, "crossbar_row", SHAPE).save(directory)
    assert load_layout(directory).granularity == "ou_row"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout"]


def test_missing_directory(tmp_path):
    with pytest.raises(LayoutError, match="no layout directory"):
        load_layout(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["manifest.json", "arrays.npz"])
def test_missing_file(saved, name):
    _, _, directory = saved
    (directory / name).unlink()
    with pytest.raises(LayoutError, match=f"missing {name}"):
        load_layout(directory)


def test_truncated_arrays_fail_the_checksum(saved):
    _, _, directory = saved
    payload = (directory / "arrays.npz").read_bytes()
    (directory / "arrays.npz").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(LayoutError, match="checksum mismatch.*corrupt or truncated"):
        load_layout(directory)


def test_one_flipped_byte_fails_the_checksum(saved):
    _, _, directory = saved
    payload = bytearray((directory / "arrays.npz").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (directory / "arrays.npz").write_bytes(bytes(payload))
    with pytest.raises(LayoutError, match="checksum mismatch"):
        load_layout(directory)


def test_truncated_manifest_is_not_valid_json(saved):
    _, _, directory = saved
    text = (directory / "manifest.json").read_text()
    (directory / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(LayoutError, match="not valid JSON"):
        load_layout(directory)


def test_wrong_format_version(saved):
    _, _, directory = saved
    edit_manifest(directory, version=99)
    with pytest.raises(LayoutError, match="format version 99 .* not supported: this code reads version 2"):
        load_layout(directory)


def test_not_a_layout_manifest(saved):
    _, _, directory = saved
    edit_manifest(directory, format="something-else")
    with pytest.raises(LayoutError, match="not an AUTO-PRUNE layout"):
        load_layout(directory)


def test_wrong_model_fingerprint(saved):
    _, _, directory = saved
    other = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(LayoutError, match="made for model fingerprint"):
        load_layout(directory, expected_fingerprint=model_fingerprint(other))


def test_a_layout_refuses_a_different_model(saved):
    _, layout, _ = saved
    other = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 28 * 28, 10))
    with pytest.raises(LayoutError, match="different layer names or shapes"):
        CrossbarModel(other, layout, CrossbarSimulator(ISAAC))


def test_a_layout_refuses_different_hardware(saved):
    model, layout, _ = saved
    with pytest.raises(LayoutError, match="mapped for hardware 'isaac'"):
        CrossbarModel(model, layout, CrossbarSimulator(load_hw_spec("prime")))


def test_garbage_with_a_matching_checksum_is_not_an_npz(saved):
    _, _, directory = saved
    (directory / "arrays.npz").write_bytes(b"not a zip file at all")
    edit_manifest(directory, arrays_sha256=hashlib.sha256(b"not a zip file at all").hexdigest())
    with pytest.raises(LayoutError, match="cannot be read as npz"):
        load_layout(directory)


def test_an_npz_missing_a_layers_arrays_is_inconsistent(saved):
    _, layout, directory = saved
    arrays = layout._arrays()
    del arrays["1.input_index"]
    rewrite_arrays(directory, arrays)
    with pytest.raises(LayoutError, match=r"inconsistent.*\['1.input_index'\].*missing"):
        load_layout(directory)


def test_slot_arrays_of_the_wrong_size_are_inconsistent(saved):
    _, layout, directory = saved
    arrays = layout._arrays()
    arrays["0.output_group"] = arrays["0.output_group"][:-1]
    rewrite_arrays(directory, arrays)
    with pytest.raises(LayoutError, match="inconsistent.*slot arrays disagree"):
        load_layout(directory)
