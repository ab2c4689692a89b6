"""Scaling out: batch processing of many files on a Dask cluster (:mod:`.batch`), the tasks it runs
(:mod:`.tasks`) and images larger than memory, block by block (:mod:`.tiled`)."""
from .batch import BatchReport, find_inputs, run_batch
from .tasks import BATCH_TASKS, BatchTask, register_batch_task

__all__ = ["BATCH_TASKS", "BatchReport", "BatchTask", "find_inputs", "register_batch_task", "run_batch"]
