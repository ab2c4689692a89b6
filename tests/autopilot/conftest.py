"""A fast stand-in judge for loop tests: reads the simulator's truth from the image metadata."""
import numpy as np
import pytest

from scopenet.autopilot.judge import JudgeResult


class TruthJudge:
    """p_good 0.95 for images scanned with a good tip, else 0.05 (or always ``p`` when given)."""

    embedding_dim = 4
    aux_categories: list = []

    def __init__(self, p: float | None = None):
        self.p = p
        self.calls = 0

    def __call__(self, img):
        self.calls += 1
        p = self.p if self.p is not None else (0.95 if img.metadata.get("tip_good") else 0.05)
        e = np.asarray([np.std(img.data) * 1e10, p, 0.0, 1.0], np.float32)
        return JudgeResult(p, "good" if p >= 0.9 else "bad", float("nan"), True, {}, e)


@pytest.fixture
def truth_judge():
    return TruthJudge()
