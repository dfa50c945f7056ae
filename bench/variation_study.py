"""Device variation: the level that costs the dense model about a point, and whether searching under it pays.

`fidelity`: on one 288 x 64 layer (ISAAC, ReLU inputs), the output error that conductance noise
causes in the OU model (every partial sum rounded by the ADC) and in the weight-domain model
(hw/variation.py, no rounding), and the gap between them, per sigma: how far the cheap model is
from the exact one.

`level`: the unpruned model's search accuracy under `--draws` device draws per fault rate (mean,
spread across draws, loss against ideal devices) and the cost of one draw, to choose the study's
level and env.variation.draws.

`compare`: the study of README "Device variation". Per seed, the same method searches the same
fixed crossbar budget (AMC's budget formulation with env.budget_step=0, so every policy has the
same CR up to one crossbar) twice: variation-blind (episodes scored on ideal devices) and
variation-aware (episodes scored as the mean over env.variation.draws paired draws). Each search's
winner is its best-scored episode. Both winners, and the unpruned model, are then measured on the
test split under the report's fresh draws (never seen by a search), with the search's recovery.

    python -m bench.variation_study fidelity --sigmas 0.01 0.02 0.05 0.1 0.2
    python -m bench.variation_study level --experiment resnet20 --rates 0.005 0.01 0.02
    python -m bench.variation_study compare --experiment resnet20 --stuck 0.01 --target-cr 2.0 --episodes 96
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.recovery_frontier import experiment_config
from envs.episode import EpisodeEvaluator
from envs.formulation import episode_formulation
from envs.search_context import search_context
from envs.settings import EnvSettings
from envs.variation import VariationScorer
from envs.workload.evaluation import evaluate_split
from hw.layout_types import PackedLayer
from hw.programming import NonIdealities
from hw.quantization import quantize_inputs
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec
from hw.variation import effective_matrix
from platform.config import env_config
from platform.search.bests import episode_record
from platform.search.methods.trial import drive, make_proposals


def settings_for(plain: dict, epsilon: float, env: dict) -> tuple[dict, EnvSettings]:
    config = env_config(plain, epsilon)
    config["env"] = {**config["env"], **env}
    return config, EnvSettings.from_config(config)


def fidelity(args: argparse.Namespace) -> None:
    spec = load_hw_spec("isaac")
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(288, 64, generator=generator)
    x = torch.randn(64, 288, generator=generator).relu()
    layer = PackedLayer.dense(weights, spec)
    inputs = quantize_inputs(x, spec.input_bits)
    fed = inputs.levels * inputs.scale[:, None]
    ideal = fed @ effective_matrix(layer, spec, NonIdealities(), 0)

    def rms(values: torch.Tensor) -> float:
        return float(values.pow(2).mean().sqrt())

    print(f"outputs rms {rms(ideal):.3f}; errors are rms over {args.draws} draws")
    for sigma in args.sigmas:
        ou, weight_domain, gap = [], [], []
        for seed in range(args.draws):
            simulated = CrossbarSimulator(spec, noise_sigma=sigma, seed=seed).matmul(x, layer, path="ou")
            model = fed @ effective_matrix(layer, spec, NonIdealities(sigma=sigma), seed)
            ou.append(rms(simulated - ideal))
            weight_domain.append(rms(model - ideal))
            gap.append(rms(simulated - model))
        print(f"sigma {sigma:g}: OU model error {statistics.mean(ou):.3f}, weight-domain model error "
              f"{statistics.mean(weight_domain):.3f}, gap between them {statistics.mean(gap):.3f}")


def level(args: argparse.Namespace, plain: dict) -> None:
    ideal_config, ideal_settings = settings_for(plain, args.epsilon, {"early_stop": False})
    ideal = EpisodeEvaluator(search_context(ideal_config), ideal_settings)
    print(f"unpruned model on ideal devices: {ideal.reference_accuracy:.4f} on {len(ideal.search_labels)} "
          f"search images", flush=True)
    for rate in args.rates:
        variation = {"stuck_at_zero": rate, "stuck_at_one": rate, "sigma": args.sigma, "draws": args.draws}
        config, settings = settings_for(plain, args.epsilon, {"early_stop": False, "variation": variation})
        evaluator = EpisodeEvaluator(search_context(config), settings, ideal.reference_accuracy)
        dense = evaluator.prune(dict.fromkeys(evaluator.context.layer_names, 0.0))
        evaluator.recover(dense)
        start = time.perf_counter()
        accuracies = evaluator.variation.search_accuracies(dense.model, dense.layout, evaluator.search_images,
                                                           evaluator.search_labels, settings.eval_batch_size)
        seconds = (time.perf_counter() - start) / len(accuracies)
        mean, spread = statistics.mean(accuracies), statistics.stdev(accuracies)
        print(f"stuck-at-0 = stuck-at-1 = {rate:g}, sigma {args.sigma:g}: mean {mean:.4f} (loses "
              f"{100 * (ideal.reference_accuracy - mean):.2f} points), worst {min(accuracies):.4f}, spread across "
              f"draws {100 * spread:.2f} points (standard error of a {args.draws}-draw mean "
              f"{100 * spread / args.draws ** 0.5:.2f}), {seconds:.2f} s a draw", flush=True)


def search(evaluator: EpisodeEvaluator, settings: EnvSettings, method: str, episodes: int, seed: int) -> dict:
    """One in-process search (the proposers' own driver, without Tune) at the fixed budget: its best record."""
    formulation = episode_formulation("budget", evaluator.space, settings.budget_start_cr, 1, 0.0)
    options = {"bisection_tolerance": 0.01, "seed": seed, "tpe_startup_episodes": 10, "episodes": episodes}

    def evaluate(vector: list[float]) -> dict:
        result = evaluator.evaluate_policy(formulation.apply(vector))
        return episode_record(result.info(), result.reward)

    proposals = make_proposals(method, evaluator.space.size, settings, options)
    records = drive(proposals, evaluate, episodes, episodes, [], lambda *_: None)
    return max(records, key=lambda record: (record["reward"], record["compression_rate"]))


def compare(args: argparse.Namespace, plain: dict) -> None:
    variation = {"stuck_at_zero": args.stuck, "stuck_at_one": args.stuck, "sigma": args.sigma,
                 "draws": args.draws, "report_draws": args.report_draws}
    env = {"formulation": "budget", "budget_start_cr": args.target_cr, "budget_step": 0.0,
           "reward": "accuracy", "early_stop": False}
    rows = []
    dense_report = None
    for seed in args.seeds:
        plain_seeded = {**plain, "seed": seed}
        for mode in ("blind", "aware"):
            config, settings = settings_for(plain_seeded, args.epsilon,
                                            {**env, "variation": {**variation, "in_search": mode == "aware"}})
            torch.manual_seed(seed)
            evaluator = EpisodeEvaluator(search_context(config), settings)
            start = time.perf_counter()
            best = search(evaluator, settings, args.method, args.episodes, seed)
            minutes = (time.perf_counter() - start) / 60
            scorer = VariationScorer(evaluator.context.spec, settings.variation)
            test = evaluator.context.data.test
            if dense_report is None:  # the same draws for every seed: one measurement
                dense = evaluator.prune(dict.fromkeys(evaluator.context.layer_names, 0.0))
                evaluator.recover(dense)
                dense_report = scorer.report_accuracies(dense.model, dense.layout, test, settings.eval_batch_size)
                print(f"unpruned model: test {evaluator.context.baseline.test_accuracy:.4f} ideal, "
                      f"{statistics.mean(dense_report):.4f} mean / {min(dense_report):.4f} worst over "
                      f"{len(dense_report)} report draws", flush=True)
            pruned = evaluator.prune(dict(zip(evaluator.context.layer_names, best["ratios"], strict=True)))
            evaluator.recover(pruned)
            ideal_test = evaluate_split(pruned.model, test, settings.eval_batch_size).accuracy
            varied = scorer.report_accuracies(pruned.model, pruned.layout, test, settings.eval_batch_size)
            row = {"seed": seed, "mode": mode, "cr": best["compression_rate"], "ideal": ideal_test,
                   "mean": statistics.mean(varied), "worst": min(varied), "minutes": minutes}
            rows.append(row)
            print(f"seed {seed} {mode:5s}: CR {row['cr']:.3f}, test {ideal_test:.4f} ideal, {row['mean']:.4f} mean / "
                  f"{row['worst']:.4f} worst under variation ({args.episodes} episodes, {minutes:.1f} min)", flush=True)
    dense_ideal = evaluator.context.baseline.test_accuracy
    dense_mean = statistics.mean(dense_report)
    print(f"\n{'seed':>4} {'mode':6} {'CR':>6} {'ideal':>7} {'var mean':>9} {'var worst':>9} "
          f"{'lost vs dense ideal':>20} {'lost vs dense varied':>21}")
    for row in rows:
        print(f"{row['seed']:>4} {row['mode']:6} {row['cr']:6.3f} {row['ideal']:7.4f} {row['mean']:9.4f} "
              f"{row['worst']:9.4f} {100 * (dense_ideal - row['mean']):20.2f} {100 * (dense_mean - row['mean']):21.2f}")
    for mode in ("blind", "aware"):
        varied = statistics.mean(r["mean"] for r in rows if r["mode"] == mode)
        print(f"{mode}: mean points lost under variation {100 * (dense_ideal - varied):.2f} vs the dense model on "
              f"ideal devices, {100 * (dense_mean - varied):.2f} vs the dense model on the same draws")
    blind = statistics.mean(dense_mean - r["mean"] for r in rows if r["mode"] == "blind")
    aware = statistics.mean(dense_mean - r["mean"] for r in rows if r["mode"] == "aware")
    if blind > 0:
        print(f"aware loses {100 * (1 - aware / blind):.0f}% fewer points than blind (against the dense model on the "
              f"same draws; goal >= 30%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["fidelity", "level", "compare"])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1, 0.2],
                        help="fidelity: conductance noise levels")
    parser.add_argument("--experiment", default="resnet20")
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.005, 0.01, 0.02],
                        help="level: stuck-at-0 = stuck-at-1 rates to measure")
    parser.add_argument("--stuck", type=float, default=0.01, help="compare: stuck-at-0 = stuck-at-1 rate")
    parser.add_argument("--sigma", type=float, default=0.0, help="conductance noise (no ADC rounding: an upper bound)")
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--report-draws", type=int, default=8)
    parser.add_argument("--target-cr", type=float, default=2.0)
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--method", default="tpe", choices=["random", "tpe"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="where baselines are cached (paths.cache_dir)")
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "fidelity":
        fidelity(args)
        return
    overrides = list(args.overrides) + [f"paths.cache_dir={args.cache_dir}"] * (args.cache_dir is not None)
    overrides.append("env.eval_on_hardware=false")
    plain = experiment_config(args.experiment, overrides)
    (level if args.what == "level" else compare)(args, plain)


if __name__ == "__main__":
    main()
