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
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from model import (
    IGNORE_INDEX,
    ModelMetadata,
    Predictor,
    Segmenter,
    build_segmenter,
    get_variant,
    load_pretrained_encoder,
    load_segmenter,
    normalization_stats,
    precision_dtype,
    save_checkpoint,
)
from training import distributed
from training.config import TrainConfig, save_config
from training.data.layouts import build_dataset
from training.evaluate import confusion_image, evaluate
from training.run_folder import check_run_folder
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
                                 dataset=dataset_name, test_scale=cfg.data.test_scale,
                                 provenance={"variant": variant.name})
    return net


def make_optimizer(cfg: TrainConfig, net: Segmenter) -> torch.optim.Optimizer:
    skip = net.no_weight_decay()
    decay = [p for n, p in net.named_parameters() if n not in skip and p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if n in skip or p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    return torch.optim.AdamW(groups, lr=cfg.optim.lr)  # "adamw": load_config allows nothing else


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    o = cfg.optim
    if o.schedule == "poly":
        return poly_lr(iteration, cfg.run.iterations, o.lr, o.poly_power, o.min_lr, o.warmup_iterations)
    return cosine_lr(iteration, cfg.run.iterations, o.lr, o.min_lr, o.warmup_iterations)  # "cosine"


def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class BatchStream:
    """Endless training batches for this process, resumable at any micro-step.

    Data order comes from a seeded DistributedSampler (one permutation per epoch); a resumed
    run skips the micro-steps already taken instead of loading them.
    """

    def __init__(self, dataset: Dataset, cfg: TrainConfig, ctx: distributed.Context, per_rank: int,
                 micro_step: int) -> None:
        self.seeded = SeededDataset(dataset, cfg.run.seed)
        self.sampler = DistributedSampler(self.seeded, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.run.seed,
                                          drop_last=True)
        self.per_rank, self.seed, self.workers = per_rank, cfg.run.seed, cfg.data.workers
        self.pin = ctx.device.type == "cuda"
        self.batches_per_epoch = len(self.sampler) // per_rank
        if self.batches_per_epoch == 0:
            raise ValueError(f"the training set ({len(dataset)} images) is smaller than one batch per process")
        self.micro_step = micro_step
        self._batches = iter(self._loader())

    def _loader(self) -> DataLoader:
        epoch, skip = divmod(self.micro_step, self.batches_per_epoch)
        self.sampler.set_epoch(epoch)
        self.seeded.epoch = epoch
        # Its own generator: creating a loader must not draw from the global RNG either.
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(self.seeded, batch_size=self.per_rank, sampler=SkipFirst(self.sampler, skip * self.per_rank),
                          num_workers=self.workers, drop_last=True, pin_memory=self.pin, generator=generator)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            batch = next(self._batches)
        except StopIteration:  # end of an epoch: the next one, newly shuffled
            self._batches = iter(self._loader())
            batch = next(self._batches)
        self.micro_step += 1
        return batch


class Amp:
    """Mixed precision per `run.amp`: the autocast dtype and, for fp16, a gradient scaler."""

    def __init__(self, amp: str, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = None if amp == "none" else precision_dtype(amp)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params, grad_clip: float | None) -> None:
        if self.scaler:
            self.scaler.unscale_(optimizer)
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def per_process_batch(cfg: TrainConfig, world_size: int) -> int:
    per_rank = cfg.run.batch_size // (world_size * cfg.run.accumulation)
    if per_rank * world_size * cfg.run.accumulation != cfg.run.batch_size or per_rank < 1:
        raise ValueError(f"run.batch_size {cfg.run.batch_size} must be a multiple of processes ({world_size}) "
                         f"× run.accumulation ({cfg.run.accumulation})")
    return per_rank


def restore(out: Path, net: Segmenter, optimizer: torch.optim.Optimizer, amp: Amp) -> tuple[int, float]:
    """Load `out/last` (weights, optimizer, scaler, RNG); returns (iteration, best mIoU)."""
    net.load_state_dict(load_segmenter(out / "last").state_dict())
    state = load_state(out / "last")
    optimizer.load_state_dict(state["optimizer"])
    if amp.scaler and state["scaler"]:
        amp.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return state["iteration"], state["best_miou"]


def train_step(model: nn.Module, batches: BatchStream, optimizer: torch.optim.Optimizer, amp: Amp,
               cfg: TrainConfig, device: torch.device) -> float:
    """One optimizer step over `run.accumulation` micro-batches; returns the summed loss."""
    loss_sum = 0.0
    for micro in range(cfg.run.accumulation):
        images, masks = batches.next()
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        # DDP: all-reduce gradients only on the last micro-batch.
        last = micro == cfg.run.accumulation - 1 or not isinstance(model, DistributedDataParallel)
        with (contextlib.nullcontext() if last else model.no_sync()), amp.autocast():
            logits = model(images)
            loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX) / cfg.run.accumulation
        amp.backward(loss)
        loss_sum += loss.item()
    amp.step(optimizer, model.parameters(), cfg.optim.grad_clip)
    return loss_sum


