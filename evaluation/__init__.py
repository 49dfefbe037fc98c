"""Benchmarks, the paper's metrics and the runner (``python -m evaluation.run``).

``evaluation`` uses ``baselines`` and ``dbm``; neither imports ``evaluation``.
"""
