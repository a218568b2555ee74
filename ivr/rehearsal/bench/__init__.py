"""Benchmarks: `ivr bench ...`. Figures are medians over rounds, with ratios
against a baseline measured in the same run."""
