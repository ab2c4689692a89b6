"""CLI command: ``scopenet autopilot (--sim | --replay DIR | --nanonis HOST:PORT) -o DIR``.

Runs the unattended imaging/conditioning loop (:mod:`scopenet.autopilot.supervisor`) and writes
``DIR/log.jsonl`` (one event per line), ``DIR/checkpoint.json``, ``DIR/images/`` (sample images) and
``DIR/report.html``. ``--resume`` carries on an interrupted run from its checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import user_errors


def _agent(spec: str, seed: int):
    from ..autopilot.agent import FixedSequenceAgent, QAgent, RandomAgent
    from ..autopilot.instrument import ACTION_NAMES
    from ..errors import InputError

    if spec == "random":
        return RandomAgent(seed)
    if spec.startswith("fixed:"):
        items = [s.strip() for s in spec[6:].split(",") if s.strip()]
        try:
            idx = [ACTION_NAMES.index(s) if s in ACTION_NAMES else int(s) for s in items]
        except ValueError:
            raise InputError(f"fixed sequence {spec!r}: use action indices 0-11 or names "
                             f"({', '.join(ACTION_NAMES)})") from None
        return FixedSequenceAgent(idx)
    if Path(spec + ".json").exists() or spec.endswith(".json"):
        return QAgent.load(spec)
    return QAgent.pretrained(spec)


def _backend(sim: bool, replay: Optional[Path], nanonis: Optional[str], seed: int):
    from ..errors import InputError

    chosen = [n for n, v in (("--sim", sim), ("--replay", replay), ("--nanonis", nanonis)) if v]
    if len(chosen) != 1:
        raise InputError("choose exactly one backend: --sim, --replay DIR or --nanonis HOST:PORT"
                         + (f" (got {' '.join(chosen)})" if chosen else ""))
    if sim:
        from ..autopilot.sim import SimMicroscope

        return SimMicroscope(seed=seed)
    if replay is not None:
        from ..autopilot.replay import ReplayMicroscope

        return ReplayMicroscope(replay, seed=seed)
    from ..autopilot.nanonis import NanonisMicroscope

    host, _, port = str(nanonis).rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--nanonis needs HOST:PORT, got {nanonis!r}")
    return NanonisMicroscope(host, int(port))


def register(app: typer.Typer) -> None:
    @app.command("autopilot")
    def autopilot(
        out: Path = typer.Option(..., "-o", "--out", help="run folder (log.jsonl, checkpoint.json, images/, report.html)"),
        sim: bool = typer.Option(False, "--sim", help="run on the simulated microscope"),
        replay: Optional[Path] = typer.Option(None, "--replay", help="serve recorded images from DIR (replay backend)"),
        nanonis: Optional[str] = typer.Option(None, "--nanonis", help="drive a Nanonis controller at HOST:PORT"),
        hours: float = typer.Option(86.0, "--hours", help="instrument hours to run"),
        seed: int = typer.Option(0, "--seed", help="seed of the simulator / replay order / random agent"),
        agent: str = typer.Option("default", "--agent",
                                  help="shipped agent NAME, a saved agent path, 'random', or 'fixed:A,B,...'"),
        judge: Optional[str] = typer.Option(
            None, "--judge", help="classify model that judges the images: a single-label good/bad model or a "
                                  "multi-label H:Si model such as hsi-six, or the tip-feature judge autopilot-judge "
                                  "(default: the agent's own judge)"),
        threshold: Optional[float] = typer.Option(
            None, "--threshold", help="good-tip probability at which the judge says good (default: the agent's "
                                      "judge, 0.9 as DeepSPM; about 0.5 suits the hsi-six crowd rule)"),
        max_bad: int = typer.Option(4, "--max-bad", help="consecutive bad images that declare the tip bad"),
        resume: bool = typer.Option(False, "--resume", help="carry on the run in OUT from its checkpoint"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in OUT"),
        report: bool = typer.Option(True, "--report/--no-report", help="write OUT/report.html at the end"),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="no progress bar"),
    ):
        """Condition the tip and image unattended (DeepSPM's loop) on a simulated, recorded or real STM."""
        with user_errors():
            import time

            from ..autopilot.judge import judge_from_card, make_judge
            from ..autopilot.report import write_report
            from ..autopilot.supervisor import Supervisor, SupervisorConfig
            from ..errors import InputError

            if hours <= 0:
                raise InputError(f"--hours must be positive, got {hours}")
            if (out / "log.jsonl").exists() and not (resume or overwrite):
                raise InputError(f"{out} holds a run already: pass --resume to carry it on or --overwrite to replace it")
            pilot = _agent(agent, seed)
            mic = _backend(sim, replay, nanonis, seed)
            card = getattr(pilot, "card", None)
            if threshold is not None and not 0 < threshold < 1:
                raise InputError(f"--threshold must be between 0 and 1, got {threshold}")
            the_judge = (judge_from_card(card, model=judge, threshold=threshold) if card
                         else make_judge(judge or "good-bad", threshold=threshold))  # None: the judge's own default
            sup = Supervisor(mic, the_judge, pilot, out, SupervisorConfig(hours=hours, max_bad=max_bad,
                                                                     good_threshold=the_judge.threshold))
            if resume and (out / "checkpoint.json").exists():
                sup.resume()
            t0 = time.time()
            try:
                tot = sup.run(progress=not quiet)
            finally:
                mic.close()
            wall = time.time() - t0
            d = tot.to_dict()
            typer.echo(f"instrument time {d['time_s'] / 3600:.2f} h in {wall:.0f} s wall; images {d['images']} "
                       f"(good {d['good_images']}), actions {d['actions']}, episodes {d['episodes']}, "
                       f"crashes {d['crashes']}")
            typer.echo(f"time with a good tip: {d['good_time_fraction']:.3f} (judge)"
                       + (f", {d['true_good_time_fraction']:.3f} (simulator truth)"
                          if d.get("true_good_time_fraction") is not None else ""))
            if report:
                typer.echo(f"report: {write_report(out)}")
