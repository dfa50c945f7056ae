"""What sharing a sweep's episodes across its constraints buys, measured on a finished sweep.

    python -m bench.shared_episodes runs/<search.name>/<stamp> [--recheck 3]

For each constraint's trial it takes the best `--recheck` distinct feasible policies two ways:
from the trial's own episodes only (search.share_episodes=false) and from every trial's episodes
relabelled under its constraint (platform/search/shared_episodes.py, the default). Both sets are
re-scored on the whole search split with the sweep's own settings (envs/finalize.py, each policy
once), and the best that still meets the constraint is printed for each: the re-check result a
launch would fine-tune. Same episodes both ways, so the difference is the sharing alone. Figures
only, no assertions; the fine-tune and test after the re-check are left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from envs.settings import EnvSettings
from platform.search.finalists import best_feasible
from platform.search.shared_episodes import shared_finalists
from platform.search.sweep_folders import read_history


def best_rechecked(candidates: list[dict[str, Any]], rechecked: dict[tuple, dict[str, Any]]) -> dict[str, Any] | None:
    """What the launch's re-check would keep among `candidates`, from their re-scored records."""
    return best_feasible([rechecked[tuple(c["ratios"])] for c in candidates])


def describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "none feasible"
    return f"CR {record['compression_rate']:.3f} (Δacc {record['delta_acc']:+.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a sweep folder: runs/<search.name>/<stamp>")
    parser.add_argument("--recheck", type=int, default=3, help="finalists re-checked per constraint (final.recheck)")
    args = parser.parse_args()
    if not (args.sweep / "config.yaml").is_file():
        raise SystemExit(f"{args.sweep} has no config.yaml: expected a sweep folder runs/<search.name>/<stamp>")
    plain = OmegaConf.to_container(OmegaConf.load(args.sweep / "config.yaml"), resolve=True)
    keys = sorted(p.name for p in (args.sweep / "trials").iterdir() if p.is_dir())
    histories = {key: read_history(args.sweep, key) for key in keys}
    from envs.finalize import recheck_policies

    print(f"{'trial':>10}  {'own episodes only':>32}  {'every trial, relabelled':>32}  found by others")
    for key in keys:
        epsilon = float(key.removeprefix("eps_"))
        settings = EnvSettings.from_config({"env": plain["env"], "mapping": plain["mapping"], "epsilon": epsilon})
        pick = dict(epsilon=epsilon, scoring_reward=settings.scoring_reward, penalty=settings.penalty,
                    count=args.recheck)
        own = shared_finalists({key: histories[key]}, **pick)
        shared = shared_finalists(histories, **pick, own=key)
        policies = list({tuple(c["ratios"]): None for c in own + shared})
        infos = recheck_policies(plain, [list(p) for p in policies], epsilon)
        rechecked = dict(zip(policies, infos, strict=True))
        others = sum(c["found_by"] != key for c in shared)
        print(f"{key:>10}  {describe(best_rechecked(own, rechecked)):>32}  "
              f"{describe(best_rechecked(shared, rechecked)):>32}  {others} of {len(shared)}", flush=True)


if __name__ == "__main__":
    main()
