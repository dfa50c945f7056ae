"""The Tune trial of a proposer method: evaluate its proposals within the episode budget.

It reports in the RL trials' format (``result["auto_prune"]`` from RunningBests plus
``env_runners/num_episodes_lifetime``), so the stopper, the history, MLflow, finalization
and the summary treat every method alike. Its checkpoint is the list of evaluated records:
proposers are deterministic given what they received, so a restored trial replays them
without re-evaluating and continues where it stopped.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray import tune

from envs.confirmation import BestConfirmation
from envs.episode import EpisodeEvaluator
from envs.formulation import episode_formulation
from envs.pruning_env import given_reference
from envs.search_context import search_context
from envs.settings import EnvSettings
from platform.search.bests import RunningBests, episode_record
from platform.search.methods.heuristics import Proposals, budget_problem, pim_prune, uniform
from platform.search.methods.optuna_search import optuna_proposals
from platform.search.rllib_callbacks import RESULT_KEY

RECORDS_FILE = "records.json"


def make_proposals(method: str, layers: int, settings: EnvSettings, options: dict[str, Any]) -> Proposals:
    """The method's generator of ratio vectors over `layers` searchable layers."""
    tolerance = float(options["bisection_tolerance"])
    if method in ("uniform", "sre_uniform"):
        return uniform(layers, settings.pmax, tolerance)
    if method == "pim_prune":
        problem = budget_problem(method, int(options["episodes"]), layers)
        if problem:
            raise ValueError(problem)
        return pim_prune(layers, settings.pmax, settings.epsilon, float(options["probe_ratio"]), tolerance)
    if method in ("random", "tpe"):
        return optuna_proposals(method, layers, settings.pmax, int(options["seed"]),
                                int(options["tpe_startup_episodes"]))
    raise ValueError(f"unknown proposer method {method!r}")


def _restored_records() -> list[dict[str, Any]]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return []
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / RECORDS_FILE).read_text())


def _report(bests: RunningBests, batch: list[dict[str, Any]], records: list[dict[str, Any]], complete: bool) -> None:
    metrics = {RESULT_KEY: {**bests.metrics(batch), "search_complete": complete},
               "env_runners": {"num_episodes_lifetime": bests.episodes}}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / RECORDS_FILE).write_text(json.dumps(records))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


Report = Callable[[RunningBests, list[dict[str, Any]], list[dict[str, Any]], bool], None]


def drive(proposals: Proposals, evaluate: Callable[[list[float]], dict[str, Any]], budget: int, report_every: int,
          replay: list[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    """Feed each proposal's evaluated record back to the proposer, within `budget` evaluations.

    The first ``len(replay)`` proposals take their records from `replay` (already reported
    before an interruption) instead of being evaluated again. `report(bests, batch, records,
    complete)` is called every `report_every` new records and once at the end.
    """
    records: list[dict[str, Any]] = []
    bests, batch, reported = RunningBests(), [], False
    ratios: list[float] | None = next(proposals, None)
    while ratios is not None and len(records) < budget:
        replayed = len(records) < len(replay)
        if replayed:  # only rebuild the state
            record = replay[len(records)]
            bests.update([record])
        else:
            record = evaluate(ratios)
            batch.append(record)
        records.append(record)
        try:
            ratios = proposals.send(record)
        except StopIteration:
            ratios = None
        complete = ratios is None or len(records) >= budget
        if not replayed and (len(batch) >= report_every or complete):
            bests.update(batch)
            report(bests, batch, records, complete)
            batch, reported = [], True
    if not reported:  # a replay that already reached the end, or a proposer that proposed nothing
        report(bests, [], records, True)
    return records


def proposer_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: one constraint, one method, at most config["episodes"] evaluations."""
    env_config, options = config["env_config"], config["options"]
    settings = EnvSettings.from_config(env_config)
    torch.set_num_threads(settings.torch_threads)
    torch.manual_seed(int(options["seed"]))
    context = search_context(env_config)
    evaluator = EpisodeEvaluator(context, settings, given_reference(env_config))
    # The same formulation object as the RL env's: under a budget, each proposal is walked through the
    # action wall layer by layer, and the staircase moves the target from the proposer's own episodes.
    formulation = episode_formulation(settings.formulation, evaluator.space, settings.budget_start_cr,
                                      settings.budget_round_episodes, settings.budget_step)
    confirmation = BestConfirmation(evaluator, settings.confirm_best)
    replay = _restored_records()
    for record in replay:  # the staircase and the confirmed best depend only on the outcomes they saw
        formulation.finish(bool(record["feasible"]))
        confirmation.replay(record)

    def evaluate(vector: list[float]) -> dict[str, Any]:
        result = confirmation.review(evaluator.evaluate_policy(formulation.apply(vector)))
        result.budget_cr = formulation.target_cr
        formulation.finish(result.feasible)
        return episode_record(result.info(), result.reward)

    # Every method proposes in the same space as the RL env: the layers that can free a
    # crossbar, with ratios snapped to breakpoints (envs/search_space.py).
    proposals = make_proposals(options["method"], evaluator.space.size, settings, options)
    drive(proposals, evaluate, int(options["episodes"]), int(options["report_every"]), replay, _report)
