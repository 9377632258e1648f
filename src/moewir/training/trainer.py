"""The multi-task trainer behind ``moewir train``.

One iteration: every task's sub-batch goes through the network in one forward pass, the
composite loss is computed per task, the per-task losses (all-reduced across ranks, so every
rank computes the same weights) go to the weighting strategy, and the weighted total is
back-propagated. Around it: warm-up + cosine learning rate, gradient clipping, AMP on CUDA, an
EMA of the weights, per-task validation, CSV / TensorBoard logs, atomic checkpoints and exact
resume. ``docs/training.md`` describes the experiment folder and every option.
"""
from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..data import ImageReadError, MultiTaskLoader, PairedImages, discover, select_tasks
from ..devices import resolve_device
from ..ops.tiling import tiled_forward
from ..metrics import psnr, ssim
from ..models import create_model, load_weights, model_spec
from . import distributed
from .checkpoint import (latest_checkpoint, load_state, newest_intact_checkpoint, prune_checkpoints, remove_orphans,
                         save_checkpoint)
from .logs import CsvLog, TensorBoard, close_logs, file_logger
from .losses import CompositeLoss
from .weighting import create_weighting

__all__ = ["Trainer", "cosine_with_warmup"]


def cosine_with_warmup(iterations: int, warmup: int, base_lr: float, min_lr: float):
    """LR multiplier: linear from ``1/warmup`` to 1 over ``warmup`` steps, then cosine to
    ``min_lr / base_lr`` at ``iterations``."""
    floor = min_lr / base_lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, iterations - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Trainer:
    """Build everything from a config (see :mod:`moewir.training.config`) and train."""

    def __init__(self, config: dict[str, Any], resume: bool = False, progress: bool = True):
        self.config, self.progress = config, progress
        folder = Path(config["experiments_root"]) / config["name"]
        fresh = not folder.exists()
        try:
            self._setup(config, resume)
        except BaseException:
            if fresh:  # a run that fails at start leaves no empty experiment folder behind
                close_logs()
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _setup(self, config: dict[str, Any], resume: bool) -> None:
        device = resolve_device(config["device"])
        self.dist = distributed.setup(device.type)
        if device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        self.dir = Path(config["experiments_root"]) / config["name"]
        self.ckpt_dir = self.dir / "checkpoints"
        start = latest_checkpoint(self.ckpt_dir)
        if start is not None and not resume:
            raise ValueError(f"{self.dir} already has checkpoints (latest: iteration {start}); "
                             f"pass --resume to continue it, or choose another name (--set name=...)")
        problems: list[str] = []
        if start is not None and self.dist.main:
            orphans = remove_orphans(self.ckpt_dir)  # left by a kill mid-save
            problems = [f"removed {len(orphans)} temporary file(s) left by an interrupted save"] if orphans else []
            start, skipped = newest_intact_checkpoint(self.ckpt_dir)
            problems += skipped
            if start is None:
                raise ValueError(f"{self.ckpt_dir}: no intact checkpoint to resume from ({'; '.join(skipped)})")
        if self.dist.world > 1:  # every rank resumes where the main rank checked
            start = distributed.broadcast_int(start or 0, self.dist) or None
        self.start = start or 0
        if self.dist.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        distributed.barrier(self.dist)
        self.log = file_logger(self.dir / f"train_rank{self.dist.rank}.log" if self.dist.rank else self.dir / "train.log")
        for problem in problems:
            self.log.warning(f"resume: {problem}")  # train.log and stderr

        torch.manual_seed(config["seed"])  # the same initial weights on every rank
        data = config["datasets"]
        train = data["train"]
        self.tasks_pairs = select_tasks(discover(train["root"], train["split"]), train["tasks"], train["root"])
        self.tasks = sorted(self.tasks_pairs)
        val = data["val"]
        self.val_pairs = self._val_pairs(val, train["root"])
        self.bad_val: set[str] = set()

        model_cfg = dict(config["model"])
        self.model = create_model(model_cfg.pop("name"), **model_cfg).to(device)
        self.ema = None
        if config["train"]["ema"] > 0:
            self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.criterion = CompositeLoss(**config["loss"])
        weighting = dict(config["weighting"])
        self.weighting = create_weighting(weighting.pop("name"), self.tasks, **weighting).to(device)

        optim = config["optim"]
        params = list(self.model.parameters()) + list(self.weighting.parameters())
        kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        if optim["type"] not in kinds:
            raise ValueError(f"optim.type must be one of {', '.join(kinds)}, got {optim['type']!r}")
        self.optimizer = kinds[optim["type"]](params, lr=optim["lr"], betas=tuple(optim["betas"]),
                                              weight_decay=optim["weight_decay"])
        sched = config["schedule"]
        self.iterations = int(sched["iterations"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cosine_with_warmup(self.iterations, sched["warmup"], optim["lr"], sched["min_lr"]))
        self.amp = self._amp_dtype(config["train"]["amp"])
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.best: dict[str, Any] = {"psnr": -math.inf, "iteration": None}
        if self.start:
            self._restore(self.start)

        self.net: nn.Module = self.model
        if self.dist.world > 1:
            self.net = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=config["distributed"]["find_unused_parameters"])
        schedule = train["patch_schedule"]
        self.loader = MultiTaskLoader(
            self.tasks_pairs, train["patch_size"], train["batch_per_task"], train["workers"],
            seed=config["seed"] + 7919 * self.dist.rank, flip=train["flip"], rotate=train["rotate"],
            skip_bad=train["skip_bad"], patch_schedule=[tuple(s) for s in schedule] if schedule else None,
            start_step=self.start)
        if self.dist.main:
            with open(self.dir / "config.yml", "w") as f:
                yaml.safe_dump(config, f, sort_keys=False)
            columns = ["iteration", "lr", "total"] + [f"loss/{t}" for t in self.tasks] + \
                      [f"weight/{t}" for t in self.tasks] + ["seconds"]
            self.train_csv = CsvLog(self.dir / "train_log.csv", columns, self.start)
            self.val_csv = CsvLog(self.dir / "val_log.csv", ["iteration", "task", "images", "psnr", "ssim"],
                                  self.start)
            self.board = TensorBoard(self.dir / "tensorboard", config["log"]["tensorboard"], self.log)
        self.log.info(f"experiment {self.dir} | model {model_spec(self.model)[0]} "
                      f"({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f}M params) | device {device} "
                      f"| world {self.dist.world} | tasks {', '.join(f'{t} ({len(self.tasks_pairs[t])})' for t in self.tasks)}"
                      f" | weighting {self.weighting.name} | " + (f"resumed at {self.start}" if self.start else "new run"))

    def _val_pairs(self, val: dict, train_root: str) -> dict[str, list]:
        root = val["root"] or train_root
        try:
            found = discover(root, val["split"])
        except ValueError:
            if val["root"]:
                raise
            return {}  # no validation split next to the training data: validation is skipped
        pairs = select_tasks(found, val["tasks"], root)
        limit = val["max_per_task"]
        return {t: (p[:limit] if limit else p) for t, p in sorted(pairs.items())}

    def _amp_dtype(self, amp: str):
        dtypes = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if amp not in dtypes:
            raise ValueError(f"train.amp must be none, bf16 or fp16, got {amp!r}")
        supported = {"cuda": ("bf16", "fp16"), "cpu": ("bf16",)}.get(self.device.type, ())
        if dtypes[amp] is not None and amp not in supported:
            self.log.info(f"train.amp={amp} is not available on {self.device}; training in float32")
            return None
        return dtypes[amp]

    # --- checkpoints -------------------------------------------------------------------------
    def _state(self, iteration: int) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "weighting": self.weighting.state_dict(), "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "best": dict(self.best), "config": yaml.safe_dump(self.config, sort_keys=False)}

    def _restore(self, iteration: int) -> None:
        state = load_state(self.ckpt_dir, iteration)
        load_weights(self.ckpt_dir / f"net_{iteration}.safetensors", self.model)
        ema_path = self.ckpt_dir / f"net_ema_{iteration}.safetensors"
        if self.ema is not None:
            load_weights(ema_path if ema_path.is_file() else self.ckpt_dir / f"net_{iteration}.safetensors", self.ema)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.best = dict(state["best"])

    def save(self, iteration: int) -> None:
        if self.dist.main:
            self.train_csv.flush()  # the rows up to a checkpoint are on disk before it exists
            self.val_csv.flush()
            save_checkpoint(self.ckpt_dir, iteration, self.model, self.ema, self._state(iteration))
            prune_checkpoints(self.ckpt_dir, self.config["log"]["keep_checkpoints"])
            self.log.info(f"checkpoint: iteration {iteration} -> {self.ckpt_dir}")
        distributed.barrier(self.dist)

    # --- one iteration -----------------------------------------------------------------------
    def step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
        inputs = torch.cat([batch[t][0] for t in self.tasks]).to(self.device, non_blocking=True)
        targets = [batch[t][1].to(self.device, non_blocking=True) for t in self.tasks]
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            outputs = self.net(inputs)
        outputs = outputs.float().split([len(t) for t in targets])
        losses = {t: self.criterion(o, g) for t, o, g in zip(self.tasks, outputs, targets)}
        local = torch.stack([losses[t].detach() for t in self.tasks])
        shared = distributed.mean_across_ranks(local, self.dist).tolist()
        total, weights = self.weighting.combine(losses, dict(zip(self.tasks, shared)))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        distributed.average_gradients(self.weighting.parameters(), self.dist)
        clip = self.config["train"]["grad_clip"]
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if self.ema is not None:
            self._update_ema(self.config["train"]["ema"])
        return {"lr": lr, "total": float(total.detach()), "losses": dict(zip(self.tasks, shared)), "weights": weights}

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        for ema_p, p in zip(self.ema.parameters(), self.model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.ema.buffers(), self.model.buffers()):
            ema_b.copy_(b)

    # --- validation --------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, dict[str, float]]:
        """Per-task mean PSNR / SSIM on the validation pairs (EMA weights unless disabled)."""
        val = self.config["val"]
        net = self.ema if (self.ema is not None and val["use_ema"]) else self.model
        was_training = net.training
        net.eval()
        results = {}
        skip_bad = self.config["datasets"]["train"]["skip_bad"]
        for task, pairs in self.val_pairs.items():
            scores = []
            images = PairedImages(pairs, self.config["datasets"]["val"]["center_crop"])
            for index in range(len(images)):
                try:
                    item = images[index]
                except ImageReadError as exc:
                    if not skip_bad:
                        raise
                    if exc.path not in self.bad_val:
                        self.bad_val.add(exc.path)
                        self.log.warning(f"skipping unreadable validation pair: {exc}")  # train.log and stderr
                    continue
                with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                    out = tiled_forward(net, item["input"][None].to(self.device), val["tile"], val["tile_overlap"])
                out, tgt = out.float().clamp(0, 1).cpu(), item["target"][None]
                kw = dict(crop_border=val["crop_border"], y_channel=val["y_channel"])
                scores.append((psnr(out, tgt, **kw).item(), ssim(out, tgt, **kw).item()))
            if scores:
                results[task] = {"images": len(scores), "psnr": sum(s[0] for s in scores) / len(scores),
                                 "ssim": sum(s[1] for s in scores) / len(scores)}
        net.train(was_training)
        return results

    def _report_validation(self, iteration: int) -> dict[str, dict[str, float]]:
        results = self.validate()
        if not results:
            return results
        mean_psnr = sum(r["psnr"] for r in results.values()) / len(results)
        for task, r in results.items():
            self.val_csv.write({"iteration": iteration, "task": task, **r})
        self.val_csv.flush()
        self.board.scalars({f"val/psnr/{t}": r["psnr"] for t, r in results.items()} |
                           {f"val/ssim/{t}": r["ssim"] for t, r in results.items()}, iteration)
        if mean_psnr > self.best["psnr"]:
            self.best = {"psnr": mean_psnr, "iteration": iteration}
        self.log.info(f"validation @ {iteration}: " + ", ".join(
            f"{t} {r['psnr']:.2f} dB / {r['ssim']:.4f}" for t, r in results.items()) + f" | mean {mean_psnr:.2f} dB")
        return results

    # --- the loop ----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run to ``schedule.iterations``; returns a summary (also written as ``summary.yml``)."""
        cfg = self.config
        self.net.train()
        every, ckpt_every, val_every = cfg["log"]["every"], cfg["log"]["checkpoint_every"], cfg["val"]["every"]
        started, last = time.perf_counter(), None
        bar = tqdm(total=self.iterations, initial=self.start, desc=f"train {cfg['name']}", unit="it",
                   disable=not (self.progress and self.dist.main), dynamic_ncols=True)
        iteration = self.start
        validation: dict = {}
        if val_every and cfg["val"]["at_start"] and iteration == 0 and self.dist.main:
            validation = self._report_validation(0)  # the untrained network: where the curve starts
        try:
            while iteration < self.iterations:
                tick = time.perf_counter()
                last = self.step(next(self.loader))
                iteration += 1
                if not math.isfinite(last["total"]):
                    raise FloatingPointError(f"the loss became {last['total']} at iteration {iteration}; "
                                             f"lower optim.lr or set train.grad_clip")
                if self.dist.main:
                    row = {"iteration": iteration, "lr": last["lr"], "total": last["total"],
                           "seconds": time.perf_counter() - tick}
                    row |= {f"loss/{t}": v for t, v in last["losses"].items()}
                    row |= {f"weight/{t}": v for t, v in last["weights"].items()}
                    self.train_csv.write(row)
                    bar.update()
                    bar.set_postfix(loss=f"{last['total']:.4f}", lr=f"{last['lr']:.2e}")
                    if (every and iteration % every == 0) or iteration == self.iterations:
                        self.train_csv.flush()
                        self.board.scalars({k: v for k, v in row.items() if k not in ("iteration", "seconds")}, iteration)
                        self.log.info(f"iter {iteration}/{self.iterations} lr {last['lr']:.3e} total {last['total']:.4f} | "
                                      + " ".join(f"{t} {last['losses'][t]:.4f} (w {last['weights'][t]:.3f})"
                                                 for t in self.tasks))
                    if val_every and (iteration % val_every == 0 or iteration == self.iterations):
                        validation = self._report_validation(iteration)
                if (ckpt_every and iteration % ckpt_every == 0) or iteration == self.iterations:
                    self.save(iteration)
        finally:
            bar.close()
            if self.dist.main:
                self.train_csv.close()
                self.val_csv.close()
                self.board.close()
        summary = {"experiment": str(self.dir), "iterations": iteration, "resumed_from": self.start,
                   "seconds": round(time.perf_counter() - started, 2), "tasks": self.tasks,
                   "weighting": self.weighting.name,
                   "final_losses": last["losses"] if last else {}, "final_weights": last["weights"] if last else {},
                   "validation": validation, "best": self.best}
        if self.dist.main:
            with open(self.dir / "summary.yml", "w") as f:
                yaml.safe_dump(summary, f, sort_keys=False)
        return summary

    def close(self) -> None:
        distributed.cleanup(self.dist)
