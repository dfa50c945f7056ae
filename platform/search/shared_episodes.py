"""Each trial's finalists, read from the sweep's histories: its own episodes', or every trial's.

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
from platform.search.bests import rank
from platform.search.sweep import TrialOutcome
from platform.search.sweep_folders import read_history


def shared_finalists(histories: Mapping[str, list[dict[str, Any]]], epsilon: float, scoring_reward: str,
                     penalty: float, count: int | None = None, own: str | None = None) -> list[dict[str, Any]]:
    """The best `count` (None: all) distinct policies feasible under `epsilon` among every trial's
    episodes, best first, each relabelled under `epsilon` and tagged with the trial that evaluated it (`found_by`;
    the `own` trial where several did) and its 1-based place in that trial's history (`episode`)."""
    candidates: dict[tuple[float, ...], dict[str, Any]] = {}
    trials = sorted(histories, key=lambda k: k != own)  # the own trial first: it keeps a shared policy
    # A policy scored on the whole split (env.confirm_best) is judged by that score alone, wherever
    # its prefix scores put it (unless its partial measurement cannot tell the verdict under epsilon).
    whole = {tuple(record["ratios"]) for key in trials for line in histories[key] for record in line.get("records", [])
             if record.get("confirmed") and relabelled(record, epsilon, scoring_reward, penalty) is not None}
    for key in trials:
        records = [record for line in histories[key] for record in line.get("records", [])]
        for episode, record in enumerate(records, start=1):
            scored = relabelled(record, epsilon, scoring_reward, penalty)
            if scored is None or not scored["feasible"]:
                continue
            policy = tuple(scored["ratios"])
            if policy in whole and not record.get("confirmed"):
                continue
            if policy not in candidates or rank(scored) > rank(candidates[policy]):
                candidates[policy] = {**scored, "found_by": key, "episode": episode}
    return sorted(candidates.values(), key=rank, reverse=True)[:count]


def references(histories: Mapping[str, list[dict[str, Any]]]) -> set[tuple[bool, float]]:
    """The unpruned reference accuracies the sweep's records were measured against, each with
    whether it is the whole split's (env.confirm_best) or the prefix's: one of each, in a sound sweep."""
    return {(bool(record.get("confirmed")), record["baseline_accuracy"]) for lines in histories.values()
            for line in lines for record in line.get("records", [])}


def history_finalists(plain: dict[str, Any], outcomes: list[TrialOutcome], sweep_dir: Path,
                      share: bool) -> list[TrialOutcome]:
    """Each finished trial's outcome with its best and finalists read from the histories: every
    distinct policy feasible under its constraint, best first (the re-check takes the best few and,
    if they all fail, bisects down the rest: platform/search/finalists.py). With `share`, from every
    trial's episodes; from its own alone when not, or when the trials scored against different
    references (a sweep resumed after its baseline changed, say), whose losses are not comparable.
    """
    histories = {outcome.key: read_history(sweep_dir, outcome.key) for outcome in outcomes}
    measured = references(histories)
    share = share and len(measured) == len({confirmed for confirmed, _ in measured})
    found = []
    for outcome in outcomes:
        if not outcome.finished or not any(line.get("records") for line in histories[outcome.key]):
            found.append(outcome)  # nothing to re-read: keep what the trial reported
            continue
        settings = EnvSettings.from_config({"env": plain["env"], "mapping": plain["mapping"],
                                            "epsilon": outcome.epsilon})
        pool = histories if share else {outcome.key: histories[outcome.key]}
        finalists = shared_finalists(pool, outcome.epsilon, settings.scoring_reward, settings.penalty, own=outcome.key)
        found.append(dataclasses.replace(outcome, best=finalists[0] if finalists else None, finalists=finalists))
    return found
