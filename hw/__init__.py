"""Crossbar hardware: its specification, cost model and functional simulator."""
