"""Accuracy loss and CR of uniform ratios under each accuracy recovery, on an experiment's cached baseline.

    python -m bench.recovery_sweep [--experiment resnet50] [--ratios 0.1 0.2 0.3 0.4 0.5]
        [--recoveries none bn finetune] [--finetune-steps 20]

Builds the experiment's search context (the baseline comes from the cache, or is trained once),
then scores every layer that can free a crossbar at each uniform ratio, snapped to its crossbar
breakpoint, under each recovery (none, bn, finetune), against the unpruned reference measured the same way.
Prints Δacc (points), CR and the episode time. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_dir

from envs.episode import EpisodeEvaluator
from envs.search_context import search_context
from envs.settings import EnvSettings
from platform.config import REPO_ROOT, env_config, register_configs, to_plain


def run(experiment: str, ratios: list[float], threads: int, epsilon: float,
        recoveries: list[str], finetune_steps: int) -> None:
    torch.set_num_threads(threads)
    register_configs()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}"])
    config = env_config(to_plain(cfg), epsilon)
    context = search_context(config)
    images = config["env"]["search_images"]
    print(f"{experiment}: {len(context.layers)} prunable layers, first {images} search images")
    for recovery in recoveries:
        steps = finetune_steps if recovery == "finetune" else 0
        config["env"] = {**config["env"], "recovery": recovery, "finetune_steps": steps, "early_stop": False}
        evaluator = EpisodeEvaluator(context, EnvSettings.from_config(config))
        label = f"finetune ({steps} steps)" if steps else recovery
        print(f"recovery {label}: unpruned reference {evaluator.reference_accuracy:.4f}, "
              f"{evaluator.space.size} layers can free a crossbar")
        for ratio in ratios:
            start = time.perf_counter()
            result = evaluator.evaluate_policy([ratio] * evaluator.space.size)
            print(f"  uniform {ratio:.2f}: Δacc {100 * result.delta_acc:+6.2f} points, "
                  f"CR {result.compression_rate:.3f} ({result.packing_gain:.3f} x {result.pruning_gain:.3f}), "
                  f"{time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="resnet50")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--recoveries", nargs="+", default=["none", "bn"], choices=["none", "bn", "finetune"])
    parser.add_argument("--finetune-steps", type=int, default=20, help="SGD steps per episode with finetune")
    args = parser.parse_args()
    run(args.experiment, args.ratios, args.threads, args.epsilon, args.recoveries, args.finetune_steps)


if __name__ == "__main__":
    main()
