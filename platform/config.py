"""Structured configs for the launcher: a misspelled key or a wrong type fails at composition.

Hydra merges every YAML file of conf/ onto the dataclasses below (registered in the
ConfigStore as ``auto_prune_schema``, the first entry of conf/config.yaml's defaults),
so ``search.episdes=3`` or ``ray.num_env_runners=two`` is rejected, naming the key,
before Ray starts. ``validate`` then checks the values that a type cannot express
(constraints inside (0, 1), a known agent, ...). The sections model/data/mapping belong
to envs/ and mapping/: they are typed as open dicts here and validated by their owners
when the environment is built (the launcher builds one in the driver before Ray starts).

Longer than this project's usual 250 lines on purpose: it is the launcher's whole schema, one
dataclass per config group and the checks their types cannot express, read as one document.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from envs.rewards import REWARDS
from envs.settings import EnvSection, check_constraints
from hw.spec import HardwareSpec, HardwareSpecError, hw_spec_from_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("ppo", "sac")
# Search methods (conf/search/<name>.yaml): the RL agent with the crossbar reward (the project's
# method) and the baselines it is compared against on the same harness (platform/search/methods/).
RL_METHODS = ("autoprune", "amc")
PROPOSER_METHODS = ("uniform", "pim_prune", "sre_uniform", "random", "tpe")
METHODS = RL_METHODS + PROPOSER_METHODS
DETERMINISTIC_METHODS = ("uniform", "pim_prune", "sre_uniform")  # their result does not depend on search.seed
BUDGET_METHODS = ("autoprune", "random", "tpe")  # the searchers env.formulation=budget applies to
SEARCH_DIR = Path(__file__).resolve().parent.parent / "conf" / "search"


def search_method(choice: str) -> str:
    """The search.method a conf/search/ choice runs: `<method>_budget` runs <method> under a budget,
    `<method>_probe_budget` also with the sensitivity probe."""
    return choice.removesuffix("_budget").removesuffix("_probe")


def search_choices() -> tuple[str, ...]:
    """The names `search=<name>` (and compare.methods) accept: the methods and their variants in conf/search/."""
    return tuple(sorted(path.stem for path in SEARCH_DIR.glob("*.yaml") if path.stem != "default"))


class ConfigError(ValueError):
    """A configuration value that composes but cannot run; the message names the key."""


@dataclass
class PathsConfig:
    """Absolute paths: Tune moves trial processes into its own working directories."""

    root: str = "${repo_root:}"
    # Trained dense baselines (envs/workload/baseline.py); null: each node's own default cache
    # ($AUTO_PRUNE_CACHE/baselines or ~/.cache/auto-prune/baselines), e.g. on a cluster without shared disk.
    cache_dir: str | None = "${paths.root}/.cache/baselines"
    runs_dir: str = "${paths.root}/runs"


@dataclass
class PPOParams:
    """Clipped PPO, the agent Distiller's AMC port found to work (docs/platform.md)."""

    minibatch_size: int = 128
    num_epochs: int = 10
    clip_param: float = 0.2
    entropy_coeff: float = 0.0
    vf_loss_coeff: float = 1.0
    vf_clip_param: float = 10.0
    grad_clip: float | None = 0.5


@dataclass
class SACParams:
    """SAC; its warm-up of random episodes plays the role of AMC's 100 random episodes."""

    warmup_episodes: int = 8
    train_batch_size: int = 256
    tau: float = 0.005
    initial_alpha: float = 1.0
    actor_lr: float = 3.0e-4
    critic_lr: float = 3.0e-4
    alpha_lr: float = 3.0e-4
    replay_capacity: int = 100_000
    n_step: int = 1


@dataclass
class AgentConfig:
    """The RL agent; gamma = lambda = 1 so the terminal reward credits every layer's action."""

    name: str = "ppo"
    lr: float = 3.0e-4
    gamma: float = 1.0
    lambda_: float = 1.0
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    episodes_per_batch: int = 8
    # Exploration prior (envs/pruning_env.py ActionPrior): a fresh policy proposes ratios ~ N(mean, std),
    # in ratio units; null mean: RLlib's normalised actions over [0, env.pmax] (mean pmax/2, std ~pmax/2).
    prior_mean: float | None = 0.25
    prior_std: float = 0.12
    ppo: PPOParams = field(default_factory=PPOParams)
    sac: SACParams = field(default_factory=SACParams)


