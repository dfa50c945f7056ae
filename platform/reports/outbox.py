"""Tracking that survives a tracking server going away: operations it did not take wait in an outbox.

Every write the tracker makes (create a run, log params and metrics, tag, log an artifact or the
model, end a run) is one JSON operation. It is sent at once; when the server does not answer,
it is appended to ``<sweep>/mlflow_outbox.jsonl`` instead, and so is every later operation, in
order, until the outbox empties: the tracker retries it at most every RETRY_SECONDS while the
launch runs, and once more at its end. Whatever is left is sent by

    python -m platform.reports.outbox <sweep folder>

once the server is back. Runs created while the server was away get a placeholder id
(``pending:<key>``) that later operations refer to; sending the creation records the real id
in the sweep's mlflow.json, which every later operation resolves it through. Nothing is dropped:
a failed send leaves the operation, and all after it, in the outbox.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OUTBOX = "mlflow_outbox.jsonl"
RETRY_SECONDS = 30.0
PENDING = "pending:"


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` means the server did not answer (keep the operation), not that it refused it."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, (requests.RequestException, ConnectionError, TimeoutError)):
        return True
    text = str(error)
    return isinstance(error, MlflowException) and ("failed with exception" in text or "Max retries" in text
                                                   or "Connection" in text or "timed out" in text)


class Outbox:
    """The sweep's queue of unsent operations: one JSON line each, appended and replaced under a lock
    (the driver's tracker and its Tune callback's tracker share it)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / OUTBOX

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def append(self, operation: dict[str, Any]) -> None:
        with self._locked(), self.path.open("a") as handle:
            handle.write(json.dumps(operation) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def drain(self, send: Callable[[dict[str, Any]], None]) -> int:
        """Send the operations in order until one fails; keep that one and the rest. Returns how many
        are left. Only an unreachable server stops the drain quietly; any other error is raised."""
        with self._locked():
            operations = self.pending()
            sent = 0
            try:
                for operation in operations:
                    send(operation)
                    sent += 1
            except Exception as error:
                if not is_unreachable(error):
                    raise
            finally:
                left = operations[sent:]
                temp = self.path.with_suffix(".tmp")
                temp.write_text("".join(json.dumps(o) + "\n" for o in left))
                os.replace(temp, self.path)
                if not left:
                    self.path.unlink()
        return len(left)


def main(argv: list[str] | None = None) -> int:
    """Send a sweep's waiting tracking operations: python -m platform.reports.outbox <sweep folder>."""
    import yaml

    from platform.reports.tracking import Tracker, TrackingSettings

    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m platform.reports.outbox <sweep folder>", file=sys.stderr)
        return 2
    sweep = Path(args[0])
    config = sweep / "config.yaml"
    if not config.is_file():
        print(f"{sweep} holds no config.yaml: expected a sweep folder written by platform.launch", file=sys.stderr)
        return 2
    tracker = Tracker(TrackingSettings.from_config(yaml.safe_load(config.read_text())), sweep)
    waiting = len(tracker.outbox.pending())
    left = tracker.outbox.drain(tracker.send_now)
    print(f"sent {waiting - left} of {waiting} tracking operations to {tracker.settings.uri}; {left} left"
          + (f" in {tracker.outbox.path}: is the server up?" if left else ""))
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
