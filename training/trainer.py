"""The training loop: iterations of SGD/AdamW on per-pixel cross-entropy, DDP, AMP, resume.

Reproducibility: data order comes from a seeded DistributedSampler, and each sample's
augmentation from an RNG seeded by (seed, epoch, index), so neither depends on worker count or
on where a run was resumed; model RNG (stochastic depth) is saved with every checkpoint. A run
resumed from `last/` therefore continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from model import (
    ModelMetadata,
    Predictor,
    Segmenter,
    build_segmenter,
    get_variant,
    load_pretrained_encoder,
    load_segmenter,
    normalization_stats,
    save_checkpoint,
)
from training import distributed
from training.config import TrainConfig, save_config
from training.data.base import IGNORE_INDEX
from training.data.layouts import build_dataset
from training.evaluate import confusion_image, evaluate
from training.schedule import cosine_lr, poly_lr
from training.state import STATE_FILE, load_state, pack_state, set_rng_state
from training.transforms import TrainTransform


class SeededDataset(Dataset):
    """Draws each sample's random transform from RNGs seeded by (seed, epoch, index).

    The process's own RNG states are restored afterwards, so loading data (in the main process
    or in workers) never shifts the model's random stream (stochastic depth, dropout).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        key = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            random.seed(key)
            torch.manual_seed(key % 2**63)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)


class SkipFirst(Sampler):
    """The indices of `sampler` without the first `skip` (to resume mid-epoch without loading)."""

    def __init__(self, sampler: Sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        for position, index in enumerate(self.sampler):
            if position >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig, class_names, palette, dataset_name: str) -> Segmenter:
    variant = get_variant(cfg.model.variant)
    net = build_segmenter(variant.name, num_classes=len(class_names), image_size=cfg.data.crop_size,
                          **cfg.model.overrides)
    if cfg.model.pretrained:
        load_pretrained_encoder(net, cfg.model.pretrained)
    mean, std = normalization_stats(variant.normalization)
    window = cfg.data.window_size or cfg.data.crop_size
    net.metadata = ModelMetadata(class_names=tuple(class_names), palette=tuple(map(tuple, palette)), mean=mean,
                                 std=std, window_size=window, window_stride=cfg.data.window_stride or window,
                                 dataset=dataset_name, provenance={"variant": variant.name})
    return net


