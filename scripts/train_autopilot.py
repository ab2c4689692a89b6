"""Train the tip-conditioning agent (double DQN on stable-baselines3) on the simulated microscope.

Usage::

    OMP_NUM_THREADS=1 python scripts/train_autopilot.py recipes/autopilot-default.yaml [--out src/scopenet/weights/autopilot-default]

The recipe is an :class:`scopenet.autopilot.agent.AgentTrainConfig` in YAML. Checkpoints (SB3 zips)
go to ``workdir``; a run resumes from the newest one when ``--resume`` is given. At the end the
Q-network is exported as ``<out>.safetensors`` + ``<out>.json`` (the shipped format, loaded by
``QAgent.load``; no stable-baselines3 needed to use it).

A recipe with ``algorithm: dqfd`` (:class:`scopenet.autopilot.dqfd.DQfDConfig`, e.g.
``recipes/autopilot-dqfd.yaml``) runs Deep Q-learning from Demonstrations instead: the oracle's
demonstrations are collected (or read with ``--demonstrations A.npz[,B.npz]``; ``--collect-only``
writes them and stops, ``--demo-offset K`` starts at the K-th demonstration seed so that two processes
can collect disjoint halves), the q-mlp is pretrained with DQfD's loss, optionally fine-tuned on the
simulator, and the checkpoint with the fewest median (then mean) actions on the selection episodes is
exported.
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
    ap.add_argument("--demonstrations", default=None, help="DQfD: demonstration .npz files, comma-separated")
    ap.add_argument("--collect-only", default=None, metavar="NPZ", help="DQfD: collect demonstrations into NPZ and stop")
    ap.add_argument("--demo-offset", type=int, default=0, help="DQfD: first demonstration seed index")
    ap.add_argument("--demo-episodes", type=int, default=None, help="DQfD: episodes to collect (default: recipe)")
    args = ap.parse_args()
    if (yaml.safe_load(Path(args.recipe).read_text()) or {}).get("algorithm") == "dqfd":
        return main_dqfd(args)

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


def main_dqfd(args) -> None:
    """The DQfD path (see the module docstring)."""
    import numpy as np
    import torch

    from scopenet.autopilot.agent import OracleAgent, QAgent, save_q_agent
    from scopenet.autopilot.dqfd import DQfDConfig, collect_demonstrations, evaluate, finetune, pretrain
    from scopenet.autopilot.judge import Judge
    from scopenet.autopilot.sim import make_env
    from scopenet.nn.qnet import QMLP

    cfg = DQfDConfig(**yaml.safe_load(Path(args.recipe).read_text()))
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    log_f = open(work / "progress.jsonl", "a")

    def log(x):
        print(x, flush=True)
        log_f.write(json.dumps(x if isinstance(x, dict) else {"msg": str(x)}) + "\n")
        log_f.flush()

    judge = Judge(model=cfg.judge_model, aux=cfg.judge_aux, features=cfg.judge_features)
    env = make_env(judge=judge, max_actions=cfg.max_actions, sim=cfg.sim)
    t_all = time.time()
    if args.demonstrations and not args.collect_only:
        parts = [dict(np.load(p)) for p in args.demonstrations.split(",")]
        demos = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        demo_src = args.demonstrations
    else:
        n_demo = args.demo_episodes or cfg.demo_episodes
        seeds = range(cfg.demo_seed_base + args.demo_offset, cfg.demo_seed_base + args.demo_offset + n_demo)
        t = time.time()
        demos = collect_demonstrations(env, OracleAgent(cfg.seed + args.demo_offset, samples=cfg.demo_samples), seeds,
                                       cfg.demo_time_budget_s, log)
        dest = Path(args.collect_only or work / "demos.npz")
        np.savez_compressed(dest.with_name(dest.stem + ".tmp.npz"), **demos)
        dest.with_name(dest.stem + ".tmp.npz").replace(dest)
        log({"demonstrations": int(len(demos["action"])), "episodes": int(demos["episode"].max() + 1),
             "seeds_from": seeds[0], "wall_s": round(time.time() - t, 1), "file": str(dest)})
        demo_src = str(dest)
        if args.collect_only:
            return
    n_obs = demos["obs"].shape[1]
    if cfg.init:
        init = QAgent.load(cfg.init)
        net = init.net
        net.train()
    else:
        net = QMLP(n_obs, list(cfg.hidden))
    if net.config["n_obs"] != n_obs:
        raise SystemExit(f"init agent expects {net.config['n_obs']} observations, demonstrations have {n_obs}")
    t = time.time()
    torch.save(net.state_dict(), work / "pretrain_0.pt")
    recs = pretrain(net, demos, cfg, work, log)
    t_pre = time.time() - t
    t = time.time()
    if cfg.finetune_steps:
        recs += finetune(net, env, demos, cfg, work, log)
    t_ft = time.time() - t
    cands = sorted(work.glob("pretrain_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    cands = [c for c in cands if int(c.stem.split("_")[1]) > 0] + sorted(
        work.glob("finetune_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    sel_seeds = range(cfg.select_seed_base, cfg.select_seed_base + cfg.select_episodes)
    scores = {}
    if cfg.select_episodes:
        for c in cands:
            ag = QAgent(n_obs, list(net.config["hidden"]), torch.load(c))
            scores[c.stem] = evaluate(ag, judge, sel_seeds, cfg.max_actions)
            log({"select": c.stem, **scores[c.stem]})
        best = min(scores, key=lambda k: (scores[k]["median"], scores[k]["mean"]))
    else:
        best = cands[-1].stem
    net.load_state_dict(torch.load(work / f"{best}.pt"))
    wall = time.time() - t_all
    out = Path(args.out or f"src/scopenet/weights/autopilot-{cfg.name}")
    card = {"card_format": 2, "name": out.name, "task": "autopilot", "version": 1,
            "description": "Q-network of a tip-conditioning agent: observation (good-bad judge score, H:Si category "
                           "scores, image statistics, image embedding, recent actions) -> Q values of DeepSPM's "
                           "twelve conditioning actions",
            "notes": {"algorithm": "DQfD (Hester et al. 2018): double-DQN TD loss + large-margin loss on the "
                                   "oracle's demonstrations + L2 (scopenet.autopilot.dqfd)",
                      "checkpoint": f"{best}, chosen by median then mean actions on {cfg.select_episodes} selection "
                                    f"episodes (simulator seeds {cfg.select_seed_base}..."
                                    f"{cfg.select_seed_base + cfg.select_episodes - 1})",
                      "selection": scores},
            "training": {"config": cfg.model_dump(),
                         "data": f"{len(demos['action'])} transitions of OracleAgent episodes on the simulator "
                                 f"({demo_src}; simulator seeds from {cfg.demo_seed_base}), observed as the agent does",
                         "steps": int(best.split("_")[1]), "time_s": round(wall, 1),
                         "pretrain_time_s": round(t_pre, 1), "finetune_time_s": round(t_ft, 1),
                         "hardware": f"{cfg.threads} CPU thread(s), {platform.processor() or platform.machine()}",
                         "command": f"scripts/train_autopilot.py {args.recipe}"},
            "predict": {"judge": {"model": cfg.judge_model, "aux": cfg.judge_aux, "threshold": 0.9,
                                  "features": cfg.judge_features}},
            "metrics": {"command": "scopenet bench autopilot --json"}}
    save_q_agent(net, n_obs, list(net.config["hidden"]), out, card, overwrite=args.overwrite)
    log({"saved": str(out), "checkpoint": best, "wall_s": round(wall, 1)})


if __name__ == "__main__":
    main()
