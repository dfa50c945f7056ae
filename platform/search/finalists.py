"""After a trial's search: fine-tune its best feasible policy, test, map, and write policy.json.

Runs in the driver once the sweep's trials are done (so it never competes with a search
for the cores). Idempotent: a trial whose ``final.json`` exists is not finalized again,
which is what a resumed sweep needs for the trials that finished before the interruption.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs.files import atomic_write
from platform.config import load
from platform.search.bests import episode_record, rank
from platform.search.sweep import TrialOutcome
from platform.search.sweep_folders import FINAL, trial_dir

FINALISTS = "finalists.json"
Record = dict[str, Any]

def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def policy_document(outcome: TrialOutcome, final: dict[str, Any] | None) -> dict[str, Any]:
    """policy.json: the per-layer ratios (what ``platform.inspect policy.file=`` reads) and their worth."""
    best = outcome.best or {}
    doc: dict[str, Any] = {
        "constraint": outcome.epsilon,
        "feasible_policy_found": outcome.best is not None,
        "layer_names": best.get("layer_names"),
        "ratios": best.get("ratios"),
        "search": {k: best.get(k) for k in ("compression_rate", "accuracy", "baseline_accuracy", "delta_acc",
                                            "crossbars", "dense_crossbars", "reward", "episode", "found_by")},
        "episodes": outcome.episodes,
    }
    if final is not None:
        doc.update({
            "compression_rate": final.get("compression_rate"),
            "accuracy": final.get("test_accuracy"),
            "accuracy_hw": final.get("test_accuracy_hardware"),
            "delta_acc": final.get("delta_acc"),
            "crossbars": final.get("crossbars"),
            "dense_crossbars": final.get("dense_crossbars"),
            "area_efficiency_gain": final.get("area_efficiency_gain"),
            "energy_efficiency_gain": final.get("energy_efficiency_gain"),
        })
    return doc


def _provenance(record: dict[str, Any]) -> dict[str, Any]:
    """Where a finalist was found: its trial (under search.share_episodes) and its episode there."""
    return {k: record[k] for k in ("found_by", "episode") if k in record}


def best_feasible(records: list[Record]) -> Record | None:
    """The feasible record that ranks first (platform.search.bests.rank), None when none is feasible."""
    return max((r for r in records if r["feasible"]), key=rank, default=None)


def bisect_down(candidates: list[Record], score: Callable[[Record], Record]) -> list[Record]:
    """The re-scored records of a bisection down `candidates` (best first) for the highest CR that
    still meets the constraint on the whole split, in the order evaluated: at most ceil(log2(n + 1)).

    Feasibility on the whole split falls, roughly, as CR rises, so this finds the boundary among the
    search's prefix-feasible policies without scoring them all; noise can make it miss a feasible
    policy above the one it returns, never return an infeasible one.
    """
    low, high, scored = 0, len(candidates) - 1, []
    while low <= high:
        middle = (low + high) // 2
        scored.append(score(candidates[middle]))
        if scored[-1]["feasible"]:
            high = middle - 1
        else:
            low = middle + 1
    return scored


def recheck_finalists(plain: dict[str, Any], outcome: TrialOutcome, sweep_dir: Path) -> TrialOutcome:
    """The outcome with its best policy chosen again among the finalists re-scored on the whole search split.

    The `final.recheck` best distinct feasible policies of the search are evaluated on every
    search image (envs.finalize.rechecker). Near the frontier the search's scores on its prefix are
    biased upwards, and a long search can fill its top few with near-copies that all fail; then,
    with `final.recheck_bisect`, a bisection goes down the rest of its prefix-feasible policies
    (`bisect_down`). The re-scored policy with the highest CR that still meets the constraint
    becomes the outcome's best, None when none does. A finalist env.confirm_best already scored on
    the whole split is taken as it is (the same images in the same batches against the same
    reference: tests/test_envs_confirmation.py). The re-scored records go to finalists.json in the
    trial folder, which also makes a resumed sweep skip the work.
    """
    count = int(plain["final"].get("recheck", 0))
    if count == 0 or outcome.best is None or not outcome.finished:
        return outcome
    saved = trial_dir(sweep_dir, outcome.key) / FINALISTS
    if saved.is_file():
        rechecked = read_finalists(saved)
    else:
        from envs.finalize import rechecker

        checks: list[Callable[[list[float]], dict]] = []  # made on first need: it measures the reference

        def score(found: dict[str, Any]) -> dict[str, Any]:
            if found.get("confirmed") and not found["stopped_early"]:
                return found  # env.confirm_best already scored it on the whole split: the same numbers
            if not checks:
                checks.append(rechecker({**plain, "epsilon": outcome.epsilon}, outcome.epsilon))
            info = checks[0](found["ratios"])
            return {**episode_record(info, info["reward"]), **_provenance(found)}

        candidates = outcome.finalists or [outcome.best]
        rechecked = [score(found) for found in candidates[:count]]
        if plain["final"].get("recheck_bisect", True) and not any(r["feasible"] for r in rechecked):
            rechecked += bisect_down(candidates[count:], score)
        atomic_write(saved, lambda path: path.write_text(json.dumps(rechecked, indent=1)))
    return dataclasses.replace(outcome, best=best_feasible(rechecked))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error}): {what}") from error


def read_finalists(path: Path) -> list[Record]:
    """finalists.json as a resumed sweep reads it back, checked: a list of complete episode records."""
    advice = "delete it and resume, and the finalists are re-checked again"
    document = _read_json(path, advice)
    if not isinstance(document, list):
        raise ValueError(f"{path} must hold a list of re-scored records, got {type(document).__name__}: {advice}")
    try:
        return [{**episode_record(record, record["reward"]), **_provenance(record)} for record in document]
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"{path} holds a record that is not an episode record ({error}): {advice}") from error


def read_final(path: Path) -> dict[str, Any]:
    """final.json as a resumed sweep reads it back, checked against envs.finalize.FinalResult's fields."""
    from envs.finalize import FinalResult

    advice = "delete the trial's final.json and resume, and the policy is finalized again"
    document = _read_json(path, advice)
    try:
        return _plain(FinalResult(**document))
    except TypeError as error:
        raise ValueError(f"{path} is not a finalized result ({error}): {advice}") from error


def finalize_trial(plain: dict[str, Any], outcome: TrialOutcome, sweep_dir: Path) -> dict[str, Any] | None:
    """Run ``final.finalize`` on the trial's best feasible policy; None when there is none.

    Returns the FinalResult as a plain dict (also saved as final.json in the trial folder).
    """
    out_dir = trial_dir(sweep_dir, outcome.key)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / FINAL
    if saved.is_file():
        return read_final(saved)
    if outcome.best is None or not plain["final"]["enabled"]:
        return None
    import torch

    threads = plain["final"].get("torch_threads") or os.cpu_count() or 1
    torch.set_num_threads(int(threads))
    finalize = load(plain["final"]["finalize"], "final.finalize")
    config = {**plain, "epsilon": outcome.epsilon}
    result = _plain(finalize(config, list(outcome.best["ratios"]), outcome.epsilon, out_dir))
    atomic_write(saved, lambda path: path.write_text(json.dumps(result, indent=1)))
    return result


def write_policy(outcome: TrialOutcome, final: dict[str, Any] | None, sweep_dir: Path) -> Path:
    path = trial_dir(sweep_dir, outcome.key) / "policy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(policy_document(outcome, final), indent=1))
    return path
