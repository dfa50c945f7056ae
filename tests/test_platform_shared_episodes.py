"""A sweep's trials share their episodes: each constraint's finalists come from every trial's records."""

from __future__ import annotations

import pytest

from platform.search.shared_episodes import history_finalists, shared_finalists
from platform.search.sweep import TrialOutcome
from platform.search.sweep_folders import append_history
from tests.test_platform_parts import record


def episode(cr: float, delta_acc: float, ratios: list[float], **fields) -> dict:
    return {**record(cr, 0.9 - delta_acc, True), "delta_acc": delta_acc, "ratios": ratios, **fields}


HISTORIES = {
    "eps_0.01": [{"iteration": 1, "records": [episode(1.5, 0.004, [0.1, 0.1]), episode(2.5, 0.03, [0.5, 0.5])]}],
    "eps_0.02": [{"iteration": 1, "records": [episode(1.9, 0.009, [0.3, 0.2]), episode(2.2, 0.018, [0.4, 0.3])]},
                 {"iteration": 2, "records": [episode(3.0, 0.1, [0.7, 0.7], stopped_early=True),
                                              episode(1.5, 0.004, [0.1, 0.1])]}],
}


def test_a_policy_another_trial_found_within_the_constraint_becomes_a_finalist():
    finalists = shared_finalists(HISTORIES, 0.01, "crossbar_constrained", penalty=1.0)
    assert [(f["compression_rate"], f["found_by"], f["episode"]) for f in finalists] == [
        (1.9, "eps_0.02", 1), (1.5, "eps_0.01", 1)]  # the repeated policy counts once; 2.5 and 2.2 lose > 1%
    assert all(f["feasible"] for f in finalists)


def test_a_looser_constraint_gets_the_stricter_trials_policies_but_no_early_stopped_one():
    finalists = shared_finalists(HISTORIES, 0.05, "crossbar_constrained", penalty=1.0)
    assert [f["compression_rate"] for f in finalists] == [2.5, 2.2, 1.9, 1.5]
    assert shared_finalists(HISTORIES, 0.05, "crossbar_constrained", 1.0, count=2)[1]["compression_rate"] == 2.2


def test_a_policy_both_trials_evaluated_is_credited_to_the_own_trial():
    finalists = shared_finalists(HISTORIES, 0.01, "crossbar_constrained", penalty=1.0, own="eps_0.02")
    assert [(f["found_by"], f["episode"]) for f in finalists] == [("eps_0.02", 1), ("eps_0.02", 4)]


def test_a_constraint_nothing_meets_has_no_finalists():
    assert shared_finalists(HISTORIES, 0.001, "crossbar_constrained", penalty=1.0) == []


def outcome(epsilon: float, finished: bool = True) -> TrialOutcome:
    return TrialOutcome(epsilon=epsilon, key=f"eps_{epsilon:g}", finished=finished, error=None, episodes=4,
                        wall_time_s=1.0, best=None, feasible_fraction=0.5, trial_path="/x")


PLAIN = {"env": {"formulation": "constraint", "reward": "crossbar_constrained", "penalty": 1.0},
         "mapping": {"granularity": "ou_row", "packing": "per_layer"}}


def write(sweep, histories):
    for key, lines in histories.items():
        for line in lines:
            append_history(sweep, key, line)


def test_each_finished_trial_gets_the_sweeps_best_and_finalists_under_its_constraint(tmp_path):
    write(tmp_path, HISTORIES)
    strict, loose = history_finalists(PLAIN, [outcome(0.01), outcome(0.02)], tmp_path, share=True)
    assert strict.best["compression_rate"] == 1.9 and strict.best["found_by"] == "eps_0.02"
    assert [f["compression_rate"] for f in loose.finalists] == [2.2, 1.9, 1.5]
    assert (strict.episodes, strict.key) == (4, "eps_0.01")  # only the finalists change


def test_an_unfinished_trial_is_left_as_it_is(tmp_path):
    write(tmp_path, HISTORIES)
    unfinished = outcome(0.01, finished=False)
    assert history_finalists(PLAIN, [unfinished, outcome(0.02)], tmp_path, share=True)[0] is unfinished


def test_without_sharing_each_trial_keeps_every_feasible_policy_of_its_own(tmp_path):
    write(tmp_path, HISTORIES)
    strict, loose = history_finalists(PLAIN, [outcome(0.01), outcome(0.02)], tmp_path, share=False)
    assert [f["compression_rate"] for f in strict.finalists] == [1.5]
    assert [f["compression_rate"] for f in loose.finalists] == [2.2, 1.9, 1.5]
    assert strict.best == strict.finalists[0]


def test_trials_scored_against_different_references_share_nothing(tmp_path):
    other = {"eps_0.02": [{"iteration": 1, "records": [episode(1.9, 0.009, [0.3, 0.2], baseline_accuracy=0.8)]}]}
    write(tmp_path, {"eps_0.01": HISTORIES["eps_0.01"], **other})
    strict, _ = history_finalists(PLAIN, [outcome(0.01), outcome(0.02)], tmp_path, share=True)
    assert [f["compression_rate"] for f in strict.finalists] == [1.5]


def test_a_trial_without_a_history_keeps_what_it_reported(tmp_path):
    reported = outcome(0.01)
    assert history_finalists(PLAIN, [reported], tmp_path, share=True) == [reported]


@pytest.mark.parametrize("formulation", ["constraint", "budget"])
def test_the_finalists_carry_the_reward_of_their_constraints_formulation(tmp_path, formulation):
    write(tmp_path, HISTORIES)
    plain = {**PLAIN, "env": {**PLAIN["env"], "formulation": formulation}}
    strict = history_finalists(plain, [outcome(0.01), outcome(0.02)], tmp_path, share=True)[0]
    expected = -0.8088669356527824 if formulation == "budget" else 0.6418538861723947  # -asinh(0.9), log(1.9)
    assert strict.best["reward"] == pytest.approx(expected)


def test_a_whole_split_score_overrides_the_prefix_scores_of_the_same_policy():
    whole_fail = episode(1.9, 0.012, [0.3, 0.2], confirmed=True, baseline_accuracy=0.91)
    whole_pass = episode(1.5, 0.006, [0.1, 0.1], confirmed=True, baseline_accuracy=0.91)
    histories = {**HISTORIES, "eps_0.01": [*HISTORIES["eps_0.01"], {"iteration": 2, "records": [whole_fail,
                                                                                                  whole_pass]}]}
    finalists = shared_finalists(histories, 0.01, "crossbar_constrained", penalty=1.0)
    assert [(f["compression_rate"], f.get("confirmed", False)) for f in finalists] == [(1.5, True)]
    loose = shared_finalists(histories, 0.02, "crossbar_constrained", penalty=1.0)  # 1.2% passes 2%
    assert [(f["compression_rate"], f.get("confirmed", False)) for f in loose] == [
        (2.2, False), (1.9, True), (1.5, True)]


def test_whole_split_and_prefix_references_side_by_side_still_share(tmp_path):
    confirmed = {"eps_0.02": [*HISTORIES["eps_0.02"], {"iteration": 3, "records": [
        episode(1.9, 0.006, [0.3, 0.2], confirmed=True, baseline_accuracy=0.91)]}]}
    write(tmp_path, {"eps_0.01": HISTORIES["eps_0.01"], **confirmed})
    strict, _ = history_finalists(PLAIN, [outcome(0.01), outcome(0.02)], tmp_path, share=True)
    assert [(f["compression_rate"], f["found_by"]) for f in strict.finalists] == [(1.9, "eps_0.02"),
                                                                                    (1.5, "eps_0.01")]
