"""How a search is posed: under an accuracy constraint, or under a crossbar budget (AMC's formulation).

`env.formulation=constraint` (the default) lets every layer take any ratio and rewards a policy
with log(CR) when its accuracy loss stays within epsilon, a bounded penalty when not
(envs/rewards.py): the agent learns mostly from a feasible / infeasible signal.

`env.formulation=budget` follows AMC's resource-constrained protocol
(mit-han-lab/amc, `env/channel_pruning_env.py`, `_action_wall`). Each episode is held to a
number of crossbars to keep. Before a layer acts, the most it may keep is what the budget leaves
once the layers still to come take their least (their count at the deepest breakpoint within
pmax); its ratio is raised to the smallest breakpoint that fits. Counts come from the breakpoint
tables (mapping/breakpoints.py), so the wall costs no evaluation, and every episode meets its
budget by construction. The reward is then the recovered accuracy alone
(`-asinh(delta_acc / epsilon)`, envs/rewards.py), informative in every episode.

Which budget? Per epsilon, the largest one whose policies stay within epsilon. `BudgetStaircase`
finds it inside the search's own episodes: the episodes come in rounds of
`env.budget_round_episodes`, all held to the same target CR; a round with a feasible episode
raises the target by the current step, a round without one lowers it, and the step halves at
each reversal (an adaptive staircase, which unlike a bisection never rules a target out for good
because of one unlucky round). So a search of `search.episodes` episodes spends them all, in
episodes / round rounds, every one evaluated at some budget; its result is, as for every method,
the feasible episode with the highest CR. An RL env runner, a random or a TPE proposer each keep
their own staircase, driven by their own episodes only, so a run stays reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from envs.search_space import SearchSpace

FORMULATIONS = ("constraint", "budget")


def check_formulation(name: str, start_cr: float, round_episodes: int, step: float) -> None:
    """Range checks of the formulation's settings, naming the setting."""
    if name not in FORMULATIONS:
        raise ValueError(f"env.formulation must be one of {FORMULATIONS}, got {name!r}")
    if not (math.isfinite(start_cr) and start_cr > 1.0):
        raise ValueError(f"env.budget_start_cr must be a compression rate > 1, got {start_cr}")
    if round_episodes < 1:
        raise ValueError(f"env.budget_round_episodes must be >= 1, got {round_episodes}")
    if not (math.isfinite(step) and 0.0 <= step <= 1.0):
        raise ValueError(f"env.budget_step must lie in [0, 1] (a relative change of the target CR; 0 holds "
                         f"env.budget_start_cr fixed), got {step}")


@dataclass(frozen=True)
class CrossbarBudget:
    """The action wall over a search space: per-layer crossbar counts from the breakpoint tables.

    A policy's crossbars are those of the layers the search does not decide (they cannot free one,
    so they keep their dense count: `start`) plus the searched layers' counts at their ratios;
    under per-layer packing that is exactly what the mapping occupies (tested).
    """

    space: SearchSpace
    _least_after: tuple[int, ...] = field(init=False, repr=False)  # [s]: the fewest crossbars of steps > s

    def __post_init__(self) -> None:
        if self.space.breakpoints is None or not self.space.snapping:
            raise ValueError("env.formulation=budget needs crossbar breakpoints: use a mask granularity "
                             "(ou_row, crossbar_row) with env.snap=true")
        after, total = [], 0
        for index in reversed(self.space.searchable):
            after.append(total)
            total += self.space.breakpoints[index].min_crossbars
        object.__setattr__(self, "_least_after", tuple(reversed(after)))

    def _counts(self, layer: int, ratio: float) -> int:
        return self.space.breakpoints[layer].crossbars_at(ratio)

    @property
    def dense(self) -> int:
        return sum(points.dense_crossbars for points in self.space.breakpoints)

    @property
    def least(self) -> int:
        """The fewest crossbars any policy can keep: every searched layer at its deepest breakpoint."""
        searched = set(self.space.searchable)
        return sum(points.min_crossbars if i in searched else points.dense_crossbars
                   for i, points in enumerate(self.space.breakpoints))

    def kept(self, ratio_list: Sequence[float]) -> int:
        """Crossbars a full per-layer ratio list keeps, from the breakpoint tables."""
        return sum(self._counts(i, r) for i, r in enumerate(ratio_list))

    def crossbars_for(self, target_cr: float) -> int:
        """The budget of a target CR: the most crossbars a policy may keep, dense / target, rounded down.
        Raises ValueError when even the deepest policy cannot reach it."""
        if not (math.isfinite(target_cr) and target_cr >= 1.0):
            raise ValueError(f"a crossbar budget's target CR must be >= 1, got {target_cr}")
        budget = math.floor(self.dense / target_cr + 1e-9)  # the max CR's own budget is `least`, not one less
        if budget < self.least:
            raise ValueError(f"a target CR of {target_cr:.3f} keeps at most {budget} of {self.dense} crossbars, but "
                             f"no policy within env.pmax={self.space.pmax} keeps fewer than {self.least} "
                             f"(CR {self.max_cr:.3f}): lower the target or raise env.pmax")
        return budget

    @property
    def max_cr(self) -> float:
        return self.dense / self.least

    def wall(self, step: int, ratio: float, kept_so_far: int, budget: int) -> float:
        """Step `step`'s snapped ratio, raised to the smallest breakpoint that leaves the layers still to
        come room to meet `budget`. kept_so_far: crossbars of the fixed layers and of steps before `step`,
        as `start` and `after` return them."""
        layer = self.space.searchable[step]
        points = self.space.breakpoints[layer]
        allowed = budget - kept_so_far - self._least_after[step]
        ratio = self.space.snap(layer, ratio)
        if points.crossbars_at(ratio) <= allowed:
            return ratio
        fitting = [float(k / points.rows) for k in points.removed if points.curve[k] <= allowed]
        if not fitting:
            raise ValueError(f"budget {budget} cannot be met at layer {points.name}: {allowed} crossbars left "
                             f"for it, its deepest breakpoint keeps {points.min_crossbars}")
        return fitting[0]

    def start(self) -> int:
        """Crossbars kept before the first step: the layers the search does not decide."""
        searched = set(self.space.searchable)
        return sum(points.dense_crossbars for i, points in enumerate(self.space.breakpoints) if i not in searched)

    def after(self, step: int, ratio: float, kept_so_far: int) -> int:
        """Crossbars kept once step `step` took `ratio`."""
        return kept_so_far + self._counts(self.space.searchable[step], ratio)


