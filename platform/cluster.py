"""Start or join Ray so that its workers import this project's ``platform`` package.

Ray workers import the standard ``platform`` module while they start, before the
driver's directory joins their ``sys.path``; unpickling anything from ``platform.*``
(our RLlib callbacks) then fails and RLlib reports a dead env runner. Putting the repo
root on the workers' ``PYTHONPATH`` through the job's runtime_env makes the project
package the one they load (docs/platform.md). Resource requests are checked against the
cluster up front because Tune otherwise leaves an unplaceable trial PENDING forever.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from dataclasses import dataclass

import ray
from omegaconf import DictConfig

from platform.config import resolve_address


class ResourceError(RuntimeError):
    """A trial asks for more than the whole cluster has."""


@dataclass(frozen=True)
class ClusterInfo:
    address: str  # "local" for a Ray started here
    cpus: float
    joined: bool


def worker_runtime_env(repo_root: str) -> dict:
    """The runtime_env that lets workers import the project's ``platform`` (and envs/, hw/, ...), with
    OpenMP's passive wait policy on nodes that `ray start` launched without it (envs/openmp.py)."""
    existing = os.environ.get("PYTHONPATH", "")
    paths = [repo_root] + [p for p in existing.split(os.pathsep) if p and p != repo_root]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths),
                         "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}}


def connect(cfg: DictConfig) -> ClusterInfo:
    """Start a local Ray (``ray.address`` unset) or join a cluster; idempotent within a process."""
    address = resolve_address(cfg.ray.address)
    root = cfg.paths.root
    if not ray.is_initialized():
        kwargs = dict(runtime_env=worker_runtime_env(root), log_to_driver=cfg.ray.log_to_driver,
                      logging_level=logging.WARNING)
        if address is None:
            ray.init(num_cpus=cfg.ray.num_cpus or os.cpu_count(), include_dashboard=cfg.ray.include_dashboard,
                     **kwargs)
        else:
            ray.init(address=address, **kwargs)
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    return ClusterInfo(address=address or "local", cpus=cpus, joined=address is not None)


def check_resources(request: dict[str, float], available: dict[str, float]) -> int:
    """How many trials fit at once; raises ResourceError naming the shortfall when none does.

    Args:
        request: one trial's resources, e.g. {"CPU": 2.0}.
        available: ``ray.cluster_resources()`` of the cluster the trials will run on.
    """
    fits = math.inf
    for resource, amount in request.items():
        if amount <= 0:
            continue
        have = float(available.get(resource, 0.0))
        if amount > have + 1e-9 and resource == "GPU":
            raise ResourceError(
                f"one trial asks for {amount:g} GPU (ray.num_gpus_per_env_runner x env runners) but the Ray "
                f"cluster has {have:g}: set ray.num_gpus_per_env_runner=0 (and env.device=cpu or auto), or add "
                f"GPU nodes: Tune would otherwise wait forever.")
        if amount > have + 1e-9:
            raise ResourceError(
                f"one trial asks for {amount:g} {resource} but the Ray cluster has {have:g} "
                f"(request {request}: ray.num_cpus_for_main_process + ray.num_env_runners x "
                f"ray.num_cpus_per_env_runner). Lower ray.num_env_runners or ray.num_cpus_per_env_runner, "
                f"or add nodes: Tune would otherwise wait forever.")
        fits = min(fits, math.floor(have / amount + 1e-9))
    return int(fits) if fits != math.inf else 1


def stop_on_sigterm() -> None:
    """Treat SIGTERM (what `ray job stop` and cluster schedulers send the driver) like Ctrl-C.

    Tune stops a run gracefully on SIGINT only: it saves the experiment's state and the sweep
    ends as interrupted, so `resume=true` continues it. Called after ray.init, which installs
    its own SIGTERM handler (it logs and dies). `ray job stop` follows up with SIGKILL after
    RAY_JOB_STOP_WAIT_TIME_S; resume works from the last checkpoint either way.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(os.getpid(), signal.SIGINT))
