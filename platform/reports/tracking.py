"""MLflow tracking from the driver: one parent run per launch, one child run per constraint.

Ray's stock MLflowLoggerCallback logs hundreds of params and metrics one SQLite write
each and uploads whole trial folders (docs/platform.md), so the driver logs a chosen
subset itself with explicit run ids (no global active run). The run ids of a sweep live
in ``<sweep>/mlflow.json``, so ``resume=true`` appends to the same parent and children.
Every write is an operation that waits in the sweep's outbox while the server does not answer
(platform/reports/outbox.py). Longer than most modules: the settings, the params and tags worth
logging, and the one class that writes them belong together.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.files import atomic_write
from platform.reports.outbox import PENDING, RETRY_SECONDS, Outbox, is_unreachable

STATE_FILE = "mlflow.json"
MAX_PARAM_CHARS = 500


@dataclass(frozen=True)
class TrackingSettings:
    """Where MLflow writes; plain values so Tune can pickle the callbacks that hold them."""

    enabled: bool
    uri: str
    artifact_location: str | None  # None: the tracking server chooses (its --artifacts-destination)
    experiment: str

    @classmethod
    def from_config(cls, plain: dict[str, Any]) -> TrackingSettings:
        tracking, root = plain["tracking"], Path(plain["paths"]["root"])
        uri = tracking["uri"] or f"sqlite:///{root / 'mlflow.db'}"
        artifacts = tracking["artifact_location"]
        if artifacts is None and not is_server(uri):  # a local store keeps artifacts beside it
            artifacts = (root / "mlruns").as_uri()
        return cls(enabled=bool(tracking["enabled"]), uri=uri, artifact_location=artifacts,
                   experiment=tracking["experiment"])


MODEL_ARTIFACT = "pruned_model"  # the logged model's name in a child run


def is_server(uri: str) -> bool:
    """A tracking server (`mlflow server`): other nodes and users reach it; it stores the artifacts it is sent."""
    return uri.startswith(("http://", "https://"))


# The config keys worth a param: enough to tell two runs apart, far fewer than the whole tree.
PARAM_SECTIONS = {
    "model": None, "data": None, "mapping": None, "env": None, "final": None,
    "hw": ("name", "xbar_rows", "xbar_cols", "cell_bits", "weight_bits", "input_bits", "dac_bits",
           "ou_rows", "ou_cols", "adc_bits", "signed", "area_scope"),
    "agent": ("name", "lr", "gamma", "lambda_", "hidden", "episodes_per_batch"),
    "search": ("name", "method", "seed", "constraints", "episodes", "share_episodes"),
    "ray": ("num_env_runners", "num_cpus_per_env_runner", "num_cpus_for_main_process"),
}
# Keys inside those sections that say how, not what: how often to print, which function finalizes, whether
# an ONNX copy is written, threads. MLflow takes at most 100 params a batch; every key is still in the
# run's config.yaml artifact.
PARAM_SKIPPED = ("model.recipe.log_every", "final.finalize.", "final.onnx", "final.torch_threads",
                 "model.recipe.threads")


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_params(plain: dict[str, Any]) -> dict[str, str]:
    """A flattened, useful subset of the resolved config (tens of params, not hundreds)."""
    params: dict[str, Any] = {"seed": plain.get("seed")}
    for section, keys in PARAM_SECTIONS.items():
        values = plain.get(section) or {}
        if keys is not None:
            values = {k: values[k] for k in keys if k in values}
        params.update(flatten({section: values}))
    agent = plain.get("agent", {})
    if agent.get("name") in agent:
        params.update(flatten({f"agent.{agent['name']}": agent[agent["name"]]}))
    return {k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items() if not k.startswith(PARAM_SKIPPED)}


def git_commit(root: str | Path) -> str:
    """HEAD's commit (``-dirty`` when the tree has changes); ``unknown`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_tags(plain: dict[str, Any]) -> dict[str, str]:
    return {
        "model": str(plain["model"].get("name", "?")),
        "data": str(plain["data"].get("name", "?")),
        "hw": str(plain["hw"].get("name", "?")),
        "granularity": str(plain["mapping"].get("granularity", "?")),
        "agent": str(plain["agent"]["name"]),
        "method": str(plain["search"].get("method", "autoprune")),
        "git_commit": git_commit(plain["paths"]["root"]),
    }


