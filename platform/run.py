"""The steps of one launch, in order; ``platform.launch`` is only its Hydra entry point."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from envs.sensitivity import history_records
from envs.settings import EnvSettings
from envs.workload.baseline_share import publish_entry
from platform.cluster import ResourceError, check_resources, connect, stop_on_sigterm
from platform.config import RL_METHODS, env_config, load, to_plain
from platform.reports import plots
from platform.reports.layout_stats import layout_summary, per_layer_crossbars
from platform.reports.summary import SummaryRow, format_table, summary_row
from platform.reports.tracking import Tracker, TrackingSettings, config_params, config_tags
from platform.search.agents import EpisodeShape
from platform.search.finalists import finalize_trial, recheck_finalists, write_policy
from platform.search.methods.heuristics import budget_problem
from platform.search.plan import search_plan
from platform.search.probe import probe_env
from platform.search.shared_episodes import history_finalists
from platform.search.sweep import ResumeError, TrialOutcome, make_tuner, outcomes, restore_tuner
from platform.search.sweep_folders import (
    append_history,
    new_sweep_dir,
    read_history,
    resumable_sweep_dir,
    trial_dir,
    trial_key,
)
from platform.search.tune_callbacks import HistoryAndTrackingCallback, ProgressCallback


class LaunchError(RuntimeError):
    """A launch that cannot start: the message says what to change."""


@dataclass
class LaunchResult:
    code: int  # the process exit code: 0 when every trial finished
    sweep_dir: Path
    rows: list[SummaryRow]


def say(text: str) -> None:
    print(f"[auto-prune] {text}", flush=True)


def run(cfg: DictConfig) -> LaunchResult:
    """Search, finalize and report; the result's code is the exit code (0: every trial done)."""
    started = time.time()
    plain = to_plain(cfg)
    env_class = load(cfg.search.env, "search.env")
    search = cfg.search
    try:
        sweep_dir = (resumable_sweep_dir(cfg.paths.runs_dir, search.name, search.resume_from) if cfg.resume
                     else new_sweep_dir(cfg.paths.runs_dir, search.name))
    except FileNotFoundError as error:
        raise LaunchError(str(error)) from error

    cluster = connect(cfg)
    stop_on_sigterm()
    say(f"Ray: {cluster.address} with {cluster.cpus:g} CPUs")
    # Built once: the env's sections; each trial adds its epsilon (Tune's grid), the probe the first one.
    runner_env_config = env_config(plain, None)
    request = search_plan(cfg, env_class, runner_env_config, EpisodeShape(1)).request
    import ray

    try:
        fits = check_resources(request, ray.cluster_resources())
    except ResourceError as error:
        raise LaunchError(str(error)) from error
    say(f"one trial asks for {request}; {fits} trial(s) fit at once")
    evaluators = cfg.ray.num_env_runners if cfg.search.method in RL_METHODS else 1
    threads = min(fits, len(cfg.search.constraints)) * max(1, evaluators) * cfg.env.torch_threads
    if threads > cluster.cpus:
        say(f"warning: {threads} evaluation threads (trials x ray.num_env_runners x env.torch_threads) on "
            f"{cluster.cpus:g} CPUs: oversubscribed threads slow every evaluation; lower env.torch_threads")

    say("building the environment once in the driver (baseline from cache or trained now)")
    probe_started = time.time()
    shape = probe_env(env_class, {**runner_env_config, "epsilon": float(cfg.search.constraints[0])})
    say(f"{shape.layers} prunable layers; environment ready in {time.time() - probe_started:.1f} s")
    # A Ray started here is one node; a joined cluster may have (or later gain) nodes without this disk.
    if cluster.joined and shape.baseline_entry is not None and publish_entry(Path(shape.baseline_entry)):
        say("baseline published to every node through Ray's object store (env runners elsewhere fetch it, "
            "never retrain it)")
    problem = budget_problem(cfg.search.method, cfg.search.episodes, shape.layers)
    if problem:
        raise LaunchError(problem)
    if shape.reference_accuracy is not None:  # env runners skip re-measuring the unpruned model
        runner_env_config["reference_accuracy"] = shape.reference_accuracy
    episodes = search_episodes(cfg, shape)
    if shape.probe_records is not None:  # env runners get the probe instead of measuring it again
        runner_env_config["sensitivity_probe_records"] = shape.probe_records
        say(f"sensitivity probe: {shape.probe_episodes} evaluated episodes (each searchable layer alone at "
            f"{cfg.env.sensitivity_probe:g}) count against search.episodes: the agent gets {episodes}")
    plan = search_plan(cfg, env_class, runner_env_config, shape)

    settings = TrackingSettings.from_config(plain)
    tracker = Tracker(settings, sweep_dir)
    tags = config_tags(plain)
    params = config_params(plain)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    parent = tracker.start_parent(f"{cfg.search.name}/{sweep_dir.name}", params, tags)
    if parent:
        say(f"MLflow: {settings.uri} run {parent}")
    say(f"sweep folder: {sweep_dir}")

    from ray.tune.logger import JsonLoggerCallback

    callbacks = [HistoryAndTrackingCallback(str(sweep_dir), settings, params, tags),
                 ProgressCallback(episodes), JsonLoggerCallback()]
    if shape.probe_records is not None and not cfg.resume:
        for epsilon in cfg.search.constraints:  # the probe's episodes open every trial's history
            append_history(sweep_dir, trial_key(float(epsilon)), {
                "iteration": 0, "time_total_s": 0.0, "probe": True,
                "records": history_records(shape.probe_records,
                                           EnvSettings.from_config(env_config(plain, epsilon)))})
    say(f"search method: {cfg.search.method} ({cfg.mapping.granularity}, reward {cfg.env.reward}), "
        f"{cfg.search.episodes} episodes per constraint")
    try:
        tuner = (restore_tuner(plan, sweep_dir, list(cfg.search.constraints)) if cfg.resume
                 else make_tuner(cfg, plan, sweep_dir, callbacks, fits, episodes))
    except ResumeError as error:
        raise LaunchError(str(error)) from error
    results = tuner.fit()
    found = outcomes(results, episodes + shape.probe_episodes, list(cfg.search.constraints), shape.probe_episodes)
    found = history_finalists(plain, found, sweep_dir, share=bool(cfg.search.share_episodes))
    rows = [finish_trial(plain, outcome, sweep_dir, tracker) for outcome in found]
    interrupted = any(not o.finished and o.error is None for o in found)
    for outcome in found:
        if outcome.restarts:
            say(f"[{outcome.key}] died {outcome.restarts} time(s) and restarted from its last checkpoint "
                f"(last failure: {outcome.fault or 'see its trial folder'}); its history keeps each iteration once")
    report(plain, rows, sweep_dir, tracker, parent, interrupted, time.time() - started)
    if interrupted:
        say(f"interrupted: continue with the same command plus resume=true (sweep {sweep_dir.name})")
        return LaunchResult(130, sweep_dir, rows)
    return LaunchResult(0 if all(o.finished for o in found) else 1, sweep_dir, rows)


