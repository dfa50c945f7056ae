"""The pruning environment's side of AUTO-PRUNE: data, models, trained baselines and the RL env."""
