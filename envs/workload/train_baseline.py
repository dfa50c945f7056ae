"""Train (or load from cache) a dense baseline from conf/ files and print its accuracies as JSON.

    python -m envs.workload.train_baseline --model resnet50 --data fashion_mnist recipe.threads=2

Overrides are dotted keys: `recipe.epochs=1`, `data.search_size=1000`, `model.weights=/w.pth`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import envs.openmp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads it)
from envs.workload.baseline import get_baseline
from envs.workload.config_files import apply_overrides, read_group


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="conf/model/<name>.yaml")
    parser.add_argument("--data", default="fashion_mnist", help="conf/data/<name>.yaml")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--cache-dir", default=None, help="baseline cache (default ~/.cache/auto-prune/baselines)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="model.*, recipe.* or data.* = value")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = {"model": read_group("model", args.model), "data": read_group("data", args.data)}
    config["recipe"] = config["model"].pop("recipe", {})
    apply_overrides(config, args.overrides)
    start = time.perf_counter()
    baseline = get_baseline(config["model"], config["data"], config["recipe"], args.seed, args.cache_dir,
                            device=args.device)
    stats = baseline.train_stats
    import torch  # loaded by envs.workload.baseline already, after envs.openmp

    summary = {
        "model": args.model, "data": args.data, "source": baseline.source,
        "test_accuracy": round(baseline.test_accuracy, 4), "search_accuracy": round(baseline.search_accuracy, 4),
        "trained_seconds": round(baseline.trained_seconds, 1),
        "train_cpu_seconds": round(stats.cpu_seconds, 1) if stats else None,
        "train_images": stats.images if stats else None,
        "total_seconds": round(time.perf_counter() - start, 1),
        "threads": config["recipe"].get("threads") or torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "checkpoint": str(baseline.checkpoint_path),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
