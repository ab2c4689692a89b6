"""Segmentation: per-pixel classes with a U-Net family (``Segmenter``), particle analysis, baselines."""
from .config import SegmentConfig, SegmentTrainConfig
from .model import DEFAULT_MODEL, Segmenter, segment

__all__ = ["DEFAULT_MODEL", "SegmentConfig", "SegmentTrainConfig", "Segmenter", "segment"]
