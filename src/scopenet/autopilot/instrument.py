"""The instrument interface every autopilot backend implements, its typed errors and its action log.

A :class:`Microscope` scans areas, moves the tip, applies conditioning actions (bias pulses and tip
dips), approaches and withdraws. Every public call is recorded in :attr:`Microscope.log` as an
:class:`ActionRecord` with the instrument time at its start and the instrument time it took.
Backends implement the underscored methods and :meth:`Microscope.now`:

- :class:`~scopenet.autopilot.sim.SimMicroscope`: a simulated instrument with a latent tip state;
- :class:`~scopenet.autopilot.replay.ReplayMicroscope`: recorded images served back;
- :class:`~scopenet.autopilot.nanonis.NanonisMicroscope`: a Nanonis controller over TCP.

Conditioning actions follow DeepSPM (Krull et al., Commun. Phys. 3, 54, 2020): twelve actions, six
bias pulses and six tip dips (:data:`ACTIONS`), each needing a clean spot of some radius
(:func:`clean_radius_nm`) that is not used again.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ScopenetError
from ..image import Axis, Micrograph

__all__ = ["ACTIONS", "ACTION_NAMES", "Action", "ActionRecord", "AreaUsedError", "InstrumentError",
           "LostContactError", "Microscope", "TipCrashError", "action_name", "clean_radius_nm",
           "scan_micrograph"]


class InstrumentError(ScopenetError):
    """An instrument refused or failed a command."""


class TipCrashError(InstrumentError):
    """The tip crashed into the sample (the apex is damaged; move elsewhere and re-approach)."""


class LostContactError(InstrumentError):
    """No tunnelling contact: the tip is withdrawn or the feedback lost the surface."""


class AreaUsedError(InstrumentError):
    """A conditioning action was asked for on a spot already used (DeepSPM forbids reuse)."""


@dataclass(frozen=True)
class Action:
    """One conditioning action: ``kind`` ``"pulse"`` (``value`` in V) or ``"dip"`` (``value`` in nm)."""

    kind: str
    value: float
    duration_s: float = 0.2
    bias_v: float = 0.02        # dips are made at 20 mV

    @property
    def name(self) -> str:
        return f"pulse{self.value:+g}V" if self.kind == "pulse" else f"dip{self.value:g}nm"


#: DeepSPM's twelve conditioning actions: pulses of +-2.5, +-4 and +-8 V, and dips of 0.8, 1.0, 1.2,
#: 1.8, 2.5 and 5.0 nm at 20 mV, each about 200 ms.
ACTIONS: tuple[Action, ...] = tuple(
    [Action("pulse", v) for v in (2.5, -2.5, 4.0, -4.0, 8.0, -8.0)]
    + [Action("dip", d) for d in (0.8, 1.0, 1.2, 1.8, 2.5, 5.0)])
ACTION_NAMES = tuple(a.name for a in ACTIONS)


def action_name(index: int) -> str:
    """Name of action ``index`` of :data:`ACTIONS` (``"pulse+2.5V"``, ``"dip1.8nm"``...)."""
    return ACTION_NAMES[int(index)]


def clean_radius_nm(action: Action) -> float:
    """Radius (nm) of clean surface an action needs around its spot: pulses ``1 + |V| / 2``, dips ``2 + 2 d``."""
    return 1.0 + abs(action.value) / 2 if action.kind == "pulse" else 2.0 + 2.0 * action.value


@dataclass
class ActionRecord:
    """One logged instrument call.

    Attributes
    ----------
    t_s : float
        Instrument time at the start of the call (s).
    duration_s : float
        Instrument time the call took (s).
    method : str
        ``"scan"``, ``"move"``, ``"pulse"``, ``"dip"``, ``"approach"``, ``"withdraw"``.
    args : dict
        The call's arguments (JSON-serialisable).
    error : str or None
        The typed error's class name when the call failed.
    """

    t_s: float
    duration_s: float
    method: str
    args: dict = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def scan_micrograph(heights_m, centre_nm: tuple[float, float], size_nm: float, bias_v: float,
                    setpoint_a: float, backend: str, **metadata) -> Micrograph:
    """A calibrated STM topograph (metres; axes in nm, offset so the frame is centred on ``centre_nm``)."""
    import numpy as np

    z = np.asarray(heights_m, np.float32)
    h, w = z.shape
    sy, sx = size_nm / h, size_nm / w
    axes = [Axis("y", h, sy, centre_nm[1] - size_nm / 2, "nm"), Axis("x", w, sx, centre_nm[0] - size_nm / 2, "nm")]
    md = {"bias_v": float(bias_v), "setpoint_a": float(setpoint_a), "centre_nm": [float(c) for c in centre_nm],
          "size_nm": float(size_nm), "backend": backend, **metadata}
    return Micrograph(z, axes=axes, signal="height", signal_unit="m", scan_direction="forward/down",
                      modality="STM", metadata=md)


class Microscope(ABC):
    """An STM as the autopilot sees it (subclasses implement the ``_`` methods and :meth:`now`).

    Lengths are in nm in the sample's frame, biases in V, currents in A, times in s. Every public
    method appends an :class:`ActionRecord` to :attr:`log` (also when it raises).
    """

    backend = "abstract"

    def __init__(self) -> None:
        self.log: list[ActionRecord] = []

    # ------------------------------------------------------------------ backend hooks
    @abstractmethod
    def now(self) -> float:
        """Instrument time (s) since the backend started."""

    @abstractmethod
    def _scan(self, centre_nm, size_nm, pixels, bias_v, setpoint_a) -> Micrograph: ...

    @abstractmethod
    def _move(self, x_nm, y_nm) -> None: ...

    @abstractmethod
    def _pulse(self, bias_v, duration_s) -> None: ...

    @abstractmethod
    def _dip(self, depth_nm, bias_v, duration_s) -> None: ...

    @abstractmethod
    def _approach(self) -> None: ...

    @abstractmethod
    def _withdraw(self) -> None: ...

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Position (nm), bias, whether approached, instrument time, and backend extras."""

    # ------------------------------------------------------------------ logged calls
    def _logged(self, method: str, args: dict, fn, *a):
        t0 = self.now()
        try:
            out = fn(*a)
        except InstrumentError as e:
            self.log.append(ActionRecord(t0, self.now() - t0, method, args, type(e).__name__))
            raise
        self.log.append(ActionRecord(t0, self.now() - t0, method, args))
        return out

    def scan(self, centre_nm: tuple[float, float], size_nm: float, pixels: int = 64, bias_v: float = -2.0,
             setpoint_a: float = 30e-12) -> Micrograph:
        """Scan a square frame centred on ``centre_nm`` (nm) of side ``size_nm`` with ``pixels`` per side.

        Returns
        -------
        Micrograph
            Topograph (m), axes in nm; metadata holds the scan settings.

        Raises
        ------
        LostContactError
            The tip is withdrawn.
        """
        args = {"centre_nm": [float(centre_nm[0]), float(centre_nm[1])], "size_nm": float(size_nm),
                "pixels": int(pixels), "bias_v": float(bias_v), "setpoint_a": float(setpoint_a)}
        return self._logged("scan", args, self._scan, tuple(args["centre_nm"]), float(size_nm), int(pixels),
                            float(bias_v), float(setpoint_a))

    def move(self, x_nm: float, y_nm: float) -> None:
        """Move the tip (in tunnelling contact) to ``(x_nm, y_nm)``."""
        self._logged("move", {"x_nm": float(x_nm), "y_nm": float(y_nm)}, self._move, float(x_nm), float(y_nm))

    def pulse(self, bias_v: float, duration_s: float = 0.2) -> None:
        """Apply a bias pulse of ``bias_v`` (V) for ``duration_s`` (s) at the current position."""
        self._logged("pulse", {"bias_v": float(bias_v), "duration_s": float(duration_s)}, self._pulse,
                     float(bias_v), float(duration_s))

    def dip(self, depth_nm: float, bias_v: float = 0.02, duration_s: float = 0.2) -> None:
        """Dip the tip ``depth_nm`` (nm) towards the surface at ``bias_v`` and retract.

        Raises
        ------
        TipCrashError
            The dip crashed the tip (the backend has withdrawn it).
        """
        self._logged("dip", {"depth_nm": float(depth_nm), "bias_v": float(bias_v), "duration_s": float(duration_s)},
                     self._dip, float(depth_nm), float(bias_v), float(duration_s))

    def approach(self) -> None:
        """Approach until tunnelling contact."""
        self._logged("approach", {}, self._approach)

    def withdraw(self) -> None:
        """Withdraw the tip (Z-controller off, tip retracted)."""
        self._logged("withdraw", {}, self._withdraw)

    def condition(self, action: int | Action) -> Action:
        """Apply one of :data:`ACTIONS` (by index or value) at the current position; returns the action."""
        a = ACTIONS[int(action)] if not isinstance(action, Action) else action
        if a.kind == "pulse":
            self.pulse(a.value, a.duration_s)
        else:
            self.dip(a.value, a.bias_v, a.duration_s)
        return a

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for in-process backends
        """Release the connection (nothing for in-process backends)."""


class WallClock:
    """Instrument time for real backends: seconds of wall time since construction."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self._t0
