"""The simulator on a GPU gives the CPU's results bit for bit (skipped where torch sees no GPU).

The CPU suite (tests/test_hw_simulator.py and the rest) covers every path's logic; these run the
same paths on CUDA and compare. Programming stays on the CPU, so a seed draws the same devices.
"""

import pytest
import torch

from hw.layout_types import PackedLayer
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from tests.test_hw_variation import compacted

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no GPU: the CPU suite covers the logic")

CASES = [
    ("isaac", {}, {}),  # lossless: the exact fast path
    ("isaac", {"adc_bits": 4}, {}),  # saturating ADC: clipped partial sums only
    ("isaac", {"dac_bits": 2, "adc_bits": 9}, {}),  # offset-binary inputs
    ("prime", {}, {}),  # differential arrays
    ("isaac", {}, {"noise_sigma": 0.1, "seed": 3}),  # every partial sum through the ADC
    ("isaac", {}, {"stuck_at_zero": 0.02, "stuck_at_one": 0.02, "seed": 4}),
]


def test_a_layer_on_another_device_is_refused_with_the_reason():
    spec = load_hw_spec("isaac")
    layer = PackedLayer.dense(torch.randn(20, 8), spec)
    on_meta = PackedLayer(layer.rows, layer.cols, layer.group_width, layer.weights.to("meta"), layer.input_index,
                          layer.output_group)
    with pytest.raises(ValueError, match="programmed on the CPU"):
        CrossbarSimulator(spec).matmul(torch.randn(2, 20), on_meta)


@needs_cuda
@pytest.mark.parametrize("preset, overrides, devices", CASES)
@pytest.mark.parametrize("nonnegative", [False, True], ids=["signed", "relu"])
@pytest.mark.parametrize("kind", ["dense", "compacted"])
def test_cuda_matmul_is_bit_exact_to_the_cpu(preset, overrides, devices, nonnegative, kind):
    spec = load_hw_spec(preset, **overrides)
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(50, 13, generator=generator)
    x = torch.randn(64, 50, generator=generator)
    x = x.relu() if nonnegative else x
    kept = torch.tensor([0, 3, 4, 7, 9, 10, 12, 20, 21, 22, 30, 31, 33, 40, 41, 47, 49])
    layer = PackedLayer.dense(weights, spec) if kind == "dense" else compacted(weights, kept, spec)
    simulator = CrossbarSimulator(spec, **devices)
    for path in ("auto", "ou"):
        on_cpu = simulator.matmul(x, layer, path=path)
        on_gpu = simulator.matmul(x.cuda(), layer, path=path)
        assert on_gpu.device.type == "cuda"
        assert torch.equal(on_gpu.cpu(), on_cpu)


@needs_cuda
def test_cuda_conv2d_is_bit_exact_to_the_cpu():
    spec = load_hw_spec("isaac", adc_bits=5)
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 3, 3, 3, generator=generator)
    layer = PackedLayer.dense(weight.reshape(6, -1).T.contiguous(), spec)
    x = torch.randn(4, 3, 9, 9, generator=generator).relu()
    simulator = CrossbarSimulator(spec)
    on_cpu = simulator.conv2d(x, layer, 3, padding=1)
    assert torch.equal(simulator.conv2d(x.cuda(), layer, 3, padding=1).cpu(), on_cpu)


@needs_cuda
def test_hardware_in_the_loop_episodes_on_cuda_score_as_on_the_cpu(baseline_cache):
    from envs.episode import EpisodeEvaluator
    from envs.search_context import search_context
    from envs.settings import EnvSettings
    from tests.test_envs_pruning_env import env_config

    scores = {}
    for device in ("cpu", "cuda"):
        config = env_config(baseline_cache, eval_on_hardware=True, device=device)
        evaluator = EpisodeEvaluator(search_context(config), EnvSettings.from_config(config))
        assert evaluator.on_hardware
        scores[device] = evaluator.evaluate_policy([0.4] * evaluator.space.size).accuracy
    # The simulator is bit-exact; BatchNorm recalibration and the layers around it round differently on
    # a GPU, which can move an input across a quantization step: a few images at most.
    assert abs(scores["cuda"] - scores["cpu"]) <= 0.01