def search_episodes(cfg: DictConfig, shape: EpisodeShape) -> int:
    """The episodes a trial's search runs: search.episodes less the sensitivity probe's, in whole
    batches for an agent (a partial batch would run past the budget)."""
    if not shape.probe_episodes:
        return int(cfg.search.episodes)
    batch = int(cfg.agent.episodes_per_batch)
    episodes = (int(cfg.search.episodes) - shape.probe_episodes) // batch * batch
    if episodes < batch:
        raise LaunchError(f"env.sensitivity_probe costs {shape.probe_episodes} evaluated episodes (one per searchable "
                          f"layer), which leaves no batch of agent.episodes_per_batch={batch} within search.episodes="
                          f"{cfg.search.episodes}: raise search.episodes or set env.sensitivity_probe=null")
    return episodes


def finish_trial(plain: dict[str, Any], outcome: TrialOutcome, sweep_dir: Path,
                 tracker: Tracker) -> SummaryRow:
    """Finalize one finished trial and log its artifacts to its child run."""
    if not outcome.finished:
        return summary_row(outcome, None)
    folder = trial_dir(sweep_dir, outcome.key)
    already = (folder / "policy.json").is_file()
    started = time.time()
    searched = outcome.best
    if searched is not None and not already and plain["final"]["recheck"]:
        count = min(len(outcome.finalists) or 1, plain["final"]["recheck"])
        others = sum(f.get("found_by", outcome.key) != outcome.key for f in outcome.finalists[:count])
        say(f"[{outcome.key}] re-checking the best {count} feasible policies on the whole search split"
            + (f" ({others} found by other constraints' trials, search.share_episodes)" if others else ""))
    outcome = recheck_finalists(plain, outcome, sweep_dir)  # read back from finalists.json once done
    if searched is not None and outcome.best is None and not already:
        say(f"[{outcome.key}] no finalist meets the constraint on the whole search split (the search's best: "
            f"CR {searched['compression_rate']:.3f}, Δacc {searched['delta_acc']:+.4f} on its prefix)")
    if outcome.best is not None and not already and plain["final"]["enabled"]:
        say(f"[{outcome.key}] finalizing: CR {outcome.best['compression_rate']:.3f} at search accuracy "
            f"{outcome.best['accuracy']:.4f}, fine-tuning {plain['final']['finetune_epochs']} epoch(s)")
    final = finalize_trial(plain, outcome, sweep_dir)
    seconds = time.time() - started
    if already:
        return summary_row(outcome, final)
    policy = write_policy(outcome, final, sweep_dir)
    report = saved_layout_report(plain, final, folder)
    figures = trial_figures(plain, outcome, final, report, folder)
    run_id = tracker.child(outcome.key, {**config_params(plain), "epsilon": str(outcome.epsilon)},
                           {**config_tags(plain), "epsilon": str(outcome.epsilon)})
    names = ("history.jsonl", "finalists.json", "final.json", "layout_report.json")
    files = [policy, *(folder / name for name in names), *figures]
    for path in files:
        if path.is_file():
            tracker.log_artifact(run_id, path)
    tracker.log_artifact(run_id, sweep_dir / "config.yaml")
    if final is not None and final.get("layout_dir") and Path(final["layout_dir"]).is_dir():
        tracker.log_artifact(run_id, Path(final["layout_dir"]), "layout")
    if final is not None and final.get("model_dir") and Path(final["model_dir"]).is_dir():
        tracker.log_artifact(run_id, Path(final["model_dir"]), "model")
        tracker.log_model(run_id, folder)
    row = summary_row(outcome, final, seconds)
    tracker.log_metrics(run_id, {f"final_{k}": v for k, v in row.as_dict().items() if k != "constraint"},
                        step=outcome.episodes)
    tracker.set_tags(run_id, {"status": row.status, "feasible_policy": str(outcome.best is not None).lower()})
    tracker.end(run_id)
    return row


