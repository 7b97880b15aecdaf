"""The bench's measures, one module each over a shared harness (harness.py); scripts/bench.py is
their command line. Nothing is imported or run here.
"""