def make_optimizer(cfg: TrainConfig, net: Segmenter) -> torch.optim.Optimizer:
    skip = net.no_weight_decay()
    decay = [p for n, p in net.named_parameters() if n not in skip and p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if n in skip or p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    if cfg.optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.optim.lr)
    raise ValueError(f"optim.name must be sgd or adamw, got {cfg.optim.name!r}")


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    o = cfg.optim
    if o.schedule == "poly":
        return poly_lr(iteration, cfg.run.iterations, o.lr, o.poly_power, o.min_lr, o.warmup_iterations)
    if o.schedule == "cosine":
        return cosine_lr(iteration, cfg.run.iterations, o.lr, o.min_lr, o.warmup_iterations)
    raise ValueError(f"optim.schedule must be poly or cosine, got {o.schedule!r}")


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
    """Run (or continue) the experiment `cfg`; returns the last evaluation's figures.

    Writes into `cfg.run.out_dir`: config.yaml, metrics.jsonl, last/ and best/ checkpoints
    (our format + train_state.pt), eval_classes.md and confusion.png.
    `stop_at` ends the run early at that iteration (the schedule still spans run.iterations).
    """
    ctx = distributed.setup(cfg.run.device)
    out = Path(cfg.run.out_dir)
    seed_everything(cfg.run.seed)
    per_rank = cfg.run.batch_size // (ctx.world_size * cfg.run.accumulation)
    if per_rank * ctx.world_size * cfg.run.accumulation != cfg.run.batch_size or per_rank < 1:
        raise ValueError(f"run.batch_size {cfg.run.batch_size} must be a multiple of processes ({ctx.world_size}) "
                         f"× run.accumulation ({cfg.run.accumulation})")
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, "train")
    val_set = build_dataset(cfg.data.dataset, cfg.data.root, "val")
    net = build_model(cfg, train_set.class_names, train_set.palette, train_set.name).to(ctx.device)
    # Normalize with the mean/std saved in the checkpoint, so training and inference cannot differ.
    train_set.transform = TrainTransform(cfg.data.crop_size, net.metadata.mean, net.metadata.std,
                                         cfg.data.base_size, cfg.data.ratio_range, cfg.data.cat_max_ratio,
                                         cfg.data.photometric)
    optimizer = make_optimizer(cfg, net)
    scaler = torch.amp.GradScaler(ctx.device.type) if cfg.run.amp == "fp16" else None
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.amp)
    start, best = 0, -1.0
    if resume:
        if not (out / "last" / STATE_FILE).is_file():
            raise FileNotFoundError(f"nothing to resume: {out / 'last' / STATE_FILE} does not exist")
        net.load_state_dict(load_segmenter(out / "last").state_dict())
        state = load_state(out / "last")
        optimizer.load_state_dict(state["optimizer"])
        if scaler and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        start, best = state["iteration"], state["best_miou"]
        set_rng_state(state["rng"])
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    seeded = SeededDataset(train_set, cfg.run.seed)
    sampler = DistributedSampler(seeded, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.run.seed, drop_last=True)
    batches_per_epoch = len(sampler) // per_rank
    if batches_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_set)} images) is smaller than one batch per process")

    def loader_from(micro_step: int) -> DataLoader:
        epoch, skip = divmod(micro_step, batches_per_epoch)
        sampler.set_epoch(epoch)
        seeded.epoch = epoch
        # Its own generator: creating a loader must not draw from the global RNG either.
        generator = torch.Generator().manual_seed(cfg.run.seed * 100_003 + epoch)
        return DataLoader(seeded, batch_size=per_rank, sampler=SkipFirst(sampler, skip * per_rank),
                          num_workers=cfg.data.workers, drop_last=True, pin_memory=ctx.device.type == "cuda",
                          generator=generator)

    end = min(stop_at or cfg.run.iterations, cfg.run.iterations)
    micro_step = start * cfg.run.accumulation
    batches = iter(loader_from(micro_step))
    metrics_path = out / "metrics.jsonl"
    progress = tqdm(total=cfg.run.iterations, initial=start, desc="training", unit="it", disable=not ctx.is_main,
                    dynamic_ncols=True)
    result: dict[str, Any] = {}
    tic = time.perf_counter()
    model.train()
    for iteration in range(start, end):
        lr = learning_rate(cfg, iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro in range(cfg.run.accumulation):
            try:
                images, masks = next(batches)
            except StopIteration:
                batches = iter(loader_from(micro_step))
                images, masks = next(batches)
            micro_step += 1
            images, masks = images.to(ctx.device, non_blocking=True), masks.to(ctx.device, non_blocking=True)
            sync = micro == cfg.run.accumulation - 1 or ctx.world_size == 1
            with (model.no_sync() if not sync else contextlib.nullcontext()), torch.autocast(
                    ctx.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(images)
                loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX) / cfg.run.accumulation
            (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += loss.item()
        if scaler:
            scaler.unscale_(optimizer)
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"loss became {loss_sum} at iteration {iteration}; lower optim.lr or use amp=bf16")
        done = iteration + 1
        progress.update(1)
        if done % cfg.run.log_every == 0 or done == end:
            loss_avg = distributed.mean_across(loss_sum, ctx.device)
            progress.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{lr:.2e}")
            if ctx.is_main:
                _log(metrics_path, {"iteration": done, "loss": loss_avg, "lr": lr,
                                    "seconds": round(time.perf_counter() - tic, 3)})
        if done % cfg.run.eval_every == 0 or done == end:
            result = _evaluate_and_save(cfg, ctx, net, val_set, optimizer, scaler, done, best, out)
            best = max(best, result["miou"])
            model.train()
    progress.close()
    distributed.teardown()
    return result


def _evaluate_and_save(cfg, ctx, net, val_set, optimizer, scaler, iteration, best, out) -> dict[str, Any]:
    net.eval()
    predictor = Predictor(net, device=ctx.device)
    scores = evaluate(predictor, val_set, short_side=cfg.data.eval_short_side, rank=ctx.rank,
                      world_size=ctx.world_size, progress=ctx.is_main)
    miou = scores.miou
    result = {"iteration": iteration, "miou": miou, "pixel_accuracy": scores.pixel_accuracy,
              "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(val_set.class_names, scores.iou,
                                                                             strict=True)}}
    if ctx.is_main:
        _log(out / "metrics.jsonl", {"eval": result})
        tqdm.write(f"iteration {iteration}: mIoU {100 * miou:.2f}, pixel accuracy {100 * scores.pixel_accuracy:.2f}")
        new_best = miou > best
        net.metadata = net.metadata.replace(provenance={**net.metadata.provenance, "run": str(out),
                                                        "iteration": iteration, "miou": miou})
        state = pack_state(optimizer, scaler, iteration, max(best, miou))
        save_checkpoint(net, out / "last", extra_files={STATE_FILE: state})
        if new_best:
            save_checkpoint(net, out / "best")
        (out / "eval_classes.md").write_text(scores.table(val_set.class_names) + "\n")
        confusion_image(scores, val_set.class_names, out / "confusion.png")
    distributed.barrier()
    return result