def saved_layout_report(plain: dict[str, Any], final: dict[str, Any] | None, folder: Path) -> dict | None:
    """The saved layout, loaded back and priced (layout_report.json); None without a real layout."""
    layout_dir = (final or {}).get("layout_dir")
    if not layout_dir:
        return None
    from mapping.layout import LayoutError

    try:
        report = layout_summary(layout_dir, plain["hw"])
    except LayoutError as error:
        say(f"cannot read the saved layout back: {error}")
        return None
    (folder / "layout_report.json").write_text(json.dumps(report, indent=1))
    return report


def trial_figures(plain: dict[str, Any], outcome: TrialOutcome, final: dict[str, Any] | None,
                  report: dict | None, folder: Path) -> list[Path]:
    title = f"{plain['model'].get('name', '?')} on {plain['hw'].get('name', '?')}, ε={outcome.epsilon:g}"
    history = read_history(folder.parents[1], outcome.key)
    figures = [plots.search_curves(folder / "search.png", history, title)]
    if outcome.best is not None:
        source = final or {}
        names = source.get("layer_names") or outcome.best.get("layer_names") or [
            str(i) for i in range(len(outcome.best["ratios"]))]
        ratios = source.get("ratios") or outcome.best["ratios"]
        dense, pruned = source.get("layer_dense_crossbars"), source.get("layer_crossbars")
        if report is not None:
            names, dense, pruned = per_layer_crossbars(report)
        figures.append(plots.per_layer(folder / "layers.png", names, ratios, dense, pruned, title))
    return figures


def report(plain: dict[str, Any], rows: list[SummaryRow], sweep_dir: Path, tracker: Tracker,
           parent: str | None, interrupted: bool, seconds: float) -> None:
    table = format_table(rows)
    notes = [f"eps_{r.constraint:g}: its trial died {r.restarts} time(s) and restarted from its last checkpoint"
             for r in rows if r.restarts]
    if notes:
        table += "\n" + "\n".join(notes)
    print("\n" + table + f"\n\ntotal wall time {seconds:.0f} s; sweep folder {sweep_dir}", file=sys.stdout,
          flush=True)
    (sweep_dir / "summary.txt").write_text(table + "\n")
    (sweep_dir / "summary.json").write_text(json.dumps([r.as_dict() for r in rows], indent=1))
    points = [(r.constraint, r.delta_acc, r.compression_rate) for r in rows
              if r.status == "done" and r.compression_rate == r.compression_rate]
    title = " / ".join(str(plain[s].get("name", "?")) for s in ("model", "data", "hw"))
    pareto = plots.pareto(sweep_dir / "pareto.png", points, title)
    for path in (sweep_dir / "summary.txt", sweep_dir / "summary.json", sweep_dir / "config.yaml", pareto):
        tracker.log_artifact(parent, path)
    for line in tracker.where_to_look():
        say(line)
    layouts = sorted(str(p) for p in (sweep_dir / "trials").glob("*/layout") if p.is_dir())
    if layouts:
        say(f"mapped layouts: {', '.join(layouts)} (each trial folder's policy.json opens with "
            f"python -m platform.inspect ... policy.file=<trial folder>/policy.json)")
    done = sum(r.status == "done" for r in rows)
    metrics: dict[str, float] = {"wall_time_s": seconds, "trials_done": done}
    for row in rows:  # the Pareto front as numbers too, comparable across launches in the MLflow UI
        for key in ("accuracy", "delta_acc", "compression_rate", "area_efficiency_gain", "energy_efficiency_gain"):
            metrics[f"eps_{row.constraint:g}_{key}"] = getattr(row, key)
    tracker.log_metrics(parent, metrics, step=0)
    if not interrupted:
        tracker.end(parent, "FINISHED" if all(r.status in ("done", "searched", "no feasible policy") for r in rows)
                    else "FAILED")
    left = tracker.flush()
    if left:
        say(f"the tracking server did not take {left} operations: they wait in {tracker.outbox.path}; send them "
            f"once it is back with: python -m platform.reports.outbox {sweep_dir}")