@dataclass
class BudgetStaircase:
    """The outer loop of the budget formulation: a target CR per round of episodes, moved by results.

    A round with a feasible episode multiplies the target by (1 + step), a round without one
    divides it by (1 + step); the step halves at each reversal, down to min_step. The target stays
    within [1, max_cr]. A step of 0 holds the target fixed: every episode at one budget, as a
    comparison at equal CR wants. Plain state, so it checkpoints as a dict.
    """

    target_cr: float
    max_cr: float
    round_episodes: int
    step: float
    min_step: float = 0.01
    episodes_in_round: int = 0
    feasible_in_round: bool = False
    last_move: int = 0  # +1 raised, -1 lowered, 0 not moved yet

    def __post_init__(self) -> None:
        self.target_cr = min(self.target_cr, self.max_cr)

    def record(self, feasible: bool) -> None:
        """Count one evaluated episode at the current target; move the target at the round's end."""
        self.episodes_in_round += 1
        self.feasible_in_round |= bool(feasible)
        if self.episodes_in_round < self.round_episodes:
            return
        if self.step == 0:  # a fixed target
            self.episodes_in_round, self.feasible_in_round = 0, False
            return
        move = 1 if self.feasible_in_round else -1
        if self.last_move and move != self.last_move:
            self.step = max(self.step / 2, self.min_step)
        factor = (1 + self.step) if move > 0 else 1 / (1 + self.step)
        self.target_cr = min(max(self.target_cr * factor, 1.0), self.max_cr)
        self.last_move, self.episodes_in_round, self.feasible_in_round = move, 0, False


class ConstraintEpisodes:
    """env.formulation=constraint: ratios are only snapped to breakpoints; nothing moves between episodes."""

    target_cr = 0.0

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def begin(self) -> None:
        """Start an episode."""

    def constrain(self, step: int, ratio: float) -> float:
        """Step `step`'s ratio as the episode applies it."""
        return self.space.snap(self.space.searchable[step], ratio)

    def finish(self, feasible: bool) -> None:
        """End an episode with its outcome."""

    def apply(self, vector: Sequence[float]) -> list[float]:
        """A whole search vector as an episode would apply it (proposers)."""
        self.begin()
        return [self.constrain(step, float(ratio)) for step, ratio in enumerate(vector)]


class BudgetEpisodes(ConstraintEpisodes):
    """env.formulation=budget: every episode is walled into the staircase's current crossbar budget."""

    def __init__(self, space: SearchSpace, start_cr: float, round_episodes: int, step: float) -> None:
        super().__init__(space)
        self.wall = CrossbarBudget(space)
        self.wall.crossbars_for(1.0)  # the dense model always fits: checks the space early
        if start_cr > self.wall.max_cr:
            raise ValueError(f"env.budget_start_cr={start_cr} is out of reach: no policy within env.pmax="
                             f"{space.pmax} reaches a CR above {self.wall.max_cr:.3f}")
        self.staircase = BudgetStaircase(start_cr, self.wall.max_cr, round_episodes, step)
        self.begin()

    @property
    def target_cr(self) -> float:
        return self.staircase.target_cr

    def begin(self) -> None:
        self.budget = self.wall.crossbars_for(self.staircase.target_cr)
        self._kept = self.wall.start()

    def constrain(self, step: int, ratio: float) -> float:
        ratio = self.wall.wall(step, ratio, self._kept, self.budget)
        self._kept = self.wall.after(step, ratio, self._kept)
        return ratio

    def finish(self, feasible: bool) -> None:
        self.staircase.record(feasible)


def episode_formulation(name: str, space: SearchSpace, start_cr: float, round_episodes: int,
                        step: float) -> ConstraintEpisodes:
    """The formulation object an env or a proposer drives its episodes through."""
    check_formulation(name, start_cr, round_episodes, step)
    if name == "budget":
        return BudgetEpisodes(space, start_cr, round_episodes, step)
    return ConstraintEpisodes(space)
