"""Where a sweep keeps its files, and the per-trial search history.

Layout: ``<runs_dir>/<search.name>/<stamp>/`` is one sweep: ``tune/`` (Tune's experiment
folder, which Tune syncs on its own and may overwrite from a staged copy), ``mlflow.json``,
``config.yaml``, the summary, and ``trials/<eps_X>/`` with history.jsonl, policy.json, plots
and the final layout. ``resume=true`` reopens the newest sweep of that name. The history is
append-only; a trial restored from a checkpoint replays iterations, so readers keep the
last line of each iteration.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

HISTORY = "history.jsonl"
FINAL = "final.json"


def trial_key(epsilon: float) -> str:
    """The name of a constraint's trial, child run and folder: ``eps_0.02``."""
    return f"eps_{epsilon:g}"


def new_sweep_dir(runs_dir: str | Path, name: str) -> Path:
    base = Path(runs_dir) / name
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path, n = base / stamp, 1
    while path.exists():
        n += 1
        path = base / f"{stamp}_{n}"
    return path


def resumable_sweep_dir(runs_dir: str | Path, name: str, resume_from: str | None) -> Path:
    """The sweep that ``resume=true`` continues; the error says what exists when none fits."""
    base = Path(runs_dir) / name
    if resume_from:
        path = base / resume_from
        if not path.is_dir():
            raise FileNotFoundError(f"search.resume_from={resume_from!r}: no sweep folder {path}")
        return path
    sweeps = sorted((p for p in base.glob("*") if (p / "tune" / "tuner.pkl").is_file()),
                    key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise FileNotFoundError(f"resume=true but {base} holds no sweep to resume (no */tune/tuner.pkl); "
                                f"launch without resume=true to start one")
    return sweeps[-1]


def trial_dir(sweep_dir: Path, key: str) -> Path:
    return sweep_dir / "trials" / key


def append_history(sweep_dir: Path, key: str, line: dict[str, Any]) -> None:
    path = trial_dir(sweep_dir, key) / HISTORY
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")


def read_history(sweep_dir: Path, key: str) -> list[dict[str, Any]]:
    """One entry per training iteration, in order (the last write of a replayed iteration wins)."""
    path = trial_dir(sweep_dir, key) / HISTORY
    if not path.is_file():
        return []
    by_iteration: dict[int, dict[str, Any]] = {}
    for text in path.read_text().splitlines():
        if text.strip():
            line = json.loads(text)
            by_iteration[int(line["iteration"])] = line
    return [by_iteration[i] for i in sorted(by_iteration)]
