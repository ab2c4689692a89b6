"""Train the tip-conditioning agent (double DQN on stable-baselines3) on the simulated microscope.

Usage::

    OMP_NUM_THREADS=1 python scripts/train_autopilot.py recipes/autopilot-default.yaml [--out src/scopenet/weights/autopilot-default]

The recipe is an :class:`scopenet.autopilot.agent.AgentTrainConfig` in YAML. Checkpoints (SB3 zips)
go to ``workdir``; a run resumes from the newest one when ``--resume`` is given. At the end the
Q-network is exported as ``<out>.safetensors`` + ``<out>.json`` (the shipped format, loaded by
``QAgent.load``; no stable-baselines3 needed to use it).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--out", default=None, help="weights stem (default: from the recipe's name)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()

    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from scopenet.autopilot.agent import AgentTrainConfig, double_dqn_class, save_q_agent
    from scopenet.autopilot.judge import Judge
    from scopenet.autopilot.sim import make_env

    cfg = AgentTrainConfig(**yaml.safe_load(Path(args.recipe).read_text()))
    torch.set_num_threads(cfg.threads)
    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    judge = Judge(aux=cfg.judge_aux, features=cfg.judge_features)
    env = make_env(judge=judge, max_actions=cfg.max_actions, sim=cfg.sim)
    env.reset(seed=cfg.seed)
    DoubleDQN = double_dqn_class()
    ckpts = sorted(work.glob("ckpt_*.zip"), key=lambda p: int(p.stem.split("_")[1]))
    if args.resume and ckpts:
        model = DoubleDQN.load(ckpts[-1], env=env)
        buf = work / "replay.pkl"
        if buf.exists():
            model.load_replay_buffer(buf)
        print(f"resumed from {ckpts[-1]} at step {model.num_timesteps}")
    else:
        model = DoubleDQN("MlpPolicy", env, learning_rate=cfg.learning_rate, buffer_size=cfg.buffer_size,
                          learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, gamma=cfg.gamma,
                          train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                          target_update_interval=cfg.target_update_interval,
                          exploration_fraction=cfg.exploration_fraction, exploration_initial_eps=1.0,
                          exploration_final_eps=cfg.exploration_final_eps,
                          policy_kwargs={"net_arch": list(cfg.hidden)}, seed=cfg.seed, verbose=0, device="cpu")
    t0 = time.time()
    log = open(work / "progress.jsonl", "a")

    class Budget(BaseCallback):
        def __init__(self):
            super().__init__()
            self.ep_len, self.lens, self.succ = 0, [], []

        def _on_step(self) -> bool:
            self.ep_len += 1
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    self.lens.append(self.ep_len)
                    self.succ.append(not info.get("TimeLimit.truncated", False))
                    self.ep_len = 0
            n = self.model.num_timesteps
            if n % cfg.checkpoint_every == 0:
                self.model.save(work / f"ckpt_{n}.zip")
                for old in sorted(work.glob("ckpt_*.zip"), key=lambda p: int(p.stem.split("_")[1]))[:-2]:
                    old.unlink()
                rec = {"step": n, "wall_s": round(time.time() - t0, 1), "eps": round(self.model.exploration_rate, 3),
                       "episodes": len(self.lens), "median_len_last100": float(sorted(self.lens[-100:])[len(self.lens[-100:]) // 2]) if self.lens else None}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(rec, flush=True)
            return time.time() - t0 < cfg.time_budget_s

    model.learn(total_timesteps=cfg.total_steps, callback=Budget(), reset_num_timesteps=not args.resume,
                progress_bar=False)
    model.save(work / f"ckpt_{model.num_timesteps}.zip")
    wall = time.time() - t0
    out = Path(args.out or f"src/scopenet/weights/autopilot-{cfg.name}")
    n_obs = env.observation_space.shape[0]
    card = {"card_format": 2, "name": f"autopilot-{cfg.name}", "task": "autopilot", "version": 1,
            "description": "Q-network of a tip-conditioning agent: observation (judge score, image embedding, recent "
                           "actions) -> Q values of DeepSPM's twelve conditioning actions",
            "notes": {"algorithm": "double DQN (stable-baselines3 DQN with the double-DQN target, "
                                   "scopenet.autopilot.agent.double_dqn_class)"},
            "training": {"config": cfg.model_dump(),
                         "data": "scopenet.autopilot.sim.SimMicroscope episodes (simulate.spm.probe dynamics)",
                         "steps": int(model.num_timesteps), "time_s": round(wall, 1),
                         "hardware": f"{cfg.threads} CPU thread(s), {platform.processor() or platform.machine()}",
                         "command": f"scripts/train_autopilot.py {args.recipe}"},
            "predict": {"judge": {"model": "good-bad", "aux": cfg.judge_aux, "threshold": 0.9,
                                  "features": cfg.judge_features}},
            "metrics": {"command": "scopenet bench autopilot --json"}}
    save_q_agent(model.q_net, n_obs, list(cfg.hidden), out, card, overwrite=args.overwrite)
    if cfg.save_replay:
        model.save_replay_buffer(work / "replay.pkl")
    print(f"saved {out}.safetensors after {model.num_timesteps} steps, {wall:.0f} s")


if __name__ == "__main__":
    main()