@dataclass
class Loadable:
    """A class or function the launcher loads by its dotted path, the Hydra way:
    ``hydra.utils.instantiate`` calls ``_target_`` (``hydra.utils.get_class`` or ``get_method``)
    with ``path`` and returns the object itself. Override ``<key>.path=package.module.Name``."""

    _target_: str
    path: str


def env_loader(path: str) -> Loadable:
    return Loadable("hydra.utils.get_class", path)


def function_loader(path: str) -> Loadable:
    return Loadable("hydra.utils.get_method", path)


def load(node: Any, setting: str) -> Any:
    """The object a Loadable config node names; a ConfigError names the setting when it does not load."""
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except Exception as error:  # Hydra wraps import errors in InstantiationException
        path = node.get("path") if hasattr(node, "get") else node
        raise ConfigError(f"{setting}.path={path!r} cannot be imported: {error}") from error


@dataclass
class SearchConfig:
    """The Tune sweep: one trial per accuracy-loss constraint, searched by ``method``.

    A method's file (conf/search/<method>.yaml) also sets the reward and granularity it is
    defined by (``amc``: AMC's FLOPs reward in env.reward; ``pim_prune``: crossbar rows in
    mapping.granularity); command-line overrides still win.
    """

    name: str = "auto_prune"
    method: str = "autoprune"  # one of METHODS
    seed: int | None = None  # the agent's / searcher's seed; None: the top-level seed
    probe_ratio: float = 0.5  # pim_prune: the ratio each layer's sensitivity is probed at
    bisection_tolerance: float = 0.01  # uniform, sre_uniform, pim_prune: stop when the bracket is this narrow
    tpe_startup_episodes: int = 10  # tpe: random episodes before TPE models the reward
    env: Loadable = field(default_factory=lambda: env_loader("envs.pruning_env.PruningEnv"))  # the gymnasium env
    constraints: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.05])
    episodes: int = 300
    share_episodes: bool = True  # each constraint's finalists come from every trial's episodes (relabelled)
    max_concurrent_trials: int | None = None  # None: as many as the cluster's CPUs allow
    checkpoint_frequency: int = 5
    keep_checkpoints: int = 2
    max_trial_failures: int = 3  # a trial that dies (a lost node) restarts from its last checkpoint this often
    resume_from: str | None = None  # a sweep folder under runs/<name>/; None: the newest


@dataclass
class TrackingConfig:
    """MLflow; the default is an embedded SQLite store in the project folder."""

    enabled: bool = True
    uri: str | None = None  # None: sqlite:///<repo>/mlflow.db
    artifact_location: str | None = None  # None: <repo>/mlruns
    experiment: str = "auto-prune"


@dataclass
class RayConfig:
    """Where the trials run and what each one asks for."""

    address: str | None = None  # None: a local Ray (or RAY_ADDRESS when set); "auto": join
    num_cpus: int | None = None  # local Ray only; None: the machine's CPUs
    num_env_runners: int = 2
    num_cpus_per_env_runner: float = 0.5
    num_cpus_for_main_process: float = 1.0
    num_gpus_per_env_runner: float = 0.0  # fractional: several env runners (or proposer trials) share one GPU
    include_dashboard: bool = False
    restart_failed_env_runners: bool = True
    max_env_runner_restarts: int = 100
    sample_timeout_s: float = 1800.0
    log_to_driver: bool = True


@dataclass
class FinalConfig:
    """After the search: fine-tune the best feasible policy, test, map and export it."""

    enabled: bool = True
    finalize: Loadable = field(default_factory=lambda: function_loader("envs.finalize.finalize_policy"))
    recheck: int = 3  # re-score the best few feasible policies on the whole search split; 0: trust the search
    recheck_bisect: bool = True  # when all of those fail: bisect down the search's other feasible policies
    finetune_epochs: float = 1.0  # fractions fine-tune on part of an epoch
    finetune_lr: float = 0.01
    batch_size: int = 128
    eval_on_hardware: bool | None = None  # None: as env.eval_on_hardware
    torch_threads: int | None = None  # driver threads while finalizing; None: all cores
    onnx: bool = True  # also export the pruned model as model/model.onnx (envs/model_artifact.py)


