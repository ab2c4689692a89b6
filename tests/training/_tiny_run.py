"""A tiny, fully seeded training run used by the resume and DDP tests (run as a script).

    python _tiny_run.py OUT_DIR NAME [--devices 2 --strategy ddp] [--resume] [--pause-at-step N]

Writes OUT_DIR/NAME/final.pt (the network's state dict) and final.json (metrics) on rank 0.
With ``--pause-at-step N`` it writes OUT_DIR/NAME/paused once step N is done and then sleeps,
waiting to be killed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("name")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--schedule", default="cyclic_sawtooth")
    p.add_argument("--clipper", default=None)
    p.add_argument("--no-val", action="store_true")
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--pause-at-step", type=int, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)

    import lightning.pytorch as pl

    from scopenet.nn import UNet
    from scopenet.training import ImageDataModule, ImageToImageModule, RunConfig, train

    rng = np.random.default_rng(42)
    images = [rng.normal(size=(40, 40)).cumsum(0).cumsum(1) for _ in range(10)]

    def pair(r, crop):
        return crop + 0.3 * r.standard_normal(crop.shape), crop

    cfg = RunConfig(
        task="test", name=a.name, out_dir=a.out_dir,
        data=dict(crop_size=16, batch_size=a.batch_size, samples_per_image=4,
                  split=(1.0, 0.0, 0.0) if a.no_val else (0.8, 0.2, 0.0)),
        optim=dict(optimizer=a.optimizer, lr=a.lr, schedule=a.schedule, clipper=a.clipper,
                   # fast-moving moments and a low threshold so that clipping really happens
                   clipper_params=dict(n_max=1.0, b1=0.9, b2=0.9, mu1_init=1.0, mu2_init=1.5) if a.clipper else {},
                   betas=(0.0, 0.999) if a.optimizer == "sgd" else (0.9, 0.999)),
        trainer=dict(max_epochs=a.epochs, accelerator="cpu", devices=a.devices, strategy=a.strategy,
                     checkpoint_every_n_steps=a.every, log_every=1, seed=7),
    )
    dm = ImageDataModule.from_images(images, cfg.data, pair_fn=pair, seed=3)
    pl.seed_everything(7)
    net = UNet(depth=1, base_channels=4, norm="none")
    module = ImageToImageModule(net, loss="mse", optim=cfg.optim)

    callbacks = []
    if a.pause_at_step is not None:
        class Pause(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if trainer.global_step == a.pause_at_step:
                    (cfg.run_dir / "paused").write_text(str(trainer.global_step))
                    time.sleep(300)
        callbacks.append(Pause())

    result = train(cfg, dm, module, resume=a.resume, callbacks=callbacks, enable_progress_bar=False)
    if result is not None and int(os.environ.get("LOCAL_RANK", "0")) == 0 and module.global_rank == 0:
        torch.save(net.state_dict(), cfg.run_dir / "final.pt")
        (cfg.run_dir / "final.json").write_text(json.dumps({"metrics": result.metrics,
                                                            "global_step": result.global_step}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
