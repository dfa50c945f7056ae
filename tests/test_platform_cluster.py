"""Batch submission to a two-node Ray cluster with a tracking server, from a HOME with no Ray state.

Exactly what docs/platform.md tells a user to do: a head and a second node (its own raylet,
temp dir, HOME and therefore baseline cache, as on another machine), a real ``mlflow server``
on loopback, and ``ray job submit --working-dir .`` of the quickstart. The baseline must be
trained once, on the head, and reach the second node through Ray's object store; every run
must land on the server. Ray is stopped by the process ids of this test's sessions (not with
``ray stop``, which would end every Ray on a shared machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform.config import REPO_ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def activated_venv_env(home: Path) -> dict[str, str]:
    """The environment of a shell with this virtualenv activated and token authentication on, as README
    and docs/platform.md tell a user to set up, in a HOME of its own (empty but for what the
    documented commands write there: a fresh machine has no ~/.ray/auth_token).

    The job's `python` entrypoint is resolved on the head's PATH; CI runs the tests with
    `.venv/bin/python` without activating the venv, so the head must be given it explicitly.
    """
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(BIN.parent),
           "HOME": str(home), "RAY_AUTH_MODE": "token"}
    for inherited in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(inherited, None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(name)] = (ppid, cmdline)
    return found


def stop_ray_session(temp_dir: str, timeout: float = 20.0) -> None:
    """SIGTERM (then SIGKILL) the processes whose command line names temp_dir, and their children."""
    procs = _processes()
    chosen = {pid for pid, (_, cmd) in procs.items() if temp_dir in cmd}
    while True:
        extra = {pid for pid, (ppid, _) in procs.items() if ppid in chosen and pid not in chosen}
        if not extra:
            break
        chosen |= extra
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in chosen:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while time.time() < deadline and any(Path(f"/proc/{p}/cmdline").exists() for p in chosen):
            time.sleep(0.2)


def ray_start(args: list[str], env: dict[str, str], temp_dir: str) -> None:
    """`ray start` with every agent on a free port of its own: the defaults (52365 for the job agent)
    collide with any other Ray on the machine, and a node then never gets a job agent."""
    start = subprocess.run(
        [str(BIN / "ray"), "start", *args, "--node-ip-address=127.0.0.1",
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]


@dataclass
class Cluster:
    dashboard: str  # the head's job API address
    homes: dict[str, Path]  # HOME of the head and of the second node
    address: str  # the head's GCS address, for a driver started on this machine
    temp_dirs: list[str]  # each node's Ray temp dir: stop_ray_session(temp_dirs[1]) takes the second node down


@pytest.fixture
def cluster(tmp_path):
    """A head (2 CPUs) and a second node (2 CPUs) on this machine, each with its own HOME and temp dir."""
    homes = {name: tmp_path / f"home-{name}" for name in ("head", "node")}
    for folder in homes.values():
        folder.mkdir()
    temp_dirs = [tempfile.mkdtemp(prefix="ray-", dir="/tmp") for _ in homes]  # socket paths stay < 107 bytes
    port, dashboard = free_port(), free_port()
    head_env, node_env = activated_venv_env(homes["head"]), activated_venv_env(homes["node"])
    try:
        token = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], env=head_env,
                               capture_output=True, text=True, timeout=120)
        assert token.returncode == 0 and (homes["head"] / ".ray" / "auth_token").is_file(), token.stderr[-2000:]
        ray_start(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=true",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"], head_env, temp_dirs[0])
        # The second machine gets the token the way docs/platform.md says: a copy in its ~/.ray.
        (homes["node"] / ".ray").mkdir()
        shutil.copy(homes["head"] / ".ray" / "auth_token", homes["node"] / ".ray" / "auth_token")
        ray_start([f"--address=127.0.0.1:{port}", "--num-cpus=2"], node_env, temp_dirs[1])
        yield Cluster(f"http://127.0.0.1:{dashboard}", homes, f"127.0.0.1:{port}", temp_dirs)
    finally:
        for temp_dir in reversed(temp_dirs):
            stop_ray_session(temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on loopback with a SQLite backend and proxied artifacts, as a team would run it
    (with PostgreSQL in place of SQLite). Started outside the repo: its workers would import the
    project's platform/ in place of the standard module."""
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
         str(folder / "artifacts")],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("w"), start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:  # refused, reset, or a read that timed out on a loaded machine
                pass
            assert time.time() < deadline and server.poll() is None, (folder / "server.log").read_text()[-2000:]
            time.sleep(1)
        yield uri
    finally:
        stop_process_group(server)


def stop_process_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM a server's process group, then SIGKILL it if it has not exited within `grace` seconds
    (an `mlflow server` on a loaded machine can take longer than that to shut down)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


AGENT_NOT_READY = "No available agent to submit job"


def submit(command: list[str], env: dict[str, str], attempts: int = 60) -> subprocess.CompletedProcess:
    """`ray job submit`, retried while the head's job agent is still starting (on a loaded 2-core machine
    it took more than two minutes after `ray start` returned); that refusal submits nothing, so a retry
    is safe."""
    for _ in range(attempts):
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode == 0 or AGENT_NOT_READY not in result.stdout + result.stderr:
            return result
        time.sleep(5)
    return result


def cache_entries(home: Path) -> dict[str, dict]:
    """The baseline cache entries under a node's default cache (envs/workload/baseline.py default_cache_dir)."""
    folder = home / ".cache" / "auto-prune" / "baselines"
    return {meta.parent.name: json.loads(meta.read_text()) for meta in folder.glob("*/meta.json")}


def test_two_node_cluster_trains_the_baseline_once_and_tracks_on_the_server(cluster, tracking_server, tmp_path):
    client_home = tmp_path / "home-client"
    client_home.mkdir()
    (client_home / ".ray").mkdir()
    shutil.copy(cluster.homes["head"] / ".ray" / "auth_token", client_home / ".ray" / "auth_token")
    result = submit(
        [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--working-dir", ".", "--",
         "python", "-m", "platform.launch", "+experiment=quickstart", "ray.address=auto",
         f"paths.runs_dir={tmp_path / 'runs'}", "paths.cache_dir=null",
         f"tracking.uri={tracking_server}", "tracking.experiment=two-nodes"], activated_venv_env(client_home))
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "succeeded" in output, result.stdout[-4000:] + result.stderr[-2000:]
    assert "baseline published to every node" in output

    # Trained once, on the head; the second node holds the same entry (same checkpoint, same
    # creation time), fetched rather than trained again.
    head, node = cache_entries(cluster.homes["head"]), cache_entries(cluster.homes["node"])
    assert len(head) == 1 and head == node, (head, node)
    assert next(iter(head.values()))["train_seconds"] > 0

    (sweep,) = (tmp_path / "runs" / "quickstart").iterdir()
    summary = json.loads((sweep / "summary.json").read_text())
    assert [row["constraint"] for row in summary] == [0.02, 0.05]
    assert all(64 <= row["episodes"] <= 72 and row["status"] in ("done", "no feasible policy") for row in summary)

    from mlflow.tracking import MlflowClient

    server = MlflowClient(tracking_uri=tracking_server)
    experiment = server.get_experiment_by_name("two-nodes")
    runs = server.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert all(run.info.status == "FINISHED" for run in runs)
    assert {c.data.tags["epsilon"] for c in children} == {"0.02", "0.05"}
    assert "summary.json" in {a.path for a in server.list_artifacts(parents[0].info.run_id)}
    for child in children:
        assert "history.jsonl" in {a.path for a in server.list_artifacts(child.info.run_id)}
        assert child.data.metrics["final_episodes"] >= 64
