"""The multi-task trainer behind ``moewir train``.

One iteration: every task's sub-batch goes through the network in one forward pass, the
composite loss is computed per task, the per-task losses (all-reduced across ranks, so every
rank computes the same weights) go to the weighting strategy, and the weighted total is
back-propagated. Around it: warm-up + cosine learning rate, gradient clipping, AMP on CUDA, an
EMA of the weights, per-task validation, CSV / TensorBoard logs, atomic checkpoints and exact
resume. ``docs/training.md`` describes the experiment folder and every option.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..data import ImageReadError, MultiTaskLoader, PairedImages, clean_pairs, discover, select_tasks
from ..devices import resolve_device
from ..evaluation import AVERAGE, aggregate, evaluate_tensors, fidelity_metrics
from ..models import build_from_weights, create_model, load_weights, model_spec, needs_weights
from ..ops.tiling import tiled_forward
from . import distributed
from .checkpoint import (latest_checkpoint, load_state, newest_intact_checkpoint, prune_checkpoints, remove_orphans,
                         save_checkpoint)
from .config import DatasetsConfig, TrainingConfig, config_dict, training_config
from .logs import close_logs, file_logger, init_loggers
from .losses import CompositeLoss, TaskClassifier
from .optim import build_optimizer, build_scheduler, load_scheduler_state
from .weighting import create_weighting

__all__ = ["Trainer", "build_device", "find_resume_point", "build_dataloaders", "build_model_and_ema", "amp_dtype"]


# --- the parts, each built by one function -----------------------------------------------------
def build_device(name: str) -> tuple[torch.device, distributed.DistInfo]:
    """The device to train on and this process's place in the ``torchrun`` process group
    (joined here); on CUDA every rank takes the GPU of its local rank."""
    device = resolve_device(name)
    dist = distributed.setup(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device, dist


def find_resume_point(folder: Path, resume: bool, dist: distributed.DistInfo) -> tuple[int, list[str]]:
    """The iteration to start at (0: a new run) and what the main rank repaired to get there
    (temporary files of an interrupted save removed, unreadable newer checkpoints moved aside).
    Refuses to overwrite a run that has checkpoints unless ``resume``."""
    start = latest_checkpoint(folder / "checkpoints")
    if start is not None and not resume:
        raise ValueError(f"{folder} already has checkpoints (latest: iteration {start}); "
                         f"pass --resume to continue it, or choose another name (--set name=...)")
    problems: list[str] = []
    if start is not None and dist.main:
        orphans = remove_orphans(folder / "checkpoints")  # left by a kill mid-save
        problems = [f"removed {len(orphans)} temporary file(s) left by an interrupted save"] if orphans else []
        start, skipped = newest_intact_checkpoint(folder / "checkpoints")
        problems += skipped
        if start is None:
            raise ValueError(f"{folder / 'checkpoints'}: no intact checkpoint to resume from ({'; '.join(skipped)})")
    if dist.world > 1:  # every rank resumes where the main rank checked
        start = distributed.broadcast_int(start or 0, dist) or None
    if dist.main:
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    distributed.barrier(dist)
    return start or 0, problems


def _val_pairs(data: DatasetsConfig) -> dict[str, list]:
    val = data.val
    root = val.root or data.train.root
    try:
        found = discover(root, val.split)
    except ValueError:
        if val.root:
            raise
        return {}  # no validation split next to the training data: validation is skipped
    pairs = select_tasks(found, val.tasks, root)
    return {t: pick_pairs(p, val.max_per_task, val.pick) for t, p in sorted(pairs.items())}


def pick_pairs(pairs: list, limit: int | None, how: str = "first") -> list:
    """``limit`` of ``pairs`` (all when ``None``): the first ones, or ``spread`` evenly
    (indices ``i * len // limit``), which reaches every part of a list sorted by name."""
    if not limit or limit >= len(pairs):
        return list(pairs)
    if how == "first":
        return list(pairs[:limit])
    return [pairs[i * len(pairs) // limit] for i in range(limit)]


def build_dataloaders(data: DatasetsConfig, seed: int, rank: int, start: int
                      ) -> tuple[dict[str, list], MultiTaskLoader, dict[str, list]]:
    """The training pairs per task, the training stream (every task at every step, this rank's
    own samples, resumed at iteration ``start``) and the validation pairs per task (none when
    the training data has no validation split and ``datasets.val.root`` is not set)."""
    train = data.train
    pairs = select_tasks(discover(train.root, train.split), train.tasks, train.root)
    if train.clean_task:
        if "clean" in pairs:
            raise ValueError(f"{train.root}: has a task named 'clean' already; datasets.train.clean_task adds one")
        pairs["clean"] = clean_pairs(pairs)
    loader = MultiTaskLoader(pairs, train.patch_size, train.batch_per_task, train.workers, seed=seed + 7919 * rank,
                             flip=train.flip, rotate=train.rotate, skip_bad=train.skip_bad,
                             patch_schedule=list(train.patch_schedule) if train.patch_schedule else None,
                             start_step=start, zoom=tuple(train.zoom) if train.zoom else None, cache=train.cache)
    return pairs, loader, _val_pairs(data)


def build_model_and_ema(model: dict[str, Any], ema: float, device: torch.device
                        ) -> tuple[nn.Module, AveragedModel | None]:
    """The registered network ``model["name"]`` with the other options, and its exponential
    moving average (``ema_p = ema * ema_p + (1 - ema) * p`` after every step, buffers copied;
    ``None`` when ``ema`` is 0). The average starts at the initial weights.

    ``model["init_weights"]`` (a weights file: moewir's safetensors or an official release)
    starts the network from those weights instead of random ones (fine-tuning); the file must
    hold ``name``, and the other options override its recorded config where the shapes allow."""
    options = dict(model)
    name = options.pop("name")
    init = options.pop("init_weights", None)
    if not needs_weights(name):
        raise ValueError(f"model {name!r} learns nothing (a classical method): there is nothing to train; "
                         f"score it with `moewir eval --weights {name}`")
    if init is not None:
        network = build_from_weights(init, name, options).to(device)
    else:
        network = create_model(name, **options).to(device)
    if ema <= 0:
        return network, None
    average = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(ema)).eval().requires_grad_(False)
    average.update_parameters(network)  # the first update copies: every later one averages
    return network, average


def amp_dtype(amp: str, device: torch.device, log) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (``None``: float32, said in ``log``
    when the device lacks the one asked for)."""
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    if dtype is not None and amp not in {"cuda": ("bf16", "fp16"), "cpu": ("bf16",)}.get(device.type, ()):
        log.info(f"train.amp={amp} is not available on {device}; training in float32")
        return None
    return dtype


class Trainer:
    """Build everything from a config (see :mod:`moewir.training.config`) and train."""

    def __init__(self, config: dict[str, Any] | TrainingConfig, resume: bool = False, progress: bool = True):
        self.config, self.progress = training_config(config), progress
        folder = Path(self.config.experiments_root) / self.config.name
        fresh = not folder.exists()
        try:
            self._setup(self.config, resume)
        except BaseException:
            if fresh:  # a run that fails at start leaves no empty experiment folder behind
                close_logs()
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def _setup(self, cfg: TrainingConfig, resume: bool) -> None:
        self.device, self.dist = build_device(cfg.device)
        self.dir = Path(cfg.experiments_root) / cfg.name
        self.ckpt_dir = self.dir / "checkpoints"
        self.start, problems = find_resume_point(self.dir, resume, self.dist)
        self.log = file_logger(self.dir / (f"train_rank{self.dist.rank}.log" if self.dist.rank else "train.log"))
        for problem in problems:
            self.log.warning(f"resume: {problem}")  # train.log and stderr
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.tasks_pairs, self.loader, self.val_pairs = build_dataloaders(cfg.datasets, cfg.seed, self.dist.rank,
                                                                          self.start)
        self.tasks = sorted(self.tasks_pairs)
        self.bad_val: set[str] = set()
        self.model, self.ema = build_model_and_ema(cfg.model, cfg.train.ema, self.device)
        self.criterion = CompositeLoss(**asdict(cfg.loss))
        weighting = dict(cfg.weighting)
        self.weighting = create_weighting(weighting.pop("name"), self.tasks, **weighting).to(self.device)
        if self.weighting.needs_reference and cfg.datasets.train.clean_task:
            raise ValueError(f"weighting {self.weighting.name!r} divides by the loss of the unrestored input, "
                             f"which is 0 on datasets.train.clean_task's pairs; choose another weighting")
        self.task_head = (TaskClassifier(self.model, len(self.tasks)).to(self.device)
                          if cfg.train.task_head > 0 else None)
        extra = list(self.weighting.parameters()) + (list(self.task_head.parameters()) if self.task_head else [])
        self.optimizer = build_optimizer(self.model, cfg.optim, extra)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
        self.iterations = cfg.schedule.iterations
        self.amp = amp_dtype(cfg.train.amp, self.device, self.log)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.metrics = fidelity_metrics(cfg.val.crop_border, cfg.val.y_channel)  # as `moewir eval` scores
        self.best: dict[str, Any] = {"psnr": -math.inf, "iteration": None}
        if self.start:
            self._restore(self.start)
        self.net = distributed.wrap(self.model, self.dist, cfg.distributed.find_unused_parameters)
        self.logs = None
        if self.dist.main:
            with open(self.dir / "config.yml", "w") as f:
                yaml.safe_dump(config_dict(cfg), f, sort_keys=False)
            self.logs = init_loggers(self.dir, self.tasks, self.start, cfg.log.tensorboard, self.log)
        self.log.info(f"experiment {self.dir} | model {model_spec(self.model)[0]} "
                      f"({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f}M params) | device {self.device} "
                      f"| world {self.dist.world} | tasks {', '.join(f'{t} ({len(self.tasks_pairs[t])})' for t in self.tasks)}"
                      f" | weighting {self.weighting.name} | " + (f"resumed at {self.start}" if self.start else "new run"))

    # --- checkpoints -------------------------------------------------------------------------
    def _state(self, iteration: int) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "weighting": self.weighting.state_dict(), "scaler": self.scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "best": dict(self.best), "config": yaml.safe_dump(config_dict(self.config), sort_keys=False),
                "task_head": self.task_head.state_dict() if self.task_head else None}

    def _restore(self, iteration: int) -> None:
        state = load_state(self.ckpt_dir, iteration)
        load_weights(self.ckpt_dir / f"net_{iteration}.safetensors", self.model)
        ema_path = self.ckpt_dir / f"net_ema_{iteration}.safetensors"
        if self.ema is not None:
            load_weights(ema_path if ema_path.is_file() else self.ckpt_dir / f"net_{iteration}.safetensors",
                         self.ema.module)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler = load_scheduler_state(self.scheduler, state["scheduler"], self.optimizer, self.config.schedule)
        self.weighting.load_state_dict(state["weighting"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.best = dict(state["best"])
        if self.task_head is not None:
            if state.get("task_head") is None:
                raise ValueError(f"{self.ckpt_dir}: iteration {iteration} was trained without train.task_head; "
                                 f"resume with the same config")
            self.task_head.load_state_dict(state["task_head"])

    def save(self, iteration: int) -> None:
        if self.dist.main:
            self.logs.flush()  # the rows up to a checkpoint are on disk before it exists
            save_checkpoint(self.ckpt_dir, iteration, self.model, self.ema.module if self.ema else None,
                            self._state(iteration))
            prune_checkpoints(self.ckpt_dir, self.config.log.keep_checkpoints)
            self.log.info(f"checkpoint: iteration {iteration} -> {self.ckpt_dir}")
        distributed.barrier(self.dist)

    # --- one iteration -----------------------------------------------------------------------
    def step(self, batch: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
        inputs = torch.cat([batch[t][0] for t in self.tasks]).to(self.device, non_blocking=True)
        targets = [batch[t][1].to(self.device, non_blocking=True) for t in self.tasks]
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            outputs = self.net(inputs)
        sizes = [len(t) for t in targets]
        outputs = outputs.float().split(sizes)
        losses = {t: self.criterion(o, g) for t, o, g in zip(self.tasks, outputs, targets)}
        local = torch.stack([losses[t].detach() for t in self.tasks])
        shared = distributed.mean_across_ranks(local, self.dist).tolist()
        if self.weighting.needs_reference:  # the loss of doing nothing, per task
            with torch.no_grad():
                reference = torch.stack([self.criterion(x, g) for x, g in zip(inputs.split(sizes), targets)])
            reference = distributed.mean_across_ranks(reference, self.dist).tolist()
            self.weighting.set_reference(dict(zip(self.tasks, reference)))
        total, weights = self.weighting.combine(losses, dict(zip(self.tasks, shared)))
        head = None
        if self.task_head is not None:
            cross_entropy, accuracy = self.task_head(sizes)
            total = total + self.config.train.task_head * cross_entropy
            head = {"cross_entropy": float(cross_entropy.detach()), "accuracy": accuracy}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        distributed.average_gradients(self.weighting.parameters(), self.dist)
        if self.task_head is not None:
            distributed.average_gradients(self.task_head.parameters(), self.dist)
        if self.config.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return {"lr": lr, "total": float(total.detach()), "losses": dict(zip(self.tasks, shared)), "weights": weights,
                "task_head": head}

    # --- validation --------------------------------------------------------------------------
    def _readable(self, images: PairedImages):
        """The pairs of ``images`` that read back; with ``skip_bad`` an unreadable one is
        skipped (and logged the first time), otherwise its error stops the run."""
        for index in range(len(images)):
            try:
                yield images[index]
            except ImageReadError as exc:
                if not self.config.datasets.train.skip_bad:
                    raise
                if exc.path not in self.bad_val:
                    self.bad_val.add(exc.path)
                    self.log.warning(f"skipping unreadable validation pair: {exc}")  # train.log and stderr

    @torch.no_grad()
    def validate(self) -> dict[str, dict[str, float]]:
        """Per-task mean PSNR / SSIM on the validation pairs (EMA weights unless disabled),
        scored by :mod:`moewir.evaluation` as ``moewir eval`` scores."""
        val = self.config.val
        net = self.ema.module if (self.ema is not None and val.use_ema) else self.model
        was_training = net.training
        net.eval()

        def restore(image: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                out = tiled_forward(net, image.to(self.device), val.tile, val.tile_overlap)
            return out.float().clamp(0, 1).cpu()

        crop = self.config.datasets.val.center_crop
        rows = evaluate_tensors(restore, {t: self._readable(PairedImages(p, crop)) for t, p in self.val_pairs.items()},
                                self.metrics)
        net.train(was_training)
        return {r["task"]: {"images": r["images"], "psnr": r["psnr"], "ssim": r["ssim"]}
                for r in aggregate(rows, self.metrics) if r["task"] != AVERAGE}

    def _report_validation(self, iteration: int) -> dict[str, dict[str, float]]:
        results = self.validate()
        if not results:
            return results
        mean_psnr = sum(r["psnr"] for r in results.values()) / len(results)
        for task, r in results.items():
            self.logs.val.write({"iteration": iteration, "task": task, **r})
        self.logs.val.flush()
        self.logs.board.scalars({f"val/psnr/{t}": r["psnr"] for t, r in results.items()} |
                                {f"val/ssim/{t}": r["ssim"] for t, r in results.items()}, iteration)
        if mean_psnr > self.best["psnr"]:
            self.best = {"psnr": mean_psnr, "iteration": iteration}
        self.log.info(f"validation @ {iteration}: " + ", ".join(
            f"{t} {r['psnr']:.2f} dB / {r['ssim']:.4f}" for t, r in results.items()) + f" | mean {mean_psnr:.2f} dB")
        return results

    def _log_iteration(self, iteration: int, last: dict[str, Any], seconds: float, bar: tqdm) -> None:
        row = {"iteration": iteration, "lr": last["lr"], "total": last["total"], "seconds": seconds}
        row |= {f"loss/{t}": v for t, v in last["losses"].items()}
        row |= {f"weight/{t}": v for t, v in last["weights"].items()}
        self.logs.train.write(row)
        bar.update()
        bar.set_postfix(loss=f"{last['total']:.4f}", lr=f"{last['lr']:.2e}")
        every = self.config.log.every
        if (every and iteration % every == 0) or iteration == self.iterations:
            self.logs.train.flush()
            self.logs.board.scalars({k: v for k, v in row.items() if k not in ("iteration", "seconds")}, iteration)
            head = last.get("task_head")
            self.log.info(f"iter {iteration}/{self.iterations} lr {last['lr']:.3e} total {last['total']:.4f} | "
                          + " ".join(f"{t} {last['losses'][t]:.4f} (w {last['weights'][t]:.3f})" for t in self.tasks)
                          + (f" | task head CE {head['cross_entropy']:.3f}, accuracy {head['accuracy']:.2f}" if head else ""))

    # --- the loop ----------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run to ``schedule.iterations``; returns a summary (also written as ``summary.yml``).
        Resuming a run that already finished changes nothing and returns its summary."""
        cfg = self.config
        finished = self.dir / "summary.yml"
        if self.start >= self.iterations and finished.is_file():
            self.log.info(f"already finished at iteration {self.start}: {finished} is kept")
            if self.dist.main:
                self.logs.close()
            return yaml.safe_load(finished.read_text())
        self.net.train()
        val_every, ckpt_every = cfg.val.every, cfg.log.checkpoint_every
        started, last = time.perf_counter(), None
        bar = tqdm(total=self.iterations, initial=self.start, desc=f"train {cfg.name}", unit="it",
                   disable=not (self.progress and self.dist.main), dynamic_ncols=True)
        iteration = self.start
        validation: dict = {}
        if val_every and cfg.val.at_start and iteration == 0 and self.dist.main:
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
                    self._log_iteration(iteration, last, time.perf_counter() - tick, bar)
                    if val_every and (iteration % val_every == 0 or iteration == self.iterations):
                        validation = self._report_validation(iteration)
                if (ckpt_every and iteration % ckpt_every == 0) or iteration == self.iterations:
                    self.save(iteration)
        finally:
            bar.close()
            if self.dist.main:
                self.logs.close()
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
