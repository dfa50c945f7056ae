"""How much slower ResNet-50 training and evaluation get when another program keeps one core busy.

    python -m bench.contention [--steps 12] [--threads 2] [--busy 1]

On two cores, a second job once slowed the baseline's training tenfold (32 vs 345 img/s), not
twofold: OpenMP's default wait policy spins its idle threads, and a spinning thread that
shares a core with another program waits for whole scheduler slices at every barrier. Each
measurement runs in a fresh process (OpenMP reads OMP_WAIT_POLICY once, at start-up) that
times `--steps` SGD steps of ResNet-50 (small-input stem, batch 128, 1x28x28) and as many
1,000-image evaluations, first quiet, then with `--busy` busy-looping processes beside it,
under each OpenMP wait setting in SETTINGS (the one AUTO-PRUNE's entry points choose is in
envs/openmp.py). Prints img/s, each setting's quiet speed against the default's, and each
slowdown as busy / quiet in the same run (goal: <= 2.5x with one busy core). Figures only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

WORKLOAD = """
import json, sys, time, torch
from envs.workload.models import build_model
steps, threads = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
torch.set_num_threads(threads)
model = build_model("resnet50", 10, 1, True).to(memory_format=torch.channels_last)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
images = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
labels = torch.randint(0, 10, (128,))
evaluation = torch.randn(1000, 1, 28, 28).contiguous(memory_format=torch.channels_last)
def train_step():
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
def evaluate():
    with torch.no_grad():
        for start in range(0, 1000, 250):
            model(evaluation[start:start + 250])
model.train(); train_step()  # warm-up: allocations, kernel selection
model.eval(); evaluate()
model.train(); start = time.perf_counter()
for _ in range(steps): train_step()
train = time.perf_counter() - start
model.eval(); start = time.perf_counter()
for _ in range(max(1, steps // 4)): evaluate()
evaluation_time = time.perf_counter() - start
print(json.dumps({"train_img_s": steps * 128 / train, "eval_img_s": max(1, steps // 4) * 1000 / evaluation_time}))
"""


def spin() -> None:
    while True:
        pass


# OpenMP settings compared: libgomp spins 300,000 iterations before it sleeps by default, not at
# all with PASSIVE, and GOMP_SPINCOUNT sets the spin in between.
SETTINGS = {
    "OpenMP default (spin, then sleep)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}


def measure(steps: int, threads: int, setting: dict[str, str], busy: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(setting)
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
    for process in spinners:
        process.start()
    try:
        done = subprocess.run([sys.executable, "-c", WORKLOAD, str(steps), str(threads)], env=env, check=True,
                              capture_output=True, text=True)
    finally:
        for process in spinners:
            process.terminate()
            process.join()
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(steps: int, threads: int, busy: int) -> None:
    print(f"ResNet-50, batch 128, {threads} torch threads on {os.cpu_count()} cores; {steps} training steps and "
          f"{max(1, steps // 4)} evaluations of 1,000 images per measurement")
    reference = None
    for label, setting in SETTINGS.items():
        started = time.perf_counter()
        quiet = measure(steps, threads, setting, 0)
        loaded = measure(steps, threads, setting, busy)
        reference = reference or quiet
        print(f"{label}:")
        for key, name in (("train_img_s", "training"), ("eval_img_s", "evaluation")):
            print(f"  {name:10s} quiet {quiet[key]:6.1f} img/s ({quiet[key] / reference[key]:.2f}x the default's), "
                  f"{busy} busy core(s) {loaded[key]:6.1f} img/s: {quiet[key] / loaded[key]:.2f}x slower")
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--busy", type=int, default=1, help="busy-looping processes beside the workload")
    args = parser.parse_args()
    run(args.steps, args.threads, args.busy)


if __name__ == "__main__":
    main()
