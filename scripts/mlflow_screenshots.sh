#!/usr/bin/env bash
# Screenshots of the MLflow UI for docs/: the runs table and one run's artifacts, taken headlessly.
#   bash scripts/mlflow_screenshots.sh <run id with a layout> [port]
# Needs Debian's chromium (apt-get install -y chromium), the websocket-client package (pip install
# websocket-client; scripts/mlflow_screenshot.py drives chromium with it to close MLflow's assistant
# panel and expand the parent run) and a store with runs (mlflow.db, from python -m platform.launch ...). The UI is started outside the repository: its workers would
# otherwise import the project's platform/ in place of Python's platform module.
set -euo pipefail
cd "$(dirname "$0")/.."
run_id=${1:?give the id of a run that has a layout (a child run, one per constraint)}
port=${2:-5055}
store="sqlite:///$PWD/mlflow.db"
experiment=$(.venv/bin/python -c "
from mlflow.tracking import MlflowClient
print(MlflowClient(tracking_uri='$store').get_run('$run_id').info.experiment_id)")
(cd /tmp && exec "$OLDPWD/.venv/bin/mlflow" ui --backend-store-uri "$store" --host 127.0.0.1 --port "$port" > /dev/null 2>&1) &
server=$!
trap 'kill $server' EXIT
until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 1; done
shoot() {
  (cd /tmp && "$OLDPWD/.venv/bin/python" "$OLDPWD/scripts/mlflow_screenshot.py" "http://127.0.0.1:$port/$2" \
    "$OLDPWD/docs/figures/$1")
}
shoot mlflow_runs_table.png "#/experiments/$experiment/runs"
shoot mlflow_run_artifacts.png "#/experiments/$experiment/runs/$run_id/artifacts/model/model.json"
