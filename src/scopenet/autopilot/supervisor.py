"""The supervisor: DeepSPM's unattended loop of imaging, judging and conditioning, logged and resumable.

Loop (one *cycle* per image):

1. **Imaging.** Scan the next frame of the current imaging cell (:class:`~.areas.AreaPlan`). The judge
   says good, bad or unknown. An unclean image (contamination, step edge: :func:`~.areas.area_clean`)
   or an ``unknown`` verdict abandons the cell (the tip is not blamed). A good image is counted and
   resets the bad counter; after ``max_bad`` (default 4) consecutive bad images the tip is declared bad.
2. **Conditioning.** At fresh spots of the conditioning region, the agent chooses an action from its
   observation (:func:`~.agent.observation`); the tip images a frame beside the spot; the episode
   ends when the judge's good-tip probability reaches ``good_threshold`` (0.9), or after
   ``max_actions`` (100) actions (the episode is given up and a new one starts).
3. **Crashes.** A :class:`~.instrument.TipCrashError` withdraws the tip; the supervisor moves on to a
   fresh spot (and abandons the imaging cell if it happened there), approaches and goes on.

Every event is one JSON line in ``log.jsonl``; after every cycle ``checkpoint.json`` (written to a
temporary name, then renamed) holds the supervisor's counters, the area cursor, the agent's recent
actions and the backend's snapshot (when it has one) together with the number of log lines written.
:meth:`Supervisor.resume` truncates the log to that line count and carries on: for the simulator, a
run killed and resumed ends with the same totals as an uninterrupted one.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .agent import N_RECENT, observation
from .areas import AreaPlan, Layout, area_clean
from .instrument import ACTIONS, InstrumentError, LostContactError, Microscope, TipCrashError

__all__ = ["Supervisor", "SupervisorConfig", "Totals", "condition_once", "run_episode"]


def condition_once(mic: Microscope, judge, plan: AreaPlan, action: int, pixels: int = 64):
    """Apply one action at a fresh conditioning spot and judge a frame beside it.

    Returns
    -------
    (JudgeResult, bool)
        The judge's view of the new image, and whether the action crashed the tip.
    """
    spot, probe = plan.next_spot()
    mic.move(*spot)
    crashed = False
    try:
        mic.condition(int(action))
    except TipCrashError:
        crashed = True
        spot, probe = plan.next_spot()          # away from the crash site
        mic.move(*spot)
        mic.approach()
    except LostContactError:
        mic.approach()
    img = mic.scan(probe, plan.layout.frame_nm, pixels)
    res = judge(img)
    res.image = img
    return res, crashed


def _event_of(line: str) -> str | None:
    """The ``event`` of one JSON-lines log record (None when the line is not a complete record)."""
    try:
        return json.loads(line).get("event")
    except ValueError:
        return None


def run_episode(mic: Microscope, judge, agent, max_actions: int = 100, good_threshold: float = 0.9,
                plan: AreaPlan | None = None) -> dict:
    """One conditioning episode from the microscope's current (bad) tip; the numbers DeepSPM counted.

    Returns
    -------
    dict
        ``actions`` (taken), ``success`` (the judge declared the tip good within ``max_actions``),
        ``tip_good`` (the backend's truth at the end, when it knows it; else None), ``time_s``
        (instrument time), ``crashes``, ``sequence`` (action indices).
    """
    plan = plan or AreaPlan(getattr(getattr(mic, "config", None), "layout", Layout()))
    if hasattr(agent, "bind"):
        agent.bind(mic)
    agent.reset()
    t0 = mic.now()
    _, probe = plan.next_spot()
    res = judge(mic.scan(probe, plan.layout.frame_nm))
    recent: list[int] = []
    crashes = 0
    seq = []
    crashed = False
    n = 0
    success = False
    while n < max_actions:
        a = agent.act(observation(res, recent, n, max_actions, crashed))
        res, crashed = condition_once(mic, judge, plan, a)
        crashes += crashed
        n += 1
        seq.append(int(a))
        recent = (recent + [int(a)])[-N_RECENT:]
        if res.verdict == "good" and res.p_good >= good_threshold:
            success = True
            break
    st = mic.state()
    return {"actions": n, "success": success, "tip_good": st.get("tip_good"), "time_s": mic.now() - t0,
            "crashes": crashes, "sequence": seq}


class SupervisorConfig(BaseModel):
    """Settings of the unattended loop."""

    model_config = ConfigDict(extra="forbid")

    max_bad: int = Field(4, ge=1, description="consecutive bad images that declare the tip bad")
    good_threshold: float = Field(0.9, gt=0, lt=1, description="judge probability that ends conditioning")
    max_actions: int = Field(100, ge=1, description="actions per conditioning episode before giving up")
    pixels: int = Field(64, ge=16, description="pixels per side of every scan")
    hours: float = Field(86.0, gt=0, description="instrument hours to run")
    keep_images: int = Field(24, ge=0, description="sample images saved for the report")


@dataclass
class Totals:
    """Running totals of a supervised run (instrument seconds)."""

    images: int = 0
    good_images: int = 0
    bad_images: int = 0
    unknown_images: int = 0
    dirty_images: int = 0
    actions: int = 0
    episodes: int = 0
    episodes_given_up: int = 0
    crashes: int = 0
    time_s: float = 0.0
    judged_good_time_s: float = 0.0
    true_good_time_s: float = 0.0
    truth_known: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["good_time_fraction"] = self.judged_good_time_s / self.time_s if self.time_s else 0.0
        d["true_good_time_fraction"] = (self.true_good_time_s / self.time_s if self.time_s and self.truth_known
                                        else None)
        return d


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


@dataclass
class _State:
    mode: str = "imaging"          # "imaging" or "conditioning"
    consecutive_bad: int = 0
    episode_actions: int = 0
    recent: list = field(default_factory=list)
    last: dict | None = None       # last judge result (with embedding) for the agent's observation
    crashed: bool = False
    tip_judged_good: bool = True
    images_kept: int = 0


class Supervisor:
    """Runs the loop of the module docstring on any :class:`~.instrument.Microscope`.

    Parameters
    ----------
    mic : Microscope
    judge : Judge
    agent : RandomAgent, FixedSequenceAgent or QAgent
    out_dir : str or Path
        Where ``log.jsonl``, ``checkpoint.json`` and ``images/`` go.
    config : SupervisorConfig, optional
    plan : AreaPlan, optional
        Default: from the backend's layout (``mic.config.layout``) or :class:`~.areas.Layout` defaults.
    """

    def __init__(self, mic: Microscope, judge, agent, out_dir: str | Path, config: SupervisorConfig | None = None,
                 plan: AreaPlan | None = None):
        self.mic, self.judge, self.agent = mic, judge, agent
        self.cfg = config or SupervisorConfig()
        self.plan = plan or AreaPlan(getattr(getattr(mic, "config", None), "layout", Layout()))
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "log.jsonl"
        self.ckpt_path = self.out / "checkpoint.json"
        self.totals = Totals(truth_known="tip_good" in mic.state())
        self.s = _State()
        self.lines = 0
        self._fh = None

    # ------------------------------------------------------------------ log
    def _emit(self, kind: str, **data) -> None:
        rec = {"event": kind, "t_s": round(self.mic.now(), 3), **data}
        self._fh.write(json.dumps(rec) + "\n")
        self.lines += 1

    def _checkpoint(self) -> None:
        self._fh.flush()
        snap = self.mic.snapshot() if hasattr(self.mic, "snapshot") else None
        st = asdict(self.s)
        _write_json_atomic(self.ckpt_path, {"lines": self.lines, "totals": asdict(self.totals), "state": st,
                                            "plan": self.plan.to_dict(), "config": self.cfg.model_dump(),
                                            "agent": getattr(self.agent, "name", type(self.agent).__name__),
                                            "agent_rng": (self.agent.rng.bit_generator.state
                                                          if hasattr(self.agent, "rng") else None),
                                            "agent_i": getattr(self.agent, "i", None),
                                            "backend": self.mic.backend, "snapshot": snap})

    def resume(self) -> "Supervisor":
        """Continue from ``checkpoint.json``: restore everything and cut the log back to the checkpoint."""
        from ..errors import ReadError

        try:
            ck = json.loads(self.ckpt_path.read_text())
        except (OSError, ValueError) as e:
            raise ReadError(self.ckpt_path, f"no usable checkpoint to resume from ({e})") from e
        if ck["backend"] != self.mic.backend:
            raise ReadError(self.ckpt_path, f"checkpoint is of backend {ck['backend']!r}, not {self.mic.backend!r}")
        self.totals = Totals(**ck["totals"])
        self.s = _State(**ck["state"])
        self.plan = AreaPlan.from_dict(ck["plan"])
        if ck.get("snapshot") is not None and hasattr(self.mic, "restore"):
            self.mic.restore(ck["snapshot"])
        if ck.get("agent_rng") is not None and hasattr(self.agent, "rng"):
            self.agent.rng.bit_generator.state = ck["agent_rng"]
        if ck.get("agent_i") is not None and hasattr(self.agent, "i"):
            self.agent.i = ck["agent_i"]
        lines = self.log_path.read_text().splitlines(keepends=True) if self.log_path.exists() else []
        keep = lines[:ck["lines"]]
        if keep and _event_of(keep[-1]) == "end":  # a finished run: its "end" is written again when it ends
            keep = keep[:-1]
        tmp = self.log_path.with_name(self.log_path.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, self.log_path)
        self.lines = len(keep)
        self._resumed = True
        return self

    # ------------------------------------------------------------------ loop
    def _judge(self, img):
        res = self.judge(img)
        self.s.last = res.to_dict(embedding=True)
        return res

    def _save_image(self, img, res, where: str) -> str | None:
        if self.s.images_kept >= self.cfg.keep_images:
            return None
        d = self.out / "images"
        d.mkdir(exist_ok=True)
        name = f"img{self.totals.images:06d}.npy"
        np.save(d / name, np.asarray(img.data, np.float32))
        self.s.images_kept += 1
        return f"images/{name}"

    def _account(self, t0: float, truth_good: bool | None) -> None:
        dt = self.mic.now() - t0
        self.totals.time_s += dt
        if self.s.tip_judged_good:
            self.totals.judged_good_time_s += dt
        if truth_good:
            self.totals.true_good_time_s += dt

    def _obs(self):
        from .judge import JudgeResult

        last = self.s.last or {"p_good": 0.0, "verdict": "bad", "domain_score": None, "in_domain": True}
        scores = last.get("scores") or {c: 0.0 for c in getattr(self.judge, "aux_categories", [])}
        feats = last.get("features") or {f: 0.0 for f in getattr(self.judge, "feature_names", [])}
        res = JudgeResult(last["p_good"], last["verdict"], np.nan, last["in_domain"], scores,
                          np.asarray(last.get("embedding", np.zeros(self.judge.embedding_dim)), np.float32), feats)
        return observation(res, self.s.recent, self.s.episode_actions, self.cfg.max_actions, self.s.crashed)

    def _cycle(self) -> None:
        truth = self.mic.state().get("tip_good")
        t0 = self.mic.now()
        if self.s.mode == "imaging":
            c = self.plan.next_frame()
            img = self.mic.scan(c, self.plan.layout.frame_nm, self.cfg.pixels)
            res = self._judge(img)
            self.totals.images += 1
            clean = area_clean(img.data)
            path = self._save_image(img, res, "imaging")
            if not clean or res.verdict == "unknown":
                self.totals.dirty_images += not clean
                self.totals.unknown_images += res.verdict == "unknown"
                self.plan.abandon_cell()
                self._emit("image", mode="imaging", centre_nm=list(c), judge=res.to_dict(), clean=clean,
                           tip_good=truth, file=path, decision="abandon cell")
            elif res.verdict == "good":
                self.totals.good_images += 1
                self.s.consecutive_bad = 0
                self.s.tip_judged_good = True
                self._emit("image", mode="imaging", centre_nm=list(c), judge=res.to_dict(), clean=True,
                           tip_good=truth, file=path, decision="good")
            else:
                self.totals.bad_images += 1
                self.s.consecutive_bad += 1
                decision = "bad"
                if self.s.consecutive_bad >= self.cfg.max_bad:
                    self.s.mode, self.s.episode_actions, self.s.recent = "conditioning", 0, []
                    self.s.tip_judged_good, self.s.crashed = False, False
                    self.totals.episodes += 1
                    decision = f"tip bad after {self.s.consecutive_bad} bad images: conditioning"
                self._emit("image", mode="imaging", centre_nm=list(c), judge=res.to_dict(), clean=True,
                           tip_good=truth, file=path, decision=decision)
        else:
            a = int(self.agent.act(self._obs()))
            try:
                res, crashed = condition_once(self.mic, self.judge, self.plan, a, self.cfg.pixels)
            except TipCrashError:  # pragma: no cover - condition_once handles crashes of the action itself
                raise
            self.s.last = res.to_dict(embedding=True)
            self.s.crashed = crashed
            self.totals.actions += 1
            self.totals.crashes += crashed
            self.totals.images += 1
            self.s.episode_actions += 1
            self.s.recent = (self.s.recent + [a])[-N_RECENT:]
            path = self._save_image(res.image, res, "conditioning")
            self._emit("action", action=ACTIONS[a].name, index=a, crashed=crashed, judge=res.to_dict(),
                       tip_good=self.mic.state().get("tip_good"), episode_actions=self.s.episode_actions, file=path)
            if res.verdict == "good" and res.p_good >= self.cfg.good_threshold:
                self.s.mode, self.s.consecutive_bad, self.s.tip_judged_good = "imaging", 0, True
                self._emit("episode_end", actions=self.s.episode_actions, success=True)
            elif self.s.episode_actions >= self.cfg.max_actions:
                self.totals.episodes_given_up += 1
                self.totals.episodes += 1
                self._emit("episode_end", actions=self.s.episode_actions, success=False)
                self.s.episode_actions, self.s.recent = 0, []
        self._account(t0, truth)

    def run(self, hours: float | None = None, stop_after_cycles: int | None = None, progress: bool = False) -> Totals:
        """Run until ``hours`` of instrument time (default the config's) have passed.

        ``stop_after_cycles`` stops early (used to test resuming). Instrument errors other than crashes
        (handled in the loop) are logged and end the run cleanly with a final checkpoint.
        """
        end_s = 3600.0 * (self.cfg.hours if hours is None else hours)
        resumed = getattr(self, "_resumed", False)
        self._fh = open(self.log_path, "a" if resumed else "w")
        try:
            if not resumed:
                self._emit("start", backend=self.mic.backend, config=self.cfg.model_dump(),
                           agent=getattr(self.agent, "name", type(self.agent).__name__), hours=end_s / 3600)
                self._checkpoint()
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=round(end_s / 3600, 2), unit="h", desc="instrument time")
            cycles = 0
            while self.totals.time_s < end_s:
                before = self.totals.time_s
                try:
                    self._cycle()
                except LostContactError as e:
                    self._emit("error", error=type(e).__name__, message=str(e), recovery="approach")
                    self.mic.approach()
                except InstrumentError as e:
                    self._emit("error", error=type(e).__name__, message=str(e), recovery="stop")
                    break
                self._checkpoint()
                cycles += 1
                if bar is not None:
                    bar.update(round((self.totals.time_s - before) / 3600, 6))
                if stop_after_cycles is not None and cycles >= stop_after_cycles:
                    return self.totals
            self._emit("end", totals=self.totals.to_dict())
            self._checkpoint()
            if bar is not None:
                bar.close()
        finally:
            self._fh.close()
        return self.totals
