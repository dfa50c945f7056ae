"""Searching: RLlib agents and their callbacks, the Tune sweep over constraints, running bests,
the baseline search methods, and re-checking and finalizing each trial's best policies."""
