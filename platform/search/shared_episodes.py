"""Every trial of a sweep draws its finalists from all of the sweep's evaluated episodes.

A sweep runs one trial per epsilon of search.constraints, but each of its evaluations is a policy
with a measured accuracy loss and CR, which envs/relabel.py scores under any other epsilon. So,
with `search.share_episodes` (the default), epsilon's re-check considers the best distinct
policies feasible under epsilon among *all* trials' episodes: a policy the 2% trial found at 0.9%
loss is a candidate at 1%. It costs no evaluation, every method gets it, and the re-check on the
whole search split still decides. The searches themselves are unchanged: each learns from its own
epsilon's rewards (PPO is on-policy, so episodes sampled under another epsilon cannot enter its
batches as they are).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envs.relabel import relabelled
from envs.settings import EnvSettings
from platform.search.bests import FINALISTS_KEPT, rank
from platform.search.sweep import TrialOutcome
from platform.search.sweep_folders import read_history


def shared_finalists(histories: Mapping[str, list[dict[str, Any]]], epsilon: float, scoring_reward: str,
                     penalty: float, count: int = FINALISTS_KEPT, own: str | None = None) -> list[dict[str, Any]]:
    """The best `count` distinct policies feasible under `epsilon` among every trial's episodes, best
    first, each relabelled under `epsilon` and tagged with the trial that evaluated it (`found_by`;
    the `own` trial where several did) and its 1-based place in that trial's history (`episode`)."""
    candidates: dict[tuple[float, ...], dict[str, Any]] = {}
    for key in sorted(histories, key=lambda k: k != own):  # the own trial first: it keeps a shared policy
        records = [record for line in histories[key] for record in line.get("records", [])]
        for episode, record in enumerate(records, start=1):
            scored = relabelled(record, epsilon, scoring_reward, penalty)
            if scored is None or not scored["feasible"]:
                continue
            policy = tuple(scored["ratios"])
            if policy not in candidates or rank(scored) > rank(candidates[policy]):
                candidates[policy] = {**scored, "found_by": key, "episode": episode}
    return sorted(candidates.values(), key=rank, reverse=True)[:count]


def references(histories: Mapping[str, list[dict[str, Any]]]) -> set[float]:
    """The unpruned reference accuracies the sweep's records were measured against (one, in a sound sweep)."""
    return {record["baseline_accuracy"] for lines in histories.values() for line in lines
            for record in line.get("records", [])}


def share_episodes(plain: dict[str, Any], outcomes: list[TrialOutcome], sweep_dir: Path) -> list[TrialOutcome]:
    """Each finished trial's outcome with its best and finalists drawn from every trial's episodes.

    Returns the outcomes unchanged when the trials scored against different references (a sweep
    resumed after its baseline changed, say): their losses would not be comparable.
    """
    histories = {outcome.key: read_history(sweep_dir, outcome.key) for outcome in outcomes}
    if len(references(histories)) > 1:
        return outcomes
    shared = []
    for outcome in outcomes:
        if not outcome.finished:
            shared.append(outcome)
            continue
        settings = EnvSettings.from_config({"env": plain["env"], "mapping": plain["mapping"],
                                            "epsilon": outcome.epsilon})
        finalists = shared_finalists(histories, outcome.epsilon, settings.scoring_reward, settings.penalty,
                                     own=outcome.key)
        shared.append(dataclasses.replace(outcome, best=finalists[0] if finalists else None, finalists=finalists))
    return shared
