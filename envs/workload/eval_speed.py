"""Images/s of evaluate() for a model on a dataset's search split: the search's hot path.

    python -m envs.workload.eval_speed --model resnet50 --data fashion_mnist --threads 2 --batch-size 256

Weights do not change the speed of a dense model, so a freshly built one is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from envs.workload.config_files import read_group
from envs.workload.data import DataConfig
from envs.workload.evaluation import evaluate
from envs.workload.models import build_model
from envs.workload.training import num_threads


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--images", type=int, default=2048, help="images per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after one warm-up; the best counts")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = parser.parse_args(argv)
    model_cfg = read_group("model", args.model)
    splits = DataConfig.from_mapping(read_group("data", args.data)).load()
    images, labels = splits.search_tensors()
    images, labels = images[:args.images], labels[:args.images]
    model = build_model(model_cfg["name"], splits.num_classes, splits.in_channels, model_cfg.get("small_input", True),
                        stem=model_cfg.get("stem"))
    model = model.to(memory_format=torch.channels_last).eval()
    times = []
    with num_threads(args.threads):
        for _ in range(args.repeats + 1):
            start = time.perf_counter()
            evaluate(model, images, labels, args.batch_size, bf16=args.bf16)
            times.append(time.perf_counter() - start)
    best = min(times[1:])
    summary = {"model": args.model, "data": args.data, "threads": torch.get_num_threads() if args.threads is None
               else args.threads, "batch_size": args.batch_size, "bf16": args.bf16, "images": len(labels),
               "images_per_s": round(len(labels) / best, 1),
               "all_passes_s": [round(t, 2) for t in times], "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
