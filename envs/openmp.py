"""Let OpenMP's idle threads sleep rather than spin: import this module before anything loads torch.

With OpenMP's default (active) wait policy, a thread that finishes its share of a parallel
region spins until the others arrive. When another program shares the cores, the spinning
threads and the program take turns by whole scheduler slices at every barrier: on two cores,
one other job slowed the baseline's training tenfold. `OMP_WAIT_POLICY=PASSIVE` makes idle
threads yield instead: with one other busy process on two cores, training slowed 1.77x instead of
3.14x, for 8% of its quiet speed (`python -m bench.contention`). OpenMP reads the variable
once, when torch loads it, so the entry points (`platform.launch`, `platform.compare`,
`platform.inspect`, `envs.workload.train_baseline`) import this module first; Ray workers and
subprocesses inherit the setting. A value the user set is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
