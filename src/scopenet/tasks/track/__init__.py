"""Movies: drift correction by phase correlation, particle tracking (trackpy), velocities and MSD."""
from .config import TrackConfig
from .drift import correct_drift, estimate_drift, frame_shift
from .tracking import add_velocities, link, locate, msd, scan_timing, track

__all__ = ["TrackConfig", "add_velocities", "correct_drift", "estimate_drift", "frame_shift", "link", "locate", "msd",
           "scan_timing", "track"]
