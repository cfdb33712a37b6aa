"""Evaluate checkpoints, plot return curves, run benchmarks."""
