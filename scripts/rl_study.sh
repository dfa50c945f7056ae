#!/usr/bin/env bash
# The RL-vs-searchers study on 2 cores: every searcher in both formulations (constraint, budget), 3 seeds,
# one constraint, the same number of evaluated episodes each; split into launches that each finish and
# merged into one table (python -m platform.compare compare.merge_from=...).
#
#   bash scripts/rl_study.sh resnet20 320 [extra overrides...]
#
# The RL methods use both cores (2 env runners); the proposers evaluate on one thread, so random and tpe
# run side by side, one comparison per core. Logs: runs/study/<experiment>-<episodes>/*.log.
# A study too long for one sitting runs in parts: RL_METHODS, RANDOM_METHODS and TPE_METHODS name the
# methods of each comparison (an empty one is skipped) and MERGE_FROM adds the result folders of
# earlier parts (space-separated) to the merged table, e.g.
#
#   RL_METHODS=autoprune_budget RANDOM_METHODS=random TPE_METHODS=tpe \
#       bash scripts/rl_study.sh resnet50 320 env.eval_on_hardware=false final.recheck=10
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

RL_METHODS="${RL_METHODS-autoprune_budget autoprune}"
RANDOM_METHODS="${RANDOM_METHODS-random random_budget}"
TPE_METHODS="${TPE_METHODS-tpe tpe_budget}"
read -r -a PARTS <<< "${MERGE_FROM-}"
if [[ -n "$RL_METHODS" ]]; then
  compare rl $RL_METHODS
  PARTS+=("$(cat "$LOGS/rl.dir")")
fi
[[ -z "$RANDOM_METHODS" ]] || compare random $RANDOM_METHODS &
[[ -z "$TPE_METHODS" ]] || compare tpe $TPE_METHODS &
wait
[[ -z "$RANDOM_METHODS" ]] || PARTS+=("$(cat "$LOGS/random.dir")")
[[ -z "$TPE_METHODS" ]] || PARTS+=("$(cat "$LOGS/tpe.dir")")
METHODS="$(echo $RL_METHODS $RANDOM_METHODS $TPE_METHODS | tr ' ' ',')"
REFERENCE="${TPE_METHODS%% *}"
.venv/bin/python -m platform.compare "${COMMON[@]}" \
    "compare.methods=[${METHODS}]" "compare.reference=${REFERENCE:-${METHODS%%,*}}" \
    "compare.merge_from=[$(IFS=,; echo "${PARTS[*]}")]" \
    "compare.name=${NAME}" > "$LOGS/merged.log" 2>&1
tail -20 "$LOGS/merged.log"
