"""Where the compression lives: uniform ratio x recovery x granularity, and the largest CR within epsilon.

    python -m bench.recovery_frontier [--experiment resnet50] [--ratios 0.3 0.4 0.5 0.6 0.7]
        [--granularities ou_row crossbar_row] [--recoveries none bn finetune:20 ...]
        [--epsilon 0.01] [--threads 2] [--search-images N] [--cache-dir DIR]

On the experiment's cached baseline (trained once if missing) it scores every layer that can free
a crossbar at each uniform ratio, snapped to its crossbar breakpoint, under each recovery and
granularity, against the unpruned reference measured the same way (same recovery, same images).
It prints Δacc, CR and the episode's time split (recovery and mapping vs evaluation), then, per
granularity, the largest CR whose Δacc stays within epsilon, and the ou_row / crossbar_row ratio.
It runs on the experiment's env.device (auto: the GPU where torch sees one). Figures only.

A recovery is `none`, `bn`, or `finetune:STEPS[:key=value,...]` with keys from env.finetune_*
(loss, params, images, batch_size, lr, bn), e.g. `finetune:20:loss=distill,images=2048,batch_size=32`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import torch
from hydra import compose, initialize_config_dir

from envs.episode import EpisodeEvaluator
from envs.search_context import search_context
from envs.settings import EnvSettings
from platform.config import REPO_ROOT, env_config, register_configs, to_plain

FINETUNE_KEYS = {"loss": str, "params": str, "images": int, "batch_size": int, "lr": float, "bn": str}


@dataclass(frozen=True)
class Recovery:
    """One recovery to measure, as env settings."""

    label: str
    env: dict = field(hash=False)


def parse_recovery(text: str) -> Recovery:
    """`none`, `bn` or `finetune:STEPS[:key=value,...]` -> the env settings it stands for."""
    if text in ("none", "bn"):
        return Recovery(text, {"recovery": text, "finetune_steps": 0})
    kind, _, rest = text.partition(":")
    steps, _, options = rest.partition(":")
    if kind != "finetune" or not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"--recoveries holds {text!r}: expected none, bn or finetune:STEPS[:key=value,...]")
    env = {"recovery": "finetune", "finetune_steps": int(steps)}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key not in FINETUNE_KEYS or not value:
            raise ValueError(f"--recoveries {text!r}: {option!r} is not key=value with a key from "
                             f"{list(FINETUNE_KEYS)}")
        env[f"finetune_{key}"] = FINETUNE_KEYS[key](value)
    return Recovery(text, env)


def experiment_config(experiment: str, overrides: list[str]) -> dict:
    register_configs()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}", *overrides])
    return to_plain(cfg)


def largest_within(points: list[tuple[float, float]], epsilon: float) -> float | None:
    """The largest CR among (Δacc, CR) points whose loss stays within epsilon (None: none does)."""
    feasible = [cr for delta, cr in points if delta <= epsilon]
    return max(feasible) if feasible else None


def run(experiment: str, ratios: list[float], granularities: list[str], recoveries: list[Recovery],
        epsilon: float, threads: int, overrides: list[str]) -> dict[tuple[str, str], float | None]:
    torch.set_num_threads(threads)
    plain = experiment_config(experiment, overrides)
    frontier: dict[tuple[str, str], float | None] = {}
    started = time.perf_counter()
    for granularity in granularities:
        for recovery in recoveries:
            config = env_config(plain, epsilon)
            config["mapping"] = {**config["mapping"], "granularity": granularity, "packing": "per_layer"}
            config["env"] = {**config["env"], **recovery.env, "early_stop": False}
            context = search_context(config)
            setup = time.perf_counter()
            evaluator = EpisodeEvaluator(context, EnvSettings.from_config(config))
            print(f"[{granularity}, {recovery.label}] on {evaluator.device}: unpruned reference "
                  f"{evaluator.reference_accuracy:.4f} on {len(evaluator.search_labels)} search images "
                  f"({evaluator.space.size} layers can free a crossbar; set-up {time.perf_counter() - setup:.1f} s)",
                  flush=True)
            points = []
            for ratio in ratios:
                result = evaluator.evaluate_policy([ratio] * evaluator.space.size)
                points.append((result.delta_acc, result.compression_rate))
                rest = result.episode_seconds - result.eval_seconds
                print(f"  uniform {ratio:.2f}: Δacc {100 * result.delta_acc:+6.2f} points, CR "
                      f"{result.compression_rate:.3f}, episode {result.episode_seconds:.2f} s = recovery and "
                      f"mapping {rest:.2f} s + evaluation {result.eval_seconds:.2f} s", flush=True)
            frontier[granularity, recovery.label] = largest_within(points, epsilon)
    print(f"\nlargest CR within epsilon = {100 * epsilon:g}% ({experiment}, ratios {ratios}; "
          f"{time.perf_counter() - started:.0f} s in all):")
    for recovery in recoveries:
        row = {g: frontier[g, recovery.label] for g in granularities}
        text = ", ".join(f"{g} {'none within' if cr is None else f'{cr:.3f}'}" for g, cr in row.items())
        if row.get("ou_row") and row.get("crossbar_row"):
            text += f"; ou_row / crossbar_row {row['ou_row'] / row['crossbar_row']:.2f}x"
        print(f"  {recovery.label}: {text}")
    return frontier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="resnet50")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    parser.add_argument("--granularities", nargs="+", default=["ou_row", "crossbar_row"],
                        choices=["ou_row", "crossbar_row"])
    parser.add_argument("--recoveries", nargs="+", default=["none", "bn", "finetune:20:batch_size=32"])
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--search-images", type=int, default=None, help="score on the first N search images")
    parser.add_argument("--cache-dir", default=None, help="where baselines are cached (paths.cache_dir)")
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides, e.g. env.device=cpu")
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.search_images is not None:
        overrides.append(f"env.search_images={args.search_images}")
    if args.cache_dir is not None:
        overrides.append(f"paths.cache_dir={args.cache_dir}")
    run(args.experiment, args.ratios, args.granularities, [parse_recovery(r) for r in args.recoveries],
        args.epsilon, args.threads, overrides)


if __name__ == "__main__":
    main()