@dataclass
class CompareConfig:
    """``python -m platform.compare``: every method at the same constraints and seeds (one table)."""

    methods: list[str] = field(default_factory=lambda: ["uniform", "pim_prune", "sre_uniform", "amc", "random",
                                                          "tpe", "autoprune"])
    constraints: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.02])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # search.seed: the baseline is trained once
    reference: str = "pim_prune"  # the method the "vs" columns divide by
    deterministic_once: bool = True  # uniform, sre_uniform and pim_prune ignore the seed: run them once
    name: str | None = None  # the comparison's folder under runs/compare/; None: search.name
    rebuild_from: str | None = None  # a comparison folder: re-aggregate its runs.json, launch nothing
    merge_from: list[str] = field(default_factory=list)  # comparison folders: one table of all their runs (new folder)
    reprice: bool = False  # with rebuild_from: price its policies again under the current hw (reports/reprice.py)
    resume: bool = False  # each launch continues the newest sweep of its name where one exists, else starts one


@dataclass
class Config:
    """The whole launch configuration (conf/config.yaml composes onto it)."""

    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    hw: HardwareSpec = field(default_factory=HardwareSpec)
    mapping: dict[str, Any] = field(default_factory=dict)
    env: EnvSection = field(default_factory=EnvSection)
    agent: AgentConfig = field(default_factory=AgentConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    seed: int = 0
    resume: bool = False


def search_seed(cfg: DictConfig) -> int:
    """The seed of the agent or searcher; the top-level seed (data, baseline) stays fixed across it."""
    return int(cfg.search.seed if cfg.search.seed is not None else cfg.seed)


def register_configs() -> None:
    """Register the schema and the ``repo_root`` resolver (idempotent)."""
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    ConfigStore.instance().store(name="auto_prune_schema", node=Config)


register_configs()


def _check(check, *args) -> None:
    """Run an owner's check (envs/, mapping/), turning its ValueError into a ConfigError."""
    try:
        check(*args)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def resolve_address(address: str | None) -> str | None:
    """``ray.address`` if set, else ``RAY_ADDRESS`` (set by ``ray job submit``), else None (local)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _check_local_cuda(cfg: DictConfig) -> None:
    """env.device=cuda on a local Ray whose machine has no GPU fails now, not after Ray and the baseline
    started. (On a cluster the driver may have no GPU while its workers do: the env checks there.)"""
    if str(cfg.env.device).startswith("cuda") and resolve_address(cfg.ray.address) is None:
        import torch

        _require(torch.cuda.is_available(),
                 f"env.device={cfg.env.device} but this machine has no CUDA device that torch can use: set "
                 "env.device=cpu (or auto), or run on a machine or cluster with a GPU")


def validate(cfg: DictConfig) -> None:
    """Check what types cannot: ranges, names and the hardware spec. Raises ConfigError."""
    search, agent, env, ray_cfg = cfg.search, cfg.agent, cfg.env, cfg.ray
    _check(check_constraints, list(search.constraints), "search.constraints")
    load(search.env, "search.env")  # loaded now, so that a wrong path fails before Ray starts, not after a search
    load(cfg.final.finalize, "final.finalize")
    _require(search.episodes > 0, f"search.episodes must be > 0, got {search.episodes}")
    _require(search.method in METHODS, f"search.method must be one of {METHODS}, got {search.method!r}")
    _require(0.0 < search.probe_ratio < 1.0, f"search.probe_ratio must lie in (0, 1), got {search.probe_ratio}")
    _require(0.0 < search.bisection_tolerance < 1.0,
             f"search.bisection_tolerance must lie in (0, 1), got {search.bisection_tolerance}")
    _require(search.tpe_startup_episodes >= 1,
             f"search.tpe_startup_episodes must be >= 1, got {search.tpe_startup_episodes}")
    _require(search.max_trial_failures >= 0,
             f"search.max_trial_failures must be >= 0, got {search.max_trial_failures}")
    _require(search.checkpoint_frequency >= 0,
             f"search.checkpoint_frequency must be >= 0, got {search.checkpoint_frequency}")
    _require(search.max_concurrent_trials is None or search.max_concurrent_trials > 0,
             f"search.max_concurrent_trials must be > 0 or null, got {search.max_concurrent_trials}")
    _require(agent.name in AGENTS, f"agent.name must be one of {AGENTS}, got {agent.name!r}")
    _require(agent.episodes_per_batch > 0,
             f"agent.episodes_per_batch must be > 0, got {agent.episodes_per_batch}")
    _require(0.0 <= agent.gamma <= 1.0, f"agent.gamma must lie in [0, 1], got {agent.gamma}")
    _require(agent.lr > 0, f"agent.lr must be > 0, got {agent.lr}")
    _require(len(agent.hidden) > 0 and all(h > 0 for h in agent.hidden),
             f"agent.hidden must list positive layer widths, got {list(agent.hidden)}")
    _require(env.reward in REWARDS, f"env.reward must be one of {REWARDS}, got {env.reward!r}")
    _require(env.formulation != "budget" or search.method in BUDGET_METHODS,
             f"env.formulation=budget holds a searcher to a crossbar budget; search.method={search.method!r} "
             f"finds its own largest feasible ratio: use one of {BUDGET_METHODS} or env.formulation=constraint")
    _require(0.0 < env.pmax < 1.0, f"env.pmax must lie in (0, 1), got {env.pmax}")
    _require(env.sensitivity_probe is None or search.method in RL_METHODS,
             f"env.sensitivity_probe feeds the RL agent's observation and exploration prior; search.method="
             f"{search.method!r} would not use it but pay its episodes: set env.sensitivity_probe=null")
    _require(agent.prior_mean is None or 0.0 <= agent.prior_mean <= env.pmax,
             f"agent.prior_mean must be a ratio in [0, env.pmax={env.pmax}] or null, got {agent.prior_mean}")
    _require(agent.prior_std > 0, f"agent.prior_std must be > 0 (a ratio's spread), got {agent.prior_std}")
    if search.method in RL_METHODS and agent.name == "sac":
        _require(agent.sac.warmup_episodes < search.episodes,
                 f"agent.sac.warmup_episodes={agent.sac.warmup_episodes} leaves no episode to learn from within "
                 f"search.episodes={search.episodes}: lower the warm-up or raise the budget")
    _require(env.torch_threads > 0, f"env.torch_threads must be > 0, got {env.torch_threads}")
    _check_local_cuda(cfg)
    _require(ray_cfg.num_env_runners >= 0, f"ray.num_env_runners must be >= 0, got {ray_cfg.num_env_runners}")
    _require(ray_cfg.num_cpus_per_env_runner > 0,
             f"ray.num_cpus_per_env_runner must be > 0, got {ray_cfg.num_cpus_per_env_runner}")
    _require(ray_cfg.num_gpus_per_env_runner >= 0,
             f"ray.num_gpus_per_env_runner must be >= 0, got {ray_cfg.num_gpus_per_env_runner}")
    _require(ray_cfg.num_cpus_for_main_process > 0,
             f"ray.num_cpus_for_main_process must be > 0 (0 breaks Tune's placement group), "
             f"got {ray_cfg.num_cpus_for_main_process}")
    _require(ray_cfg.num_cpus is None or ray_cfg.num_cpus > 0,
             f"ray.num_cpus must be > 0, got {ray_cfg.num_cpus}")
    _require(cfg.final.recheck >= 0, f"final.recheck must be >= 0, got {cfg.final.recheck}")
    _require(cfg.final.finetune_epochs >= 0,
             f"final.finetune_epochs must be >= 0, got {cfg.final.finetune_epochs}")
    _require(Path(cfg.paths.root).is_absolute(), f"paths.root must be absolute, got {cfg.paths.root!r}")
    _require(Path(cfg.paths.runs_dir).is_absolute(),
             f"paths.runs_dir must be absolute (Tune moves trial working directories), got {cfg.paths.runs_dir!r}")
    # null: every node resolves its own default cache (envs/workload/baseline.py default_cache_dir).
    _require(cfg.paths.cache_dir is None or Path(cfg.paths.cache_dir).is_absolute(),
             f"paths.cache_dir must be absolute (Tune moves trial working directories) or null (each node's "
             f"own default cache), got {cfg.paths.cache_dir!r}")
    try:
        hw_spec_from_dict(OmegaConf.to_container(cfg.hw, resolve=True))
    except HardwareSpecError as error:
        raise ConfigError(str(error)) from error
    check_owned_sections(to_plain(cfg))


# The validators of the sections that envs/ and mapping/ own: (section, dotted path, how to call it).
SECTION_VALIDATORS = (
    ("model", "envs.workload.baseline.ModelConfig.from_mapping", lambda check, plain: check(plain["model"])),
    ("data", "envs.workload.data.DataConfig.from_mapping", lambda check, plain: check(plain["data"])),
    ("env/mapping", "envs.settings.EnvSettings.from_config",
     lambda check, plain: check({**plain, "epsilon": plain["search"]["constraints"][0]})),
)


def check_owned_sections(plain: dict[str, Any]) -> None:
    """Run envs/' own validators on its sections, so their unknown keys fail before Ray starts too."""
    import importlib

    for section, path, call in SECTION_VALIDATORS:
        module_name, class_name, method = path.rsplit(".", 2)
        check = getattr(getattr(importlib.import_module(module_name), class_name), method)
        try:
            call(check, plain)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{section}: {error}") from error


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts and lists: what Ray pickles and the env receives."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(plain, dict)
    return plain


ENV_SECTIONS = ("model", "data", "hw", "mapping", "env", "paths", "seed", "final")


def env_config(plain: dict[str, Any], epsilon: Any) -> dict[str, Any]:
    """The environment's config: the sections it reads plus this trial's constraint ``epsilon``."""
    config = {key: plain[key] for key in ENV_SECTIONS}
    config["epsilon"] = epsilon
    return config



def validate_compare(cfg: DictConfig) -> None:
    """The compare section: known, distinct methods, constraints in (0, 1), at least one seed."""
    compare = cfg.compare
    _require(len(compare.methods) > 0, "compare.methods is empty")
    choices = search_choices()
    for method in compare.methods:
        _require(method in choices, f"compare.methods holds {method!r}: expected names from conf/search/ {choices}")
    _require(len(set(compare.methods)) == len(compare.methods), f"compare.methods repeats a method: "
             f"{list(compare.methods)}")
    _require(compare.reference in compare.methods,
             f"compare.reference={compare.reference!r} is not among compare.methods {list(compare.methods)}")
    _check(check_constraints, list(compare.constraints), "compare.constraints")
    _require(len(compare.seeds) > 0, "compare.seeds is empty")
    _require(not compare.reprice or compare.rebuild_from is not None,
             "compare.reprice=true re-prices an earlier comparison: give compare.rebuild_from=<its folder>")
    if compare.rebuild_from is not None:
        _require((Path(compare.rebuild_from) / "runs.json").is_file(),
                 f"compare.rebuild_from={compare.rebuild_from!r} holds no runs.json (expected a folder that "
                 f"platform.compare wrote under runs/compare/)")
    _require(not (compare.merge_from and compare.rebuild_from),
             "give compare.merge_from or compare.rebuild_from, not both")
    for folder in compare.merge_from:
        _require((Path(folder) / "runs.json").is_file(),
                 f"compare.merge_from holds {folder!r}, which has no runs.json (expected a folder that "
                 f"platform.compare wrote under runs/compare/)")
    if any(search_method(choice) in RL_METHODS for choice in compare.methods):
        _require(cfg.search.episodes % cfg.agent.episodes_per_batch == 0,
                 f"search.episodes={cfg.search.episodes} is not a multiple of agent.episodes_per_batch="
                 f"{cfg.agent.episodes_per_batch}: the RL methods would evaluate more episodes than the others")
