"""User tasks: one folder per task, each with config.py, model.py, baselines.py and bench.py."""
