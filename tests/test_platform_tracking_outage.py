"""A tracking server that goes away mid-search (slow: local Ray, a real `mlflow server` on loopback).

The search must not fail, and nothing it logged may be dropped: what the server missed waits in
the sweep's outbox and lands, in order, once `python -m platform.reports.outbox <sweep>` runs
against the server brought back on the same store.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from platform.config import REPO_ROOT
from tests.test_platform_cluster import BIN, free_port, stop_process_group
from tests.test_platform_sweep import TOY, sweep_dir

pytestmark = pytest.mark.slow


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on loopback with a SQLite store in `folder` (outside the repo, whose platform/
    would shadow the standard module in its workers); returns once it answers."""
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination",
         str(folder / "artifacts")],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=(folder / "server.log").open("a"), start_new_session=True)
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:  # refused, reset, or a read that timed out on a loaded machine
            pass
        assert time.time() < deadline and server.poll() is None, (folder / "server.log").read_text()[-2000:]
        time.sleep(1)


def stop_server(server: subprocess.Popen) -> None:
    stop_process_group(server)


def test_a_search_outlives_its_tracking_server_and_the_outbox_sends_everything_later(tmp_path):
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(folder, port)
    args = [sys.executable, "-m", "platform.launch", *TOY, f"paths.runs_dir={tmp_path / 'runs'}",
            f"tracking.uri={uri}", "search.max_concurrent_trials=1"]
    launch = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in launch.stdout:
            lines.append(line)
            if "[eps_0.02] iter   2" in line and server.poll() is None:
                stop_server(server)
        launch.wait(timeout=600)
    finally:
        if server.poll() is None:
            stop_server(server)
    out = "".join(lines)
    assert launch.returncode == 0, out[-4000:]
    assert "did not answer" in out and "python -m platform.reports.outbox" in out
    sweep = sweep_dir(tmp_path)
    assert (sweep / "mlflow_outbox.jsonl").is_file()

    server = start_server(folder, port)
    try:
        sent = subprocess.run([sys.executable, "-m", "platform.reports.outbox", str(sweep)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert not (sweep / "mlflow_outbox.jsonl").exists()
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("auto-prune").experiment_id])
        children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name)
        assert [r.info.run_name for r in children] == ["eps_0.02", "eps_0.05"]
        assert all(r.info.status == "FINISHED" for r in runs) and len(runs) == 3
        for run in children:
            steps = client.get_metric_history(run.info.run_id, "episodes")
            assert max(m.value for m in steps) >= 64 and len({m.step for m in steps}) == len(steps)
            assert "final.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    finally:
        stop_server(server)
