"""The launcher's configuration: every experiment composes, and bad values fail before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from platform.config import REPO_ROOT, ConfigError, env_config, to_plain, validate

CONF = REPO_ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TOY = ["search.env.path=tests.toy_env.ToyPruningEnv",
       "final.finalize.path=tests.toy_env.toy_finalize"]


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def launch(*overrides: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "platform.launch", *overrides], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_the_four_experiments_exist():
    assert {"quickstart", "resnet50", "resnet18", "vgg16"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    import torch

    gpu_without_gpu = experiment.endswith("_gpu") and not torch.cuda.is_available()
    cfg = compose_config(f"+experiment={experiment}", *(["ray.address=auto"] if gpu_without_gpu else []))
    validate(cfg)
    assert Path(cfg.paths.root) == REPO_ROOT
    assert Path(cfg.paths.runs_dir).is_absolute() and Path(cfg.paths.cache_dir).is_absolute()


def test_resnet50_experiment_is_the_issue_setup():
    cfg = compose_config("+experiment=resnet50")
    assert (cfg.model.name, cfg.model.small_input, cfg.data.name, cfg.hw.name, cfg.mapping.granularity) == (
        "resnet50", True, "fashion_mnist", "isaac", "ou_row")


def test_quickstart_uses_two_env_runners_and_two_constraints():
    cfg = compose_config("+experiment=quickstart")
    assert cfg.ray.num_env_runners == 2 and len(cfg.search.constraints) == 2


def test_sac_is_selectable_with_a_warmup():
    cfg = compose_config("+experiment=quickstart", "agent=sac")
    assert cfg.agent.name == "sac" and cfg.agent.sac.warmup_episodes > 0


def test_env_config_carries_the_env_sections_and_the_constraint():
    plain = to_plain(compose_config("+experiment=quickstart"))
    config = env_config(plain, 0.02)
    assert {"model", "data", "hw", "mapping", "env", "paths", "seed", "epsilon"} <= set(config)
    assert config["epsilon"] == 0.02 and "agent" not in config


def test_a_misspelled_key_fails_at_composition_naming_it():
    with pytest.raises(Exception, match="episdes"):
        compose_config("+experiment=quickstart", "search.episdes=3")


def test_a_wrong_type_fails_at_composition_naming_the_key():
    with pytest.raises(Exception, match="num_env_runners"):
        compose_config("+experiment=quickstart", "ray.num_env_runners=two")


def test_a_misspelled_hw_key_fails_naming_it():
    with pytest.raises(Exception, match="xbar_rowz"):
        compose_config("hw.xbar_rowz=64")


def test_an_unknown_key_added_to_an_envs_section_fails_validation_naming_it():
    cfg = compose_config("+experiment=quickstart", "+data.serch_size=3")
    with pytest.raises(ConfigError, match="serch_size"):
        validate(cfg)


@pytest.mark.parametrize("override, message", [
    ("search.constraints=[0.02,1.5]", "every constraint must lie in \\(0, 1\\)"),
    ("search.episodes=0", "search.episodes must be > 0"),
    ("env.reward=flops", "env.reward must be one of"),
    ("agent.name=ddpg", "agent.name must be one of"),
    ("hw.ou_rows=256", "OU rows \\(256\\) exceed crossbar rows \\(128\\)"),
    ("search.constraints=[0.02,0.02]", "search.constraints repeats a value"),
    ("search.env.path=envs.pruning_env.NoSuchEnv", "search.env.path='envs.pruning_env.NoSuchEnv' cannot be imported"),
    ("final.finalize.path=envs.finalize.no_such_function", "final.finalize.path=.* cannot be imported"),
])
def test_impossible_values_fail_validation_with_the_key_and_the_value(override, message):
    cfg = compose_config("+experiment=quickstart", override)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


@pytest.mark.parametrize("key", ["runs_dir", "cache_dir"])
def test_relative_paths_are_refused(key):
    cfg = compose_config(f"paths.{key}=runs")
    with pytest.raises(ConfigError, match=f"paths.{key} must be absolute"):
        validate(cfg)


def test_a_null_cache_dir_means_each_nodes_own_default_cache():
    cfg = compose_config("paths.cache_dir=null")
    validate(cfg)
    assert to_plain(cfg)["paths"]["cache_dir"] is None


def test_a_tracking_server_keeps_its_own_artifacts_and_the_embedded_store_keeps_them_beside_it():
    from platform.reports.tracking import TrackingSettings

    server = TrackingSettings.from_config(to_plain(compose_config("tracking.uri=http://mlflow:5000")))
    local = TrackingSettings.from_config(to_plain(compose_config()))
    assert server.artifact_location is None
    assert local.uri.startswith("sqlite:///") and local.artifact_location.endswith("/mlruns")


def test_the_resolved_config_is_plain_and_json_like():
    plain = to_plain(compose_config("+experiment=resnet50"))
    assert OmegaConf.is_config(plain) is False and isinstance(plain["hw"], dict)


@pytest.mark.slow  # a subprocess
def test_launch_with_a_misspelled_key_exits_before_ray_starts():
    result = launch("+experiment=quickstart", "search.episdes=3", *TOY)
    assert result.returncode != 0
    assert "episdes" in result.stderr
    assert "Ray:" not in result.stdout and "Started a local Ray" not in result.stderr


@pytest.mark.slow  # starts Ray in a subprocess
def test_launch_with_an_impossible_resource_request_fails_fast_with_a_clear_message(tmp_path):
    result = launch("+experiment=quickstart", *TOY, "ray.num_cpus=2", "ray.num_env_runners=8",
                    "ray.num_cpus_per_env_runner=1", f"paths.runs_dir={tmp_path}", "tracking=off")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "one trial asks for 9 CPU but the Ray cluster has 2" in result.stderr
    assert "started (" not in result.stdout  # no trial started


@pytest.mark.slow  # a subprocess
def test_resume_without_an_earlier_sweep_says_what_to_do(tmp_path):
    result = launch("+experiment=quickstart", *TOY, "resume=true", f"paths.runs_dir={tmp_path}", "tracking=off")
    assert result.returncode == 2
    assert "holds no sweep to resume" in result.stderr and "launch without resume=true" in result.stderr


def test_the_main_job_scores_on_the_crossbar_simulator():
    # eval_on_hardware left at null means "on where the preset's ADC is lossless" (envs/settings.py).
    from hw.spec import hw_spec_from_dict

    cfg = compose_config("+experiment=resnet50")
    assert cfg.env.eval_on_hardware is None and cfg.final.eval_on_hardware is None
    assert hw_spec_from_dict(OmegaConf.to_container(cfg.hw, resolve=True)).adc_lossless
    assert not cfg.env.variation.stuck_at_zero and not cfg.env.variation.sigma


def test_the_gpu_experiment_composes_and_is_refused_where_torch_sees_no_gpu():
    import torch

    cfg = compose_config("+experiment=resnet50_gpu")
    assert (cfg.env.device, cfg.env.recovery, cfg.ray.num_gpus_per_env_runner) == ("cuda", "finetune", 0.25)
    assert cfg.search.episodes >= 320 and cfg.final.finetune_epochs >= 1
    assert cfg.env.eval_on_hardware and cfg.final.eval_on_hardware and cfg.env.precision == "fp32"
    if torch.cuda.is_available():
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match="env.device=cuda but this machine has no CUDA device"):
            validate(cfg)
    # On a cluster the driver may have no GPU while its workers do: the check is left to them.
    validate(compose_config("+experiment=resnet50_gpu", "ray.address=auto", "env.device=cuda"))


def test_device_variation_composes_from_the_command_line_and_bad_values_name_the_setting():
    cfg = compose_config("+experiment=resnet20", "env.variation.stuck_at_zero=0.001", "env.variation.draws=3")
    validate(cfg)
    assert (cfg.env.variation.stuck_at_zero, cfg.env.variation.draws) == (0.001, 3)
    with pytest.raises(ConfigError, match="env.variation.draws"):
        validate(compose_config("+experiment=resnet20", "env.variation.draws=0"))
    with pytest.raises(ConfigError, match="stuck_at_zero"):
        validate(compose_config("+experiment=resnet20", "env.variation.stuck_at_zero=2.0"))


def test_the_sensitivity_probe_is_an_agents_setting_and_must_leave_it_episodes():
    from platform.run import LaunchError, search_episodes
    from platform.search.agents import EpisodeShape

    cfg = compose_config("+experiment=resnet20", "search=autoprune_probe_budget", "search.episodes=64")
    validate(cfg)
    assert cfg.env.sensitivity_probe == 0.5 and cfg.env.formulation == "budget" and cfg.search.method == "autoprune"
    with pytest.raises(ConfigError, match="env.sensitivity_probe"):
        validate(compose_config("+experiment=resnet20", "search=tpe", "env.sensitivity_probe=0.5"))
    records = [{}] * 19
    assert search_episodes(cfg, EpisodeShape(19, probe_records=records)) == 44  # 45 left, whole batches of 4
    assert search_episodes(cfg, EpisodeShape(19)) == 64
    with pytest.raises(LaunchError, match="env.sensitivity_probe costs 19"):
        search_episodes(compose_config("+experiment=resnet20", "search=autoprune_probe_budget", "search.episodes=20"),
                        EpisodeShape(19, probe_records=records))