def train(cfg: TrainConfig, resume: bool = False, stop_at: int | None = None,
          allow_config_change: bool = False) -> dict[str, Any]:
    """Run (or continue) the experiment `cfg`; returns the last evaluation's figures.

    Writes into `cfg.run.out_dir`: config.yaml, metrics.jsonl, last/ and best/ checkpoints
    (our format + train_state.pt), eval_classes.md and confusion.png.
    `stop_at` ends the run early at that iteration (the schedule still spans run.iterations).
    """
    ctx = distributed.setup(cfg.run.device)
    out = Path(cfg.run.out_dir)
    saved = check_run_folder(cfg, out, resume, allow_config_change)
    if saved is not None:
        if saved >= min(stop_at or cfg.run.iterations, cfg.run.iterations):
            if ctx.is_main:
                print(f"{out} already reached iteration {saved} of {cfg.run.iterations}; nothing to do")
            distributed.teardown()
            return {}
        if ctx.is_main:
            print(f"resuming {out} from iteration {saved} of {cfg.run.iterations}")
    seed_everything(cfg.run.seed)
    per_rank = per_process_batch(cfg, ctx.world_size)
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, "train", generate=True)
    val_set = build_dataset(cfg.data.dataset, cfg.data.root, "val")
    net = build_model(cfg, train_set.class_names, train_set.palette, train_set.name).to(ctx.device)
    # Normalize with the mean/std saved in the checkpoint, so training and inference cannot differ.
    train_set.transform = TrainTransform(cfg.data.crop_size, net.metadata.mean, net.metadata.std,
                                         cfg.data.base_size, cfg.data.ratio_range, cfg.data.cat_max_ratio,
                                         cfg.data.photometric)
    optimizer = make_optimizer(cfg, net)
    amp = Amp(cfg.run.amp, ctx.device)
    start, best = restore(out, net, optimizer, amp) if resume else (0, -1.0)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    batches = BatchStream(train_set, cfg, ctx, per_rank, start * cfg.run.accumulation)
    end = min(stop_at or cfg.run.iterations, cfg.run.iterations)
    progress = tqdm(total=cfg.run.iterations, initial=start, desc="training", unit="it", disable=not ctx.is_main,
                    dynamic_ncols=True)
    result: dict[str, Any] = {}
    tic = time.perf_counter()
    model.train()
    for iteration in range(start, end):
        lr = learning_rate(cfg, iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = train_step(model, batches, optimizer, amp, cfg, ctx.device)
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"loss became {loss_sum} at iteration {iteration}; lower optim.lr or use amp=bf16")
        done = iteration + 1
        progress.update(1)
        if done % cfg.run.log_every == 0 or done == end:
            loss_avg = distributed.mean_across(loss_sum, ctx.device)
            progress.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{lr:.2e}")
            if ctx.is_main:
                _log(out / "metrics.jsonl", {"iteration": done, "loss": loss_avg, "lr": lr,
                                             "seconds": round(time.perf_counter() - tic, 3)})
        if done % cfg.run.eval_every == 0 or done == end:
            result = _evaluate_and_save(cfg, ctx, net, val_set, optimizer, amp.scaler, done, best, out)
            best = max(best, result["miou"])
            model.train()
    progress.close()
    distributed.teardown()
    return result


def _evaluate_and_save(cfg, ctx, net, val_set, optimizer, scaler, iteration, best, out) -> dict[str, Any]:
    net.eval()
    predictor = Predictor(net, device=ctx.device)
    scores = evaluate(predictor, val_set, rank=ctx.rank,
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
