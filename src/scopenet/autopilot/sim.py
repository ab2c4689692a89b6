"""A simulated STM whose tip really changes, and the tip-conditioning gymnasium environment on it.

:class:`SimMicroscope` holds a large H:Si(100) sample (cells of clean terrace, step bunches and
contamination, drawn from the seed) and a tip with a latent state
(:class:`~scopenet.simulate.spm.probe.ApexState`: apex radius, second apex, asymmetry, adsorbate,
instability). Scans are rendered from the latent state by
:func:`~scopenet.simulate.spm.probe.render_scan`; pulses and dips change it with the state-dependent
probabilities documented in :mod:`scopenet.simulate.spm.probe` (deep dips reshape more and can crash,
pulses drop or pick up adsorbates and anneal instability); scanning degrades it slowly. Conditioning
spots are marked used and cannot be used again. Instrument time is accounted per call
(:class:`SimConfig`). Everything is deterministic under ``seed``; :meth:`SimMicroscope.snapshot` /
:meth:`SimMicroscope.restore` save and restore the whole state (random generators included).

:class:`ConditioningEnv` (registered with gymnasium as ``"scopenet/TipConditioning-v0"``) is one
DeepSPM conditioning episode: the tip starts bad; each step applies one of the twelve actions at a
fresh spot, images a frame beside it and asks the judge; reward -1 per action and +10 when the
judge's good-tip probability reaches 0.9 (the episode ends), at most 100 actions.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..simulate.spm.probe import ApexState, apply_dip, apply_pulse, degrade, random_bad_apex, render_scan
from .areas import AreaPlan, Layout
from .instrument import ACTIONS, Action, AreaUsedError, LostContactError, Microscope, TipCrashError, clean_radius_nm, \
    scan_micrograph

__all__ = ["ConditioningEnv", "ENV_ID", "SimConfig", "SimMicroscope"]

ENV_ID = "scopenet/TipConditioning-v0"


class SimConfig(BaseModel):
    """Sample, tip and timing of the simulated microscope (lengths in nm, times in s)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    layout: Layout = Field(default_factory=Layout)
    p_contaminated: float = Field(0.2, ge=0, le=1, description="fraction of cells with contamination")
    p_stepped: float = Field(0.25, ge=0, le=1, description="fraction of cells with step edges")
    contamination_density: float = Field(0.08, ge=0, description="adsorbates per nm^2 on contaminated cells")
    clean_density_max: float = Field(0.004, ge=0, description="adsorbates per nm^2 on clean cells, up to")
    crash_damage_nm: float = Field(100.0, ge=0, description="radius contaminated by a crash (nm)")
    line_time_s: float = Field(1.0, gt=0, description="time per scan line, forward and back (s)")
    scan_overhead_s: float = Field(5.0, ge=0)
    move_speed_nm_s: float = Field(100.0, gt=0)
    move_settle_s: float = Field(5.0, ge=0, description="settling after a move longer than one cell")
    action_settle_s: float = Field(3.0, ge=0, description="settling after a pulse or dip")
    approach_s: float = Field(120.0, ge=0)
    withdraw_s: float = Field(5.0, ge=0)
    white_noise: float = Field(0.05, ge=0, description="white noise / atom height")
    pink_noise: float = Field(0.08, ge=0, description="1/f noise / atom height")
    start_good: bool = Field(False, description="start with a good tip instead of a random bad one")
    surface_pool: int = Field(0, ge=0, description="if > 0, image only this many distinct surface patches "
                              "(cached spectra: faster, for training); 0 = every frame its own patch")


#: surface spectra shared by all simulators with ``surface_pool > 0`` (bounded; see SimConfig.surface_pool)
_POOL_CACHE: dict = {}


def _bitgen_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


