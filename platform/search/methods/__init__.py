"""Search methods beside the RL agent: the baselines AUTO-PRUNE is compared against.

Each baseline is a *proposer*: a generator that yields per-layer ratio vectors and receives
each one's evaluated episode record. One Tune trial per constraint drives it against the
same EpisodeEvaluator the RL env runners use (``platform.search.methods.trial``), so every method is
scored by the same mapping, cost model and accuracy evaluation, within the same budget of
evaluated episodes.
"""
