"""The deployment examples in docs/deploy validate against what Ray ships."""

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
