"""Scaling out: batch processing of many files on a Dask cluster (:mod:`.batch`)."""
from .batch import BATCH_TASKS, BatchReport, find_inputs, run_batch

__all__ = ["BATCH_TASKS", "BatchReport", "find_inputs", "run_batch"]
