"""``python -m platform.compare +experiment=quickstart``: every search method on one harness, one table.

Each method (``compare.methods``) is launched like ``platform.launch ... search=<method>``
for every seed (``compare.seeds`` sets ``search.seed``; the dense baseline and the data
splits keep the top-level seed, so they are trained and cached once) at the same
constraints and the same budget of evaluated episodes. Every launch lands in MLflow as
usual; the comparison adds one run holding the aggregated table (mean ± std over seeds),
CR vs accuracy loss for all methods, and the learning curves.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import envs.openmp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads it)
from envs.files import atomic_write
from platform.config import (
    DETERMINISTIC_METHODS,
    ConfigError,
    to_plain,
    validate,
    validate_compare,
)
from platform.reports import curves as checkpoint_table
from platform.reports import plots
from platform.reports.comparison_table import MethodRun, format_markdown, format_text, summarize
from platform.reports.tracking import Tracker, TrackingSettings, config_tags
from platform.search.sweep import quiet_tune
from platform.search.sweep_folders import new_sweep_dir, read_history, resumable_sweep_dir, trial_key


def say(text: str) -> None:
    print(f"[compare] {text}", flush=True)


def best_cr_curve(history: list[dict]) -> list[tuple[int, float]]:
    """Best feasible CR after each evaluated episode. The unpruned model (CR 1) is always feasible,
    so a search that has found nothing better yet stands at 1, not 0."""
    curve, best = [], 1.0
    records = [record for line in history for record in line.get("records", [])]
    for episode, record in enumerate(records, 1):
        if record.get("feasible") and not record.get("reason"):
            best = max(best, float(record["compression_rate"]))
        curve.append((episode, best))
    return curve


def launch_name(name: str, method: str, seed: int) -> str:
    """The search.name (and sweep folder under runs/) of one launch of a comparison."""
    return f"{name}-{method}-s{seed}"


def launch_overrides(user: list[str], method: str, seed: int, constraints: list[float], name: str,
                     resume: bool = False) -> list[str]:
    """The user's overrides minus any search choice, plus this launch's method, seed and constraints
    (and resume=true, to continue its sweep)."""
    kept = [o for o in user if o.split("=", 1)[0].lstrip("+~") not in ("search", "search.constraints",
                                                                        "search.seed", "search.name", "resume")]
    return kept + [f"search={method}", f"search.seed={seed}",
                   f"search.constraints=[{','.join(f'{c:g}' for c in constraints)}]",
                   f"search.name={launch_name(name, method, seed)}"] + (["resume=true"] if resume else [])


def has_sweep(runs_dir: str | Path, name: str) -> bool:
    """Whether a launch of that search.name left a sweep that resume=true can continue."""
    try:
        resumable_sweep_dir(runs_dir, name, None)
    except FileNotFoundError:
        return False
    return True


def planned_launches(cfg: DictConfig) -> list[tuple[str, int]]:
    """(method, seed) pairs; a method that ignores the seed runs once (compare.deterministic_once)."""
    compare = cfg.compare
    return [(method, seed) for method in compare.methods
            for seed in (compare.seeds[:1] if compare.deterministic_once and method in DETERMINISTIC_METHODS
                         else compare.seeds)]


def launch_all(cfg: DictConfig, user_overrides: list[str], out_dir: Path) -> tuple[list[MethodRun], int]:
    """Every planned launch, one after another; returns their rows and how many failed."""
    from platform.run import LaunchError, run

    started = time.time()
    compare_cfg = cfg.compare
    name = compare_cfg.name or cfg.search.name
    launches = planned_launches(cfg)
    say(f"{len(launches)} launches ({', '.join(compare_cfg.methods)}; seeds {list(compare_cfg.seeds)}) at "
        f"constraints {list(compare_cfg.constraints)}, {cfg.search.episodes} episodes each; results in {out_dir}")
    runs: list[MethodRun] = []
    write_runs(out_dir, runs)
    failed = 0
    for index, (method, seed) in enumerate(launches, 1):
        resume = bool(compare_cfg.resume) and has_sweep(cfg.paths.runs_dir, launch_name(name, method, seed))
        launch_cfg = compose(config_name="config", overrides=launch_overrides(
            user_overrides, method, seed, list(compare_cfg.constraints), name, resume))
        if resume:
            say(f"{method} seed {seed}: continuing its sweep under {cfg.paths.runs_dir} (compare.resume)")
        say(f"launch {index}/{len(launches)}: {method}, seed {seed} ({launch_cfg.mapping.granularity}"
            f" granularity) [{time.time() - started:.0f} s elapsed]")
        try:
            validate(launch_cfg)
            result = run(launch_cfg)
        except (ConfigError, LaunchError) as error:
            say(f"{method} seed {seed} could not start: {error}")
            failed += 1
            continue
        failed += result.code != 0
        runs += [MethodRun(method, str(launch_cfg.mapping.granularity), seed, row, str(result.sweep_dir))
                 for row in result.rows]
        write_runs(out_dir, runs)
    return runs, failed


def write_runs(out_dir: Path, runs: list[MethodRun]) -> None:
    """runs.json, replaced whole after every launch: an interrupted comparison keeps what finished."""
    atomic_write(out_dir / "runs.json", lambda path: path.write_text(json.dumps([r.as_dict() for r in runs], indent=1)))


def merged_runs(folders: list[Path]) -> list[MethodRun]:
    """Every run of several comparisons (a study split into launches that each finish), in folder order.
    A (method, seed, constraint) found twice is refused: which one counts would be a guess."""
    runs, seen = [], {}
    for folder in folders:
        for values in json.loads((folder / "runs.json").read_text()):
            run = MethodRun.from_dict(values)
            key = (run.method, run.seed, run.row.constraint)
            if key in seen:
                raise ConfigError(f"{run.method} seed {run.seed} at epsilon {run.row.constraint:g} is in both "
                                 f"{seen[key]} and {folder}: merge each run once")
            seen[key] = folder
            runs.append(run)
    return runs


def learning_curves(runs: list[MethodRun]) -> dict[str, dict[float, list]]:
    """Per method and constraint, each seed's best-CR-so-far curve (from its sweep's history)."""
    curves: dict[str, dict[float, list]] = {}
    for run in runs:
        if run.method not in DETERMINISTIC_METHODS and run.sweep_dir:  # searches whose best CR grows with episodes
            curve = best_cr_curve(read_history(Path(run.sweep_dir), trial_key(run.row.constraint)))
            if not curve:
                print(f"[compare] {run.method} seed {run.seed} at epsilon {run.row.constraint:g}: no episode history "
                      f"under {run.sweep_dir} (moved or deleted?), so its learning curve is left out", flush=True)
            curves.setdefault(run.method, {}).setdefault(run.row.constraint, []).append(curve)
    return curves


def write_report(plain: dict, out_dir: Path, runs: list[MethodRun]) -> None:
    """The table (printed and saved), the figures and the MLflow run of a comparison."""
    compare_cfg = plain["compare"]
    summaries = summarize(runs, compare_cfg["reference"])
    text = format_text(summaries, compare_cfg["reference"])
    title = " / ".join(str(plain[s].get("name", "?")) for s in ("model", "data", "hw"))
    print(f"\n{title}, {plain['search']['episodes']} episodes per method and constraint\n{text}\n", flush=True)
    (out_dir / "table.txt").write_text(text + "\n")
    (out_dir / "table.md").write_text(format_markdown(summaries, compare_cfg["reference"]) + "\n")
    (out_dir / "summary.json").write_text(json.dumps([s.as_dict() for s in summaries], indent=1))
    curves, episodes = learning_curves(runs), plain["search"]["episodes"]
    print(f"best feasible CR so far, mean over seeds (the learning curves' figure, read at a few budgets)\n"
          f"{checkpoint_table.format_text(curves, episodes)}\n", flush=True)
    (out_dir / "learning_curves.md").write_text(checkpoint_table.format_markdown(curves, episodes) + "\n")
    methods = list(dict.fromkeys(r.method for r in runs))
    points = {method: [(r.row.search_delta_acc, r.row.compression_rate) for r in runs if r.method == method
                       and r.row.compression_rate == r.row.compression_rate] for method in methods}
    figures = [plots.methods_scatter(out_dir / "cr_vs_delta_acc.png", points, title, compare_cfg["constraints"]),
               plots.learning_curves(out_dir / "learning_curves.png", curves, title)]
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    track(plain, out_dir, summaries, figures, compare_cfg["name"] or plain["search"]["name"])


def compare(cfg: DictConfig, user_overrides: list[str]) -> int:
    """Launch every method (or, with compare.rebuild_from, re-aggregate an earlier comparison; with
    compare.merge_from, aggregate several into a new folder)."""
    started = time.time()
    plain = to_plain(cfg)
    if cfg.compare.merge_from:
        out_dir = new_sweep_dir(Path(cfg.paths.runs_dir) / "compare", cfg.compare.name or cfg.search.name)
        out_dir.mkdir(parents=True)
        runs, failed = merged_runs([Path(folder) for folder in cfg.compare.merge_from]), 0
        write_runs(out_dir, runs)
    elif cfg.compare.rebuild_from:
        out_dir = Path(cfg.compare.rebuild_from)
        runs, failed = [MethodRun.from_dict(r) for r in json.loads((out_dir / "runs.json").read_text())], 0
        if cfg.compare.reprice:
            from platform.reports.reprice import reprice_runs

            runs = reprice_runs(plain, runs, say)
    else:
        out_dir = new_sweep_dir(Path(cfg.paths.runs_dir) / "compare", cfg.compare.name or cfg.search.name)
        out_dir.mkdir(parents=True)
        runs, failed = launch_all(cfg, user_overrides, out_dir)
    write_report(plain, out_dir, runs)
    say(f"done in {time.time() - started:.0f} s: {out_dir}")
    return 0 if failed == 0 else 1


def track(plain: dict, out_dir: Path, summaries: list, figures: list[Path], name: str) -> None:
    """One MLflow run for the comparison: its table, figures and per-method metrics."""
    tracker = Tracker(TrackingSettings.from_config(plain), out_dir)
    compare = plain["compare"]
    params = {"compare.methods": ",".join(compare["methods"]), "compare.seeds": str(compare["seeds"]),
              "compare.constraints": str(compare["constraints"]), "search.episodes": str(plain["search"]["episodes"]),
              "env.search_images": str(plain["env"].get("search_images"))}
    run_id = tracker.start_parent(f"compare/{name}/{out_dir.name}", params, {**config_tags(plain), "kind": "compare",
                                                                             "method": "compare"})
    metrics = {}
    for s in summaries:
        prefix = f"{s.method}_eps_{s.constraint:g}"
        metrics[f"{prefix}_cr"] = s.compression_rate.mean
        metrics[f"{prefix}_cr_vs_reference"] = s.vs_reference["compression_rate"].mean
        metrics[f"{prefix}_delta_acc"] = s.delta_acc.mean
    tracker.log_metrics(run_id, metrics, step=0)
    for path in [out_dir / "table.txt", out_dir / "table.md", out_dir / "learning_curves.md", out_dir / "summary.json",
                 out_dir / "runs.json", out_dir / "config.yaml", *figures]:
        tracker.log_artifact(run_id, path)
    tracker.end(run_id)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate_compare(cfg)
        validate(cfg)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    quiet_tune()
    try:
        sys.exit(compare(cfg, list(HydraConfig.get().overrides.task)))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