@dataclass
class Tracker:
    """MLflow runs of one sweep; a no-op when tracking is disabled.

    Every write is one operation sent through `_send`: at once while the server answers, into the
    sweep's outbox while it does not (platform/reports/outbox.py), so a tracking server that goes
    away never fails the search and nothing it missed is dropped.
    """

    settings: TrackingSettings
    sweep_dir: Path
    parent_id: str | None = None
    children: dict[str, str] = field(default_factory=dict)
    _client: Any = None
    _experiment_id: str | None = None
    _last_retry: float = 0.0
    _warned: bool = False

    def __post_init__(self) -> None:
        if is_server(self.settings.uri):  # fail fast: MLflow's default retries wait minutes per call
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.sweep_dir)

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.settings.uri)
        return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.settings.experiment)
            self._experiment_id = found.experiment_id if found else self.client.create_experiment(
                self.settings.experiment, artifact_location=self.settings.artifact_location)
        return self._experiment_id

    def where_to_look(self, port: int = 5000) -> list[str]:
        """How to open this sweep's runs: the `mlflow ui` command for a local store, and the direct link
        to the runs table (MLflow 3 otherwise opens an experiment in its GenAI view)."""
        if not self.settings.enabled or self._experiment_id is None:
            return []
        runs = f"#/experiments/{self._experiment_id}/runs"
        if is_server(self.settings.uri):
            return [f"MLflow runs: {self.settings.uri.rstrip('/')}/{runs}"]
        return [f"MLflow UI: mlflow ui --backend-store-uri {self.settings.uri} --port {port}",
                f"  then open http://127.0.0.1:{port}/{runs}"]

    # ------------------------------------------------------------------ run ids and their state
    def _state_path(self) -> Path:
        return self.sweep_dir / STATE_FILE

    def _state(self) -> dict[str, Any]:
        return json.loads(self._state_path().read_text()) if self._state_path().is_file() else {}

    def load(self) -> Tracker:
        """Pick up the run ids of an earlier launch of this sweep (resume)."""
        state = self._state()
        if state:
            self.parent_id, self.children = state.get("parent"), dict(state.get("children", {}))
        return self

    def _save(self, resolved: dict[str, str] | None = None) -> None:
        state = {"parent": self.parent_id, "children": self.children,
                 "resolved": {**self._state().get("resolved", {}), **(resolved or {})}}
        atomic_write(self._state_path(), lambda path: path.write_text(json.dumps(state, indent=1)))

    def _resolve(self, run: str) -> str:
        """A run id, or the real id of a run created from the outbox after its placeholder was handed out."""
        if not run.startswith(PENDING):
            return run
        resolved = self._state().get("resolved", {})
        if run not in resolved:
            raise RuntimeError(f"tracking run {run} was never created: {self.outbox.path} lost its creation")
        return resolved[run]

    def _create(self, key: str, name: str, tags: dict[str, str], parent: str | None) -> str:
        placeholder = PENDING + key
        if key == "parent":
            self.parent_id = placeholder
        else:
            self.children[key] = placeholder
        self._save()
        self._send({"op": "create_run", "key": key, "placeholder": placeholder, "name": name, "tags": tags,
                    "parent": parent})
        return self.parent_id if key == "parent" else self.children[key]

    # ------------------------------------------------------------------ sending
    def _send(self, operation: dict[str, Any]) -> None:
        """Send now, or queue behind what already waits; a server that does not answer queues it."""
        outbox = self.outbox
        if outbox.pending():
            if time.time() - self._last_retry >= RETRY_SECONDS:
                self._last_retry = time.time()
                outbox.drain(self.send_now)
            if outbox.pending():
                outbox.append(operation)
                return
        try:
            self.send_now(operation)
        except Exception as error:
            if not is_unreachable(error):
                raise
            self._last_retry = time.time()
            outbox.append(operation)
            if not self._warned:
                self._warned = True
                print(f"[tracking] {self.settings.uri} did not answer ({type(error).__name__}); the search goes on "
                      f"and tracking operations wait in {outbox.path}", flush=True)

    def send_now(self, op: dict[str, Any]) -> None:
        """Carry out one operation against the server (raises when it does not answer)."""
        from mlflow.entities import Metric, Param

        kind = op["op"]
        if kind == "create_run":
            tags = dict(op["tags"])
            if op["parent"]:
                tags["mlflow.parentRunId"] = self._resolve(op["parent"])
            run_id = self.client.create_run(self._experiment(), run_name=op["name"], tags=tags).info.run_id
            self.load()
            if op["key"] == "parent":
                self.parent_id = run_id
            else:
                self.children[op["key"]] = run_id
            self._save({op["placeholder"]: run_id})
            return
        run_id = self._resolve(op["run"])
        if kind == "log_batch":
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in op.get("params", [])],
                                  metrics=[Metric(k, v, ts, step) for k, v, ts, step in op.get("metrics", [])])
        elif kind == "set_tag":
            self.client.set_tag(run_id, op["key"], op["value"])
        elif kind == "update_run":
            self.client.update_run(run_id, status=op["status"])
        elif kind == "log_artifact":
            if Path(op["path"]).is_dir():
                self.client.log_artifacts(run_id, op["path"], op["artifact_path"])
            else:
                self.client.log_artifact(run_id, op["path"], op["artifact_path"])
        elif kind == "log_model":
            self._log_model_now(run_id, Path(op["folder"]))
        elif kind == "set_terminated":
            self.client.set_terminated(run_id, status=op["status"])
        else:
            raise ValueError(f"unknown tracking operation {kind!r} in {self.outbox.path}")

    def flush(self) -> int:
        """Try to send what waits (at the end of a launch); returns how many operations are still left."""
        if not self.settings.enabled or not self.outbox.pending():
            return 0
        return self.outbox.drain(self.send_now)

    # ------------------------------------------------------------------ what callers log
    def start_parent(self, name: str, params: dict[str, str], tags: dict[str, str]) -> str | None:
        if not self.settings.enabled:
            return None
        self.load()
        if self.parent_id is None:
            self._create("parent", name, tags, None)
            self.log_params(self.parent_id, params)
        else:
            self._send({"op": "update_run", "run": self.parent_id, "status": "RUNNING"})
        return self.parent_id

    def child(self, key: str, params: dict[str, str], tags: dict[str, str]) -> str | None:
        """The child run of constraint ``key``, created on first use."""
        if not self.settings.enabled:
            return None
        self.load()
        if key not in self.children:
            assert self.parent_id is not None, "start_parent before child"
            self._create(key, key, tags, self.parent_id)
            self.log_params(self.children[key], params)
        return self.children[key]

    def log_params(self, run_id: str | None, params: dict[str, str]) -> None:
        if run_id is None:
            return
        items = [[k, v] for k, v in params.items()]
        for start in range(0, len(items), 100):
            self._send({"op": "log_batch", "run": run_id, "params": items[start:start + 100]})

    def log_metrics(self, run_id: str | None, metrics: dict[str, float], step: int) -> None:
        if run_id is None:
            return
        now = int(time.time() * 1000)
        items = [[k, float(v), now, step] for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(float(v))]
        if items:
            self._send({"op": "log_batch", "run": run_id, "metrics": items})

    def set_tags(self, run_id: str | None, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            if run_id is not None:
                self._send({"op": "set_tag", "run": run_id, "key": key, "value": value})

    def log_artifact(self, run_id: str | None, path: Path, artifact_path: str | None = None) -> None:
        if run_id is not None:
            self._send({"op": "log_artifact", "run": run_id, "path": str(path), "artifact_path": artifact_path})

    def log_model(self, run_id: str | None, trial_folder: Path) -> None:
        """The trial's pruned model as an MLflow model (pytorch flavour, artifact `pruned_model`)."""
        if run_id is not None:
            self._send({"op": "log_model", "run": run_id, "folder": str(trial_folder)})

    def _log_model_now(self, run_id: str, trial_folder: Path) -> None:
        """Loaded and checked from its folder first, so the UI lists it and mlflow.pytorch.load_model
        returns it. MLflow stores it as a traced graph (its pt2 format), from a batch of 2 example images."""
        import mlflow
        import mlflow.pytorch
        import torch

        from envs.model_artifact import load_pruned_model

        loaded = load_pruned_model(trial_folder)
        mlflow.set_tracking_uri(self.settings.uri)
        with mlflow.start_run(run_id=run_id):
            # Requirements given, not inferred: inference re-imports the model in a subprocess (slow here).
            example = torch.zeros((2, *loaded.card.input_shape[1:])).numpy()
            mlflow.pytorch.log_model(loaded.model, name=MODEL_ARTIFACT, input_example=example,
                                     pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])

    def end(self, run_id: str | None, status: str = "FINISHED") -> None:
        if run_id is not None:
            self._send({"op": "set_terminated", "run": run_id, "status": status})
