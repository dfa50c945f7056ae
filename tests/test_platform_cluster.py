"""Batch submission to a Ray cluster: a head on 127.0.0.1, ``ray job submit --working-dir .``.

Exactly what docs/platform.md tells a user to do, against a throw-away head with its own
ports and temp dir. The head is stopped by the process ids of its own session (not with
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


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def head(home):
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    port, dashboard = free_port(), free_port()
    env = activated_venv_env(home)
    token = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert token.returncode == 0 and (home / ".ray" / "auth_token").is_file(), token.stderr[-2000:]
    start = subprocess.run(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         # Every agent on a port of its own: the defaults (52365 for the job agent) collide with any
         # other Ray on the machine, and the head then never gets a job agent.
         f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
         f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        stop_ray_session(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


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


def test_ray_job_submit_runs_the_quickstart_on_a_cluster_head(head, home, tmp_path):
    env = activated_venv_env(home)
    result = submit(
        [str(BIN / "ray"), "job", "submit", "--address", head, "--working-dir", ".", "--",
         "python", "-m", "platform.launch", "+experiment=quickstart", "ray.address=auto",
         f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={tmp_path / 'cache'}",
         f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
         f"tracking.artifact_location={(tmp_path / 'mlruns').as_uri()}"], env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "succeeded" in result.stdout + result.stderr
    (sweep,) = (tmp_path / "runs" / "quickstart").iterdir()
    summary = json.loads((sweep / "summary.json").read_text())
    assert [row["constraint"] for row in summary] == [0.02, 0.05]
    assert all(64 <= row["episodes"] <= 72 and row["status"] in ("done", "no feasible policy") for row in summary)
