"""Benchmark of one search episode of ResNet-50: overhead, recovery and the accuracy evaluation.

    python -m bench.env_episode [--episodes 5] [--search-size 1000] [--threads 1] [--finetune-steps 20]

Builds the pruning environment for ResNet-50 (small_input, Fashion-MNIST, isaac, ou_row)
from random weights saved to a temporary file (no training), then times episodes of a
random policy under each accuracy recovery (env.recovery none / bn / finetune) in software,
and with bn on the crossbar simulator. It prints the per-episode time split into the
accuracy evaluation and everything else (restoring state, masking, mapping, recovery,
pricing, observations), and each mode's episode time as a ratio to recovery=none measured
in the same run (goal for bn: <= 1.3x), and the simulator's episode as a ratio to the
software episode with the same recovery (goal: <= 1.3x). Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from envs.pruning_env import PruningEnv
from envs.workload.models import build_model
from hw.spec import load_hw_spec


def env_config(weights: Path, cache_dir: Path, search_size: int, on_hardware: bool, threads: int,
               recovery: dict) -> dict:
    return {
        "model": {"name": "resnet50", "small_input": True, "weights": str(weights), "stem": None},
        "data": {"name": "fashion_mnist", "search_size": search_size, "seed": 0},
        "hw": asdict(load_hw_spec("isaac")),
        "mapping": {"granularity": "ou_row", "packing": "per_layer"},
        "env": {"eval_on_hardware": on_hardware, "early_stop": False, "torch_threads": threads, **recovery},
        "paths": {"cache_dir": str(cache_dir)},
        "seed": 0,
        "epsilon": 0.02,
    }


def run(episodes: int, search_size: int, threads: int, finetune_steps: int) -> None:
    torch.set_num_threads(threads)
    modes = [("none", False, {"recovery": "none"}), ("bn", False, {"recovery": "bn"}),
             (f"finetune {finetune_steps} steps", False, {"recovery": "finetune", "finetune_steps": finetune_steps}),
             ("bn", True, {"recovery": "bn"})]
    baseline_total = None
    software_totals: dict[str, float] = {}  # per recovery: the simulator's episode is compared with these
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "resnet50_random.pth"
        torch.save(build_model("resnet50", 10, 1, True).state_dict(), weights)
        for name, on_hardware, recovery in modes:
            rng = np.random.default_rng(0)  # the same policies in every mode
            start = time.perf_counter()
            env = PruningEnv(env_config(weights, Path(tmp) / "cache", search_size, on_hardware, threads, recovery))
            build = time.perf_counter() - start
            totals, evals = [], []
            for _ in range(episodes):
                env.reset(seed=0)
                begin = time.perf_counter()
                for _ in range(env.num_layers):
                    _, _, done, _, info = env.step(rng.uniform(0.0, 0.8, size=1).astype(np.float32))
                totals.append(time.perf_counter() - begin)
                evals.append(info["eval_seconds"])
            total, evaluation = statistics.median(totals), statistics.median(evals)
            overhead = total - evaluation
            if baseline_total is None:
                baseline_total = total
            mode = f"{'crossbar simulator' if on_hardware else 'software'}, recovery {name}"
            against_software = ""
            if on_hardware and name in software_totals:
                against_software = f"; {total / software_totals[name]:.2f}x the software episode with recovery {name}"
            elif not on_hardware:
                software_totals[name] = total
            print(f"[{mode}] env build (data, baseline eval, layer table, breakpoints): {build:.1f} s")
            print(f"[{mode}] episode {total * 1e3:.0f} ms = evaluation {evaluation * 1e3:.0f} ms "
                  f"({search_size / evaluation:.0f} img/s) + rest {overhead * 1e3:.0f} ms "
                  f"({env.num_layers} steps); {total / baseline_total:.2f}x the software episode without recovery"
                  f"{against_software}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--search-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--finetune-steps", type=int, default=20)
    args = parser.parse_args()
    run(args.episodes, args.search_size, args.threads, args.finetune_steps)


if __name__ == "__main__":
    main()
