"""Benchmarks of `backprop` against hand-written and library references (issue 5).

Run ``python -m benchmarks --help``; `benchmarks/README.md` explains the columns and the floor.
"""
