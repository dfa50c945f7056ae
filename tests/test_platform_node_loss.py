"""A worker node lost in the middle of a search (slow: a two-node Ray cluster on this machine).

The quickstart's two constraints run as one trial per node. When the second node goes down (its
raylet and everything on it stopped), the trial it held dies with it; Tune restarts it from its
last checkpoint on what remains, the sweep finishes, every episode is in the history exactly
once, and the summary says what happened.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from platform.config import REPO_ROOT
from platform.search.sweep_folders import read_history
from tests.test_platform_cluster import activated_venv_env, cluster, stop_ray_session  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_a_search_finishes_on_the_remaining_node_with_every_episode_counted_once(cluster, baseline_cache,  # noqa: F811
                                                                                  tmp_path):
    env = activated_venv_env(cluster.homes["head"])
    args = [sys.executable, "-m", "platform.launch", "+experiment=quickstart", f"ray.address={cluster.address}",
            f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={baseline_cache}", "tracking=off",
            "final.enabled=false"]
    driver = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    lines, started, stopped = [], set(), False
    for line in driver.stdout:
        lines.append(line)
        for key in ("eps_0.02", "eps_0.05"):
            if f"[{key}] iter   2" in line:
                started.add(key)
        if len(started) == 2 and not stopped:
            stop_ray_session(cluster.temp_dirs[1])  # the second node goes down mid-search
            stopped = True
    driver.wait(timeout=900)
    out = "".join(lines)
    assert stopped and driver.returncode == 0, out[-5000:]

    (sweep,) = (tmp_path / "runs" / "quickstart").iterdir()
    summary = {row["constraint"]: row for row in json.loads((sweep / "summary.json").read_text())}
    assert set(summary) == {0.02, 0.05}
    assert all(row["status"] in ("searched", "no feasible policy") for row in summary.values()), summary
    assert sum(row["restarts"] for row in summary.values()) >= 1, "no trial was on the lost node"
    assert "restarted from its last checkpoint" in (sweep / "summary.txt").read_text()
    for key in ("eps_0.02", "eps_0.05"):
        history = read_history(sweep, key)
        episodes = [record for line in history for record in line["records"]]
        assert len(episodes) == history[-1]["episodes"] >= 64  # each iteration once, none lost