class SimMicroscope(Microscope):
    """An STM in software (see the module docstring).

    Parameters
    ----------
    config : SimConfig, dict or None
    **overrides
        SimConfig fields, e.g. ``seed=3``.

    Examples
    --------
    >>> from scopenet.autopilot.sim import SimMicroscope
    >>> m = SimMicroscope(seed=1)
    >>> img = m.scan((10.0, 10.0), 8.0)
    >>> img.shape, round(m.now())
    ((64, 64), 69)
    """

    backend = "sim"

    def __init__(self, config: SimConfig | dict | None = None, **overrides):
        super().__init__()
        base = config.model_dump() if isinstance(config, SimConfig) else dict(config or {})
        base.update(overrides)
        self.config = SimConfig(**base)
        ss = np.random.SeedSequence(self.config.seed)
        k_tip, k_scan = ss.spawn(2)
        self.rng_tip = np.random.default_rng(k_tip)
        self.rng_scan = np.random.default_rng(k_scan)
        self.apex = ApexState() if self.config.start_good else random_bad_apex(self.rng_tip)
        self.clock = 0.0
        self.xy = (0.0, 0.0)
        self.approached = True
        self.used = np.zeros((0, 3))            # conditioning spots: x, y, radius (nm)
        self.crashes = np.zeros((0, 2))         # crash sites
        self.plan = AreaPlan(self.config.layout)

    # ------------------------------------------------------------------ sample
    def cell_properties(self, xy: tuple[float, float]) -> dict:
        """Steps and contamination of the cell under ``xy`` (drawn from the seed; crashes add damage)."""
        cell = self.plan.cell_of(xy)
        if cell < 0:
            props = {"cell": -1, "p_steps": 0.0, "adsorbate_density": 0.002}
        else:
            r = np.random.default_rng([self.config.seed, 7, cell])
            dirty = r.random() < self.config.p_contaminated
            stepped = r.random() < self.config.p_stepped
            props = {"cell": cell, "p_steps": 0.9 if stepped else 0.0,
                     "adsorbate_density": (self.config.contamination_density if dirty
                                           else float(r.uniform(0, self.config.clean_density_max)))}
        if len(self.crashes) and np.min(np.hypot(*(self.crashes - np.asarray(xy)).T)) < self.config.crash_damage_nm:
            props["adsorbate_density"] = max(props["adsorbate_density"], self.config.contamination_density)
        return props

    # ------------------------------------------------------------------ backend hooks
    def now(self) -> float:
        return self.clock

    def state(self) -> dict[str, Any]:
        return {"x_nm": self.xy[0], "y_nm": self.xy[1], "approached": self.approached, "time_s": self.clock,
                "apex": self.apex.to_dict(), "tip_good": self.apex.good(), "defects": self.apex.defects()}

    def _scan(self, centre_nm, size_nm, pixels, bias_v, setpoint_a):
        if not self.approached:
            raise LostContactError("cannot scan: the tip is withdrawn (approach first)")
        self._travel(centre_nm)
        props = self.cell_properties(centre_nm)
        seed = int(np.random.SeedSequence([self.config.seed, 11, int(round(centre_nm[0] * 10)),
                                           int(round(centre_nm[1] * 10))]).generate_state(1)[0])
        cache = None
        if self.config.surface_pool:
            seed %= self.config.surface_pool
            if len(_POOL_CACHE) > 64 * self.config.surface_pool:
                _POOL_CACHE.clear()
            cache = _POOL_CACHE
        z = render_scan(self.apex, self.rng_scan, size=pixels, fov_m=size_nm * 1e-9, surface_seed=seed,
                        p_steps=props["p_steps"], adsorbate_density=props["adsorbate_density"],
                        white_noise=self.config.white_noise, pink_noise_level=self.config.pink_noise,
                        spectrum_cache=cache)
        tip_good = self.apex.good()
        self.apex = degrade(self.apex, self.rng_tip)
        self.clock += pixels * self.config.line_time_s * (pixels / 64) + self.config.scan_overhead_s
        return scan_micrograph(z, centre_nm, size_nm, bias_v, setpoint_a, self.backend, tip_good=tip_good,
                               cell=props["cell"])

    def _travel(self, xy) -> None:
        d = float(np.hypot(xy[0] - self.xy[0], xy[1] - self.xy[1]))
        if d > 0:
            self.clock += d / self.config.move_speed_nm_s
            if d > self.config.layout.cell_nm:
                self.clock += self.config.move_settle_s
        self.xy = (float(xy[0]), float(xy[1]))

    def _move(self, x_nm, y_nm):
        self._travel((x_nm, y_nm))

    def _check_spot(self, radius: float) -> None:
        if len(self.used):
            d = np.hypot(self.used[:, 0] - self.xy[0], self.used[:, 1] - self.xy[1])
            if np.any(d < self.used[:, 2] + radius):
                raise AreaUsedError(f"spot ({self.xy[0]:.1f}, {self.xy[1]:.1f}) nm overlaps a used conditioning spot")
        self.used = np.vstack([self.used, [self.xy[0], self.xy[1], radius]])

    def _pulse(self, bias_v, duration_s):
        if not self.approached:
            raise LostContactError("cannot pulse: the tip is withdrawn")
        self._check_spot(clean_radius_nm(Action("pulse", bias_v)))
        self.apex = apply_pulse(self.apex, bias_v, self.rng_tip)
        self.clock += duration_s + self.config.action_settle_s

    def _dip(self, depth_nm, bias_v, duration_s):
        if not self.approached:
            raise LostContactError("cannot dip: the tip is withdrawn")
        self._check_spot(clean_radius_nm(Action("dip", depth_nm)))
        self.apex, crashed = apply_dip(self.apex, depth_nm, self.rng_tip)
        self.clock += duration_s + self.config.action_settle_s
        if crashed:
            self.crashes = np.vstack([self.crashes, [self.xy[0], self.xy[1]]])
            self.approached = False
            self.clock += self.config.withdraw_s
            raise TipCrashError(f"tip crashed during a {depth_nm:g} nm dip at ({self.xy[0]:.1f}, {self.xy[1]:.1f}) nm")

    def _approach(self):
        if not self.approached:
            self.clock += self.config.approach_s
        self.approached = True

    def _withdraw(self):
        if self.approached:
            self.clock += self.config.withdraw_s
        self.approached = False

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> dict:
        """The whole state as JSON-serialisable data (restore with :meth:`restore`)."""
        return {"config": self.config.model_dump(), "apex": self.apex.to_dict(), "clock": self.clock,
                "xy": list(self.xy), "approached": self.approached, "used": self.used.tolist(),
                "crashes": self.crashes.tolist(), "rng_tip": _bitgen_state(self.rng_tip),
                "rng_scan": _bitgen_state(self.rng_scan)}

    def restore(self, snap: dict) -> "SimMicroscope":
        """Put the microscope back into a :meth:`snapshot` state (the config must match)."""
        self.config = SimConfig(**snap["config"])
        self.plan = AreaPlan(self.config.layout)
        self.apex = ApexState.from_dict(snap["apex"])
        self.clock = float(snap["clock"])
        self.xy = tuple(snap["xy"])
        self.approached = bool(snap["approached"])
        self.used = np.asarray(snap["used"], float).reshape(-1, 3)
        self.crashes = np.asarray(snap["crashes"], float).reshape(-1, 2)
        self.rng_tip.bit_generator.state = snap["rng_tip"]
        self.rng_scan.bit_generator.state = snap["rng_scan"]
        return self


