"""The pruned model a finalized trial leaves: it loads in one call, scores the reported accuracy, and is
tied to its layout by checksum both ways; tampering and mismatched pairs are refused with both files named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from envs.finalize import finalize_policy
from envs.model_artifact import ModelArtifactError, load_pruned_model
from envs.pruning_env import PruningEnv
from envs.search_context import search_context
from envs.workload.evaluation import evaluate_split
from tests.test_envs_pruning_env import env_config


@pytest.fixture(scope="module")
def finalized(tmp_path_factory, baseline_cache):
    """Two trial folders of the test model: one at ratio 0.5 everywhere, one at 0.3."""
    root = tmp_path_factory.mktemp("trials")
    config = env_config(baseline_cache)
    space = PruningEnv(config).space
    results = {}
    for name, ratio in (("half", 0.5), ("third", 0.3)):
        results[name] = finalize_policy(config, space.expand([ratio] * space.size), 0.05, root / name, log=print)
    return config, root, results


def test_the_saved_model_loads_in_one_call_and_scores_the_reported_test_accuracy(finalized):
    config, root, results = finalized
    loaded = load_pruned_model(root / "half")
    assert evaluate_split(loaded.model, search_context(config).data.test).accuracy == results["half"].test_accuracy
    assert loaded.card.test_accuracy == results["half"].test_accuracy
    assert loaded.layout.crossbars == results["half"].crossbars
    assert sorted(p.name for p in (root / "half" / "model").iterdir()) == ["model.json", "model.onnx", "weights.pt"]


def test_the_pruned_weights_are_exactly_zero_where_the_layout_prunes(finalized):
    _, root, _ = finalized
    loaded = load_pruned_model(root / "half")
    modules = dict(loaded.model.named_modules())
    for layer in loaded.layout.layers:
        weight = modules[layer.matrix.module_name].weight.detach()
        assert int((weight == 0).sum()) >= layer.matrix.rows * layer.matrix.cols - layer.packing.kept_weights


def test_tampered_weights_are_refused_naming_both_files(finalized, tmp_path):
    _, root, _ = finalized
    trial = shutil.copytree(root / "half", tmp_path / "half")
    state = torch.load(trial / "model" / "weights.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1e-3
    torch.save(state, trial / "model" / "weights.pt")
    with pytest.raises(ModelArtifactError, match=r"weights\.pt does not match the SHA-256 that .*model\.json"):
        load_pruned_model(trial)


def test_an_edited_card_is_refused(finalized, tmp_path):
    _, root, _ = finalized
    trial = shutil.copytree(root / "half", tmp_path / "half")
    card = json.loads((trial / "model" / "model.json").read_text())
    card["test_accuracy"] = 0.999
    (trial / "model" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelArtifactError, match=r"model\.json was modified"):
        load_pruned_model(trial)


def test_a_layout_paired_with_another_model_is_refused_naming_both_files(finalized, tmp_path):
    _, root, _ = finalized
    trial = shutil.copytree(root / "half", tmp_path / "half")
    shutil.rmtree(trial / "layout")
    shutil.copytree(root / "third" / "layout", trial / "layout")
    with pytest.raises(ModelArtifactError, match=r"layout/manifest\.json and .*model/model\.json do not belong"):
        load_pruned_model(trial)


def test_a_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelArtifactError, match=r"model\.json does not exist"):
        load_pruned_model(tmp_path)


def test_the_onnx_export_matches_pytorchs_outputs(finalized):
    onnxruntime = pytest.importorskip("onnxruntime")
    _, root, results = finalized
    loaded = load_pruned_model(root / "half")
    session = onnxruntime.InferenceSession(results["half"].onnx_path, providers=["CPUExecutionProvider"])
    images = torch.randn(5, *loaded.card.input_shape[1:], generator=torch.Generator().manual_seed(0))
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = loaded.model(images).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_inspect_loads_a_finished_trial_reprices_it_reproduces_its_accuracy_and_exports_its_cells(finalized, tmp_path):
    from hw.spec import load_hw_spec
    from mapping.crossbar_export import read_crossbars
    from tests.test_platform_inspect import report

    _, root, results = finalized
    found = report(f"inspect.trial={root / 'half'}", "hw=isaac", "inspect.format=json",
                   f"inspect.export_cells={tmp_path / 'cells'}")
    assert found["crossbars"] == results["half"].crossbars
    assert found["trial"]["reproduced"] and found["trial"]["test_accuracy_measured"] == results["half"].test_accuracy
    assert len(read_crossbars(found["trial"]["cells"], load_hw_spec("isaac"))) == len(found["layers"])


def test_inspect_of_a_folder_that_is_no_trial_names_the_setting(tmp_path):
    from platform.inspect import InspectError
    from tests.test_platform_inspect import report

    with pytest.raises(InspectError, match="inspect.trial="):
        report(f"inspect.trial={tmp_path / 'nothing'}")
