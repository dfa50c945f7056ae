"""The deployment examples in docs/deploy validate: the launcher YAML against the schema Ray ships, the
KubeRay RayJob against the required fields of KubeRay's RayJob CRD (ray.io/v1)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml

from platform.config import REPO_ROOT

CLUSTER = REPO_ROOT / "docs" / "deploy" / "ray-cluster.yaml"
RAYJOB = REPO_ROOT / "docs" / "deploy" / "rayjob.yaml"
SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def validate_config(config: dict) -> None:
    """The cluster launcher's own check (ray.autoscaler._private.util.validate_config) before defaults are filled."""
    jsonschema.validate(config, SCHEMA)


@pytest.fixture
def cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_the_cluster_launcher_yaml_validates_against_rays_autoscaler_schema(cluster):
    validate_config(cluster)


def test_it_has_a_cpu_head_and_a_gpu_worker_type(cluster):
    types = cluster["available_node_types"]
    assert "GPU" not in types[cluster["head_node_type"]]["resources"]
    assert any(t["resources"].get("GPU", 0) >= 1 and t["max_workers"] > 0 for t in types.values())


def test_every_node_starts_ray_with_token_authentication(cluster):
    commands = cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in commands if c.strip().startswith(("RAY_AUTH", "ray start")))
    assert "~/.ray/auth_token" in cluster["file_mounts"]


def test_the_schema_check_is_real(cluster):
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["gpu_worker"]["max_wokers"] = 4  # a typo Ray must reject
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def required(schema: dict, *names: str) -> dict:
    return {"type": "object", "required": list(names), **schema}


# What the RayJob CRD (ray-operator/config/crd/bases/ray.io_rayjobs.yaml, ray.io/v1) requires of the
# parts this manifest uses, taking the stricter of KubeRay 1.0-1.4 where they differ (rayStartParams
# and the worker replica bounds were required before 1.2). Pod templates need containers with a
# name and an image (the Kubernetes PodSpec the CRD embeds).
POD_TEMPLATE = required({"properties": {"spec": required({"properties": {"containers": {
    "type": "array", "minItems": 1, "items": required({"properties": {
        "name": {"type": "string"}, "image": {"type": "string"}}}, "name", "image")}}}, "containers")}},
    "spec")
RAYJOB_SCHEMA = required({"properties": {
    "apiVersion": {"const": "ray.io/v1"},
    "kind": {"const": "RayJob"},
    "metadata": required({"properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}}},
                         "name"),
    "spec": required({"properties": {
        "entrypoint": {"type": "string"},
        "shutdownAfterJobFinishes": {"type": "boolean"},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "runtimeEnvYAML": {"type": "string"},
        "rayClusterSpec": required({"properties": {
            "headGroupSpec": required({"properties": {
                "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": POD_TEMPLATE}}, "rayStartParams", "template"),
            "workerGroupSpecs": {"type": "array", "items": required({"properties": {
                "groupName": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 0},
                "minReplicas": {"type": "integer", "minimum": 0},
                "maxReplicas": {"type": "integer", "minimum": 0},
                "rayStartParams": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": POD_TEMPLATE}}, "groupName", "minReplicas", "maxReplicas", "rayStartParams",
                "template")}}}, "headGroupSpec")}}, "entrypoint", "rayClusterSpec")}},
    "apiVersion", "kind", "metadata", "spec")


@pytest.fixture
def rayjob() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


def test_the_rayjob_has_every_field_the_crd_requires(rayjob):
    jsonschema.validate(rayjob, RAYJOB_SCHEMA)
    yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])  # KubeRay parses this string as YAML


@pytest.mark.parametrize("path", [("spec", "entrypoint"), ("spec", "rayClusterSpec", "headGroupSpec", "template"),
                                  ("metadata", "name")])
def test_the_rayjob_check_is_real(rayjob, path):
    broken = copy.deepcopy(rayjob)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RAYJOB_SCHEMA)


def test_the_rayjob_runs_the_launch_with_gpu_workers_shared_baselines_and_a_tracking_server(rayjob):
    from hydra import compose, initialize_config_dir

    from platform.config import register_configs, validate

    entrypoint = rayjob["spec"]["entrypoint"].split()
    assert entrypoint[:3] == ["python", "-m", "platform.launch"]
    register_configs()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        validate(compose("config", overrides=entrypoint[3:]))  # every override is a real, valid setting
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    limits = [c["resources"]["limits"] for w in workers for c in w["template"]["spec"]["containers"]]
    assert any(int(limit.get("nvidia.com/gpu", 0)) >= 1 for limit in limits)
