#!/usr/bin/env bash
# The RL-vs-searchers study on 2 cores: every searcher in both formulations (constraint, budget), 3 seeds,
# one constraint, the same number of evaluated episodes each; split into launches that each finish and
# merged into one table (python -m platform.compare compare.merge_from=...).
#
#   bash scripts/rl_study.sh resnet20 320 [extra overrides...]
#
# The RL methods use both cores (2 env runners); the proposers evaluate on one thread, so random and tpe
# run side by side, one comparison per core. Logs: runs/study/<experiment>-<episodes>/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
EXPERIMENT="${1:?usage: rl_study.sh EXPERIMENT EPISODES [overrides...]}"
EPISODES="${2:?usage: rl_study.sh EXPERIMENT EPISODES [overrides...]}"
shift 2
NAME="study-${EXPERIMENT}-${EPISODES}"
LOGS="runs/study/${NAME}"
mkdir -p "$LOGS"
COMMON=(+experiment="$EXPERIMENT" search.episodes="$EPISODES" 'compare.constraints=[0.01]' 'compare.seeds=[0,1,2]'
        tracking=off "$@")

compare() {  # compare LABEL METHODS... : one comparison, its folder name written to $LOGS/LABEL.dir
  local label="$1"; shift
  local methods; methods="[$(IFS=,; echo "$*")]"
  .venv/bin/python -m platform.compare "${COMMON[@]}" "compare.methods=$methods" "compare.reference=$1" \
      "compare.name=${NAME}-${label}" > "$LOGS/${label}.log" 2>&1
  ls -d "runs/compare/${NAME}-${label}"/*/ | tail -1 > "$LOGS/${label}.dir"
}

compare rl autoprune_budget autoprune
compare random random random_budget &
compare tpe tpe tpe_budget &
wait
.venv/bin/python -m platform.compare "${COMMON[@]}" \
    "compare.methods=[autoprune_budget,autoprune,random,random_budget,tpe,tpe_budget]" compare.reference=tpe \
    "compare.merge_from=[$(cat "$LOGS"/rl.dir),$(cat "$LOGS"/random.dir),$(cat "$LOGS"/tpe.dir)]" \
    "compare.name=${NAME}" > "$LOGS/merged.log" 2>&1
tail -20 "$LOGS/merged.log"
