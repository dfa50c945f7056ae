"""``python -m platform.launch +experiment=resnet50``: the pruning search, end to end.

Order matters for failing fast: the config is validated (Hydra's schema, then
``validate``), Ray is started or joined and one trial's request is checked against the
cluster, and the environment is built once in the driver (baseline cached) before Tune
starts any trial. Then: a Tune sweep over the constraints, tracked in MLflow; each
trial's best feasible policy is finalized; a summary table closes the run.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import envs.openmp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads it)
from platform.config import ConfigError, validate
from platform.search.sweep import quiet_tune


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    quiet_tune()
    from platform.run import LaunchError, run

    try:
        code = run(cfg).code
    except LaunchError as error:
        print(f"launch error: {error}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
