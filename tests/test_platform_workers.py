"""Ray workers started from the repo root import the project's ``platform`` package.

Without help they load the standard module at start-up, and unpickling our RLlib
callbacks (``platform.search.rllib_callbacks``) in an env runner fails (docs/platform.md). The launcher
puts the repo root on the workers' PYTHONPATH through the job's runtime_env.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray
from omegaconf import OmegaConf

from platform.config import REPO_ROOT, Config

pytestmark = pytest.mark.slow  # starts Ray


@pytest.fixture(scope="module")
def cfg():
    base = OmegaConf.structured(Config)
    small = {"ray": {"num_cpus": 2, "num_env_runners": 1, "num_cpus_per_env_runner": 0.5},
             "agent": {"episodes_per_batch": 2, "ppo": {"minibatch_size": 8, "num_epochs": 1}}}
    return OmegaConf.merge(base, small)


@pytest.fixture(scope="module")
def local_ray(cfg):
    from platform.cluster import connect

    assert Path.cwd() == REPO_ROOT, "run the tests from the repo root (python -m pytest)"
    ray.shutdown()
    info = connect(cfg)
    yield info
    ray.shutdown()


def where_platform_comes_from() -> str:
    import platform

    return platform.__file__


def test_a_worker_without_the_fix_cannot_unpickle_project_code(local_ray):
    task = ray.remote(where_platform_comes_from).options(runtime_env={"env_vars": {"PYTHONPATH": ""}})
    with pytest.raises(Exception, match="'platform' is not a package"):
        ray.get(task.remote())


def test_a_worker_of_the_launchers_ray_loads_the_project_package(local_ray):
    found = ray.get(ray.remote(where_platform_comes_from).remote())
    assert Path(found) == REPO_ROOT / "platform" / "__init__.py"


def test_an_env_runner_runs_from_the_repo_root_with_the_project_platform_and_its_callbacks(cfg, local_ray):
    from platform.config import env_config, to_plain
    from platform.search.agents import EpisodeShape, build_algo_config
    from tests.toy_env import ToyPruningEnv

    plain = to_plain(cfg)
    algo = build_algo_config(cfg, ToyPruningEnv, env_config(plain, 0.05), EpisodeShape(4)).build_algo()
    try:
        seen = algo.env_runner_group.foreach_env_runner(
            lambda runner: (where_platform_comes_from(), os.getcwd()), local_env_runner=False)
        assert len(seen) == 1
        platform_file, cwd = seen[0]
        assert Path(platform_file) == REPO_ROOT / "platform" / "__init__.py"
        assert Path(cwd) == REPO_ROOT
        result = algo.train()
        assert result["auto_prune"]["episodes"] >= 2  # episode records left the runner through our callback
    finally:
        algo.stop()


def test_running_bests_survive_a_checkpoint_and_restore(cfg, local_ray, tmp_path):
    from platform.config import env_config, to_plain
    from platform.search.agents import EpisodeShape, build_algo_config
    from tests.toy_env import ToyPruningEnv

    config = build_algo_config(cfg, ToyPruningEnv, env_config(to_plain(cfg), 0.05), EpisodeShape(4))
    algo = config.build_algo()
    try:
        for _ in range(2):
            before = algo.train()["auto_prune"]
        algo.save_to_path(str(tmp_path / "checkpoint"))
    finally:
        algo.stop()
    restored = config.build_algo()
    try:
        restored.load_checkpoint(str(tmp_path / "checkpoint"))  # what Tune calls; runs on_checkpoint_loaded
        after = restored.train()["auto_prune"]
    finally:
        restored.stop()
    assert after["episodes"] == before["episodes"] + after["episodes_this_iter"]
    assert after["best_cr"] >= before["best_cr"]
