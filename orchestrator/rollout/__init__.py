"""Rollouts ring by ring: pure decisions (`planner`) and the `runner` that drives engine/verify."""
