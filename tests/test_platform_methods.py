"""The baseline search methods: their proposals, the trial loop, and the comparison table."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir

from platform.compare import launch_overrides, planned_launches
from platform.config import REPO_ROOT, ConfigError, validate, validate_compare
from platform.reports.comparison_table import MethodRun, format_markdown, format_text, summarize
from platform.reports.summary import SummaryRow
from platform.search.methods.heuristics import bisect_scale, budget_problem, pim_prune, sensitivity_weights, uniform
from platform.search.methods.optuna_search import optuna_proposals
from platform.search.methods.trial import drive, make_proposals


def run_proposals(proposals, judge, limit=1000):
    """Drive a proposer with `judge(ratios) -> record`; returns every proposal."""
    seen = []
    ratios = next(proposals)
    while ratios is not None and len(seen) < limit:
        seen.append(ratios)
        try:
            ratios = proposals.send(judge(ratios))
        except StopIteration:
            ratios = None
    return seen


def feasible_below(limit):
    return lambda ratios: {"feasible": max(ratios) <= limit, "delta_acc": 0.0, "reward": 0.0}


def test_bisection_finds_the_largest_feasible_scale_within_the_tolerance():
    seen = run_proposals(bisect_scale(lambda s: [s], 0.8, 0.01), feasible_below(0.37))
    feasible = [s[0] for s in seen if s[0] <= 0.37]
    assert 0.37 - 0.01 <= max(feasible) <= 0.37
    assert len(seen) == 1 + math.ceil(math.log2(0.8 / 0.01))


def test_uniform_stops_at_once_when_the_largest_ratio_is_feasible():
    seen = run_proposals(uniform(5, 0.8, 0.01), feasible_below(1.0))
    assert seen == [[0.8] * 5]


def test_pim_prune_probes_every_layer_alone_then_gives_sensitive_layers_smaller_ratios():
    sensitivity = [0.0, 0.05, 0.0]  # layer 1 alone costs 5 points at the probe

    def judge(ratios):
        loss = sum(s for s, r in zip(sensitivity, ratios, strict=True) if r > 0)
        return {"feasible": max(ratios) <= 0.5, "delta_acc": loss, "reward": 0.0}

    seen = run_proposals(pim_prune(3, 0.8, 0.01, 0.5, 0.01), judge)
    assert seen[:3] == [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]
    final = seen[-1]
    assert final[1] < final[0] == final[2]
    assert sensitivity_weights([0.0, 0.01], 0.01) == [1.0, 0.5]


def test_optuna_searchers_are_seeded_and_stay_inside_the_action_range():
    def sequence(method, seed):
        return run_proposals(optuna_proposals(method, 4, 0.7, seed, startup_episodes=3),
                             lambda r: {"reward": -sum(r), "feasible": True}, limit=6)

    for method in ("random", "tpe"):
        first = sequence(method, 1)
        assert first == sequence(method, 1) and first != sequence(method, 2)
        assert all(0.0 <= r <= 0.7 for ratios in first for r in ratios) and len(first) == 6


def test_pim_prune_refuses_a_budget_smaller_than_its_probes():
    from envs.settings import EnvSettings

    options = {"bisection_tolerance": 0.01, "episodes": 5, "probe_ratio": 0.5, "seed": 0, "tpe_startup_episodes": 2}
    assert budget_problem("pim_prune", 6, 4) is None and budget_problem("random", 1, 4) is None
    with pytest.raises(ValueError, match="needs search.episodes >= 6"):
        make_proposals("pim_prune", 4, EnvSettings(epsilon=0.02), options)


def test_drive_keeps_the_budget_reports_in_batches_and_replays_without_reevaluating():
    evaluated, reports = [], []

    def evaluate(ratios):
        evaluated.append(ratios)
        return {"feasible": ratios[0] < 0.5, "reward": ratios[0], "compression_rate": 1 + ratios[0],
                "accuracy": 0.9, "delta_acc": 0.0}

    def report(bests, batch, records, complete):
        reports.append((len(batch), len(records), complete, bests.best_cr))

    proposals = optuna_proposals("random", 2, 0.8, seed=0)
    records = drive(proposals, evaluate, budget=7, report_every=3, replay=[], report=report)
    assert len(records) == len(evaluated) == 7
    assert [r[:3] for r in reports] == [(3, 3, False), (3, 6, False), (1, 7, True)]
    evaluated.clear()
    reports.clear()  # resume after the first report: the first three come from the checkpoint
    again = drive(optuna_proposals("random", 2, 0.8, seed=0), evaluate, 7, 3, records[:3], report)
    assert again == records and len(evaluated) == 4
    assert reports[-1][1:3] == (7, True) and reports[-1][3] == max(1 + r["reward"] for r in records if r["feasible"])


def run_of(method, seed, constraint, cr, status="searched", delta=0.001):
    row = SummaryRow(constraint=constraint, status=status, accuracy=0.9, delta_acc=delta, compression_rate=cr,
                     crossbars=100 / cr if cr == cr else math.nan, area_efficiency_gain=cr / 2,
                     energy_efficiency_gain=cr, episodes=16, wall_time_s=10.0, search_accuracy=0.9,
                     search_delta_acc=delta)
    return MethodRun(method, "ou_row", seed, row)


def test_summary_divides_by_the_reference_of_the_same_seed_and_skips_infeasible_runs():
    runs = [run_of("pim_prune", 0, 0.01, 2.0),  # deterministic reference: ran once
            run_of("autoprune", 0, 0.01, 4.0), run_of("autoprune", 1, 0.01, 6.0),
            run_of("autoprune", 2, 0.01, math.nan, status="no feasible policy")]
    table = {s.method: s for s in summarize(runs, "pim_prune")}
    auto = table["autoprune"]
    assert (auto.runs, auto.feasible_runs) == (3, 2)
    assert auto.compression_rate.mean == 5.0 and auto.compression_rate.std == pytest.approx(math.sqrt(2))
    assert auto.vs_reference["compression_rate"].mean == 2.5
    assert table["pim_prune"].vs_reference["compression_rate"].mean == 1.0
    text, markdown = format_text(list(table.values()), "pim_prune"), format_markdown(list(table.values()), "pim_prune")
    assert "5.00 ± 1.41" in text and "CR vs PIM-Prune" in markdown and markdown.count("\n") == 3


def compose_config(*overrides):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("method, granularity, reward", [
    ("uniform", "filter", "crossbar_constrained"), ("pim_prune", "crossbar_row", "crossbar_constrained"),
    ("sre_uniform", "ou_row", "crossbar_constrained"), ("amc", "ou_row", "amc_flops"),
    ("autoprune", "ou_row", "crossbar_constrained"), ("tpe", "ou_row", "crossbar_constrained")])
def test_each_method_sets_the_granularity_and_reward_it_is_defined_by(method, granularity, reward):
    cfg = (compose_config("+experiment=quickstart", f"search={method}"))
    validate(cfg)
    assert (cfg.search.method, cfg.mapping.granularity, cfg.env.reward) == (method, granularity, reward)
    assert cfg.search.constraints == [0.02, 0.05]  # the experiment's values survive the method's file


def test_bad_method_and_compare_settings_fail_with_the_key_named():
    with pytest.raises(ConfigError, match="search.method"):
        validate(compose_config("search.method=greedy"))
    with pytest.raises(ConfigError, match="compare.reference"):
        validate_compare(compose_config("compare.methods=[uniform,autoprune]"))
    with pytest.raises(ConfigError, match="multiple of agent.episodes_per_batch"):
        validate_compare(compose_config("search.episodes=30", "agent.episodes_per_batch=8"))
    with pytest.raises(ConfigError, match="compare.rebuild_from=.*holds no runs.json"):
        validate_compare(compose_config("compare.rebuild_from=/nonexistent/compare"))


def test_compare_replaces_the_users_search_choice_and_runs_deterministic_methods_once():
    overrides = launch_overrides(["+experiment=quickstart", "search=tpe", "search.constraints=[0.5]", "seed=3"],
                                 "amc", 2, [0.005, 0.01], "cmp")
    assert overrides == ["+experiment=quickstart", "seed=3", "search=amc", "search.seed=2",
                         "search.constraints=[0.005,0.01]", "search.name=cmp-amc-s2"]
    cfg = compose_config("compare.methods=[uniform,pim_prune,autoprune]", "compare.seeds=[0,1]")
    assert planned_launches(cfg) == [("uniform", 0), ("pim_prune", 0), ("autoprune", 0), ("autoprune", 1)]


def test_a_resumed_comparison_continues_the_launches_that_left_a_sweep(tmp_path):
    from platform.compare import has_sweep

    (tmp_path / "cmp-tpe-s0" / "2026-01-01_00-00-00" / "tune").mkdir(parents=True)
    (tmp_path / "cmp-tpe-s0" / "2026-01-01_00-00-00" / "tune" / "tuner.pkl").write_bytes(b"x")
    (tmp_path / "cmp-tpe-s1" / "2026-01-01_00-00-00").mkdir(parents=True)  # died before Tune saved anything
    assert has_sweep(tmp_path, "cmp-tpe-s0") and not has_sweep(tmp_path, "cmp-tpe-s1")
    overrides = launch_overrides(["+experiment=quickstart", "resume=false"], "tpe", 0, [0.01], "cmp", resume=True)
    assert overrides[-1] == "resume=true" and "resume=false" not in overrides


def test_learning_curve_counts_every_episode_and_starts_from_the_dense_model():
    from platform.compare import best_cr_curve

    history = [{"records": [{"feasible": False, "compression_rate": 3.0}, {"feasible": True, "compression_rate": 1.5}]},
               {"records": [{"feasible": True, "compression_rate": 1.2},
                            {"feasible": True, "compression_rate": 9.0, "reason": "nan_loss"}]}]
    assert best_cr_curve(history) == [(1, 1.0), (2, 1.5), (3, 1.5), (4, 1.5)]


def test_a_run_whose_sweep_folder_is_gone_is_left_out_of_the_curves_and_named(tmp_path, capsys):
    from platform.compare import learning_curves

    run = run_of("tpe", 1, 0.01, 2.0)
    run.sweep_dir = str(tmp_path / "moved")
    assert learning_curves([run]) == {"tpe": {0.01: [[]]}}
    assert "tpe seed 1 at epsilon 0.01: no episode history under" in capsys.readouterr().out


def test_a_comparison_can_be_rebuilt_from_its_runs_file():
    run = run_of("tpe", 2, 0.01, 3.0)
    run.sweep_dir = "/runs/x"
    assert MethodRun.from_dict(run.as_dict()) == run


@pytest.mark.parametrize("variant, method", [("autoprune_budget", "autoprune"), ("random_budget", "random"),
                                             ("tpe_budget", "tpe")])
def test_the_budget_variants_run_their_method_under_the_budget_formulation(variant, method):
    cfg = compose_config("+experiment=quickstart", f"search={variant}")
    validate(cfg)
    assert (cfg.search.method, cfg.env.formulation, cfg.mapping.granularity) == (method, "budget", "ou_row")
    validate_compare(compose_config("+experiment=quickstart", f"compare.methods=[tpe,{variant}]",
                                    "compare.reference=tpe"))


def test_a_heuristic_under_a_budget_fails_with_the_setting_named():
    with pytest.raises(ConfigError, match="env.formulation=budget.*'pim_prune'"):
        validate(compose_config("+experiment=quickstart", "search=pim_prune", "env.formulation=budget"))
    with pytest.raises(ConfigError, match="env.budget_start_cr"):
        validate(compose_config("+experiment=quickstart", "env.formulation=budget", "env.budget_start_cr=0.5"))


def test_comparisons_split_into_launches_merge_into_one_table_and_refuse_a_run_found_twice(tmp_path):
    import json

    from platform.compare import merged_runs

    first, second = tmp_path / "a", tmp_path / "b"
    for folder, runs in ((first, [run_of("tpe", 0, 0.01, 2.0), run_of("tpe", 1, 0.01, 2.2)]),
                         (second, [run_of("autoprune_budget", 0, 0.01, 2.5)])):
        folder.mkdir()
        (folder / "runs.json").write_text(json.dumps([r.as_dict() for r in runs]))
    merged = merged_runs([first, second])
    assert [(r.method, r.seed) for r in merged] == [("tpe", 0), ("tpe", 1), ("autoprune_budget", 0)]
    table = {s.method: s for s in summarize(merged, "tpe")}
    assert table["autoprune_budget"].vs_reference["compression_rate"].mean == pytest.approx(2.5 / 2.0)
    with pytest.raises(ConfigError, match=r"tpe seed 0 at epsilon 0.01 is in both"):
        merged_runs([first, second, first])
    with pytest.raises(ConfigError, match="compare.merge_from holds"):
        validate_compare(compose_config(f"compare.merge_from=[{tmp_path / 'missing'}]"))


@pytest.mark.parametrize("experiment", ["quickstart", "resnet50", "resnet50_gpu", "resnet20"])
def test_a_trials_mlflow_params_fit_one_batch(experiment):
    from platform.config import to_plain
    from platform.reports.tracking import config_params

    params = config_params(to_plain(compose_config(f"+experiment={experiment}")))
    assert len(params) + 1 <= 100  # a child run adds its epsilon; MLflow logs at most 100 params a batch