# ----------------------------------------------------------------------------- gymnasium

def _gym():
    from ..errors import require

    return require("gymnasium", "rl", "the tip-conditioning environment")


class ConditioningEnv:  # becomes a gymnasium.Env subclass on first use (see _env_class)
    pass


def _env_class():
    gym = _gym()
    from gymnasium import spaces

    from .agent import N_RECENT, observation, observation_size
    from .supervisor import condition_once

    class _ConditioningEnv(gym.Env):
        """One DeepSPM tip-conditioning episode on :class:`SimMicroscope` (see the module docstring).

        Parameters
        ----------
        judge : Judge, optional
            Default: :class:`~scopenet.autopilot.judge.Judge` with the shipped models.
        max_actions : int
            Episode cap (DeepSPM: 100).
        sim : dict, optional
            :class:`SimConfig` fields (``seed`` is set by ``reset``).
        """

        metadata = {"render_modes": []}

        def __init__(self, judge=None, max_actions: int = 100, sim: dict | None = None,
                     good_reward: float = 10.0):
            from .judge import Judge

            self.judge = judge if judge is not None else Judge()
            self.max_actions = int(max_actions)
            self.sim_kw = dict(sim or {})
            self.good_reward = float(good_reward)
            self.action_space = spaces.Discrete(len(ACTIONS))
            n = observation_size(self.judge)
            self.observation_space = spaces.Box(-np.inf, np.inf, (n,), np.float32)
            self.mic: SimMicroscope | None = None
            self._episode = 0

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            if seed is None:
                seed = int(self.np_random.integers(2**31))
            self.mic = SimMicroscope(**{**self.sim_kw, "seed": int(seed)})
            self.plan = AreaPlan(self.mic.config.layout)
            self.recent: list[int] = []
            self.n = 0
            spot, probe = self.plan.next_spot()
            self.last = self.judge(self.mic.scan(probe, self.mic.config.layout.frame_nm))
            return observation(self.last, self.recent, 0, self.max_actions, False), self._info(False)

        def _info(self, crashed: bool) -> dict:
            return {"tip_good": self.mic.apex.good(), "p_good": self.last.p_good, "crashed": crashed,
                    "time_s": self.mic.now(), "defects": self.mic.apex.defects()}

        def step(self, action):
            a = int(action)
            res, crashed = condition_once(self.mic, self.judge, self.plan, a)
            self.last = res
            self.n += 1
            self.recent = (self.recent + [a])[-N_RECENT:]
            good = res.verdict == "good" and res.p_good >= 0.9
            reward = -1.0 + (self.good_reward if good else 0.0)
            truncated = (not good) and self.n >= self.max_actions
            obs = observation(res, self.recent, self.n, self.max_actions, crashed)
            return obs, reward, good, truncated, self._info(crashed)

    return _ConditioningEnv


def make_env(**kw):
    """A :class:`ConditioningEnv` (gymnasium environment) with keyword settings (see its docstring)."""
    global ConditioningEnv
    if not hasattr(ConditioningEnv, "step"):
        ConditioningEnv = _env_class()
    return ConditioningEnv(**kw)


def register_env() -> None:
    """Register ``scopenet/TipConditioning-v0`` with gymnasium (idempotent)."""
    gym = _gym()
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="scopenet.autopilot.sim:make_env")


try:  # registration is cheap; skip quietly without the rl extra
    register_env()
except ImportError:  # pragma: no cover
    pass
