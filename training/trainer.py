"""The training loop: iterations of SGD/AdamW on per-pixel cross-entropy, DDP, AMP, resume.

Reproducibility: the data stream is seeded per sample and resumable at any micro-step
(training/batches.py), and the model's RNG (stochastic depth) is saved with every state. A run
resumed from its newest state therefore continues exactly as if it had never stopped, whether
that state was written by an evaluation, the checkpoint schedule or a stop signal.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from model import (
    ModelMetadata,
    Predictor,
    Segmenter,
    build_segmenter,
    get_variant,
    load_pretrained_encoder,
    load_segmenter,
    save_checkpoint,
)
from model.inference import precision_dtype
from model.metadata import normalization_stats
from model.scores import IGNORE_INDEX
from training import distributed
from training.batches import BatchStream
from training.checkpoint_schedule import CheckpointSchedule
from training.config import TrainConfig, save_config
from training.data.layouts import build_dataset
from training.evaluate import confusion_image, evaluate
from training.run_folder import Resume, RunStart, plan_run, prepare_folder
from training.saved_states import LAST, SavedState, save_state
from training.schedule import cosine_lr, poly_lr
from training.state import pack_state, set_rng_state
from training.stop_signals import StopSignals, TrainingInterrupted
from training.transforms import TrainTransform


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


def trim_log(path: Path, iteration: int) -> None:
    """Drop the records of iterations after `iteration`: a resumed run logs them again."""
    if not path.is_file():
        return
    def logged_at(line: str) -> int | None:
        try:
            record = json.loads(line)
            return record["iteration"] if "iteration" in record else record["eval"]["iteration"]
        except (ValueError, KeyError, TypeError):  # a line a crash cut short: dropped
            return None

    lines = path.read_text().splitlines()
    keep = [line for line in lines if (at := logged_at(line)) is not None and at <= iteration]
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, path)


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


def restore(saved: SavedState, net: Segmenter, optimizer: torch.optim.Optimizer, amp: Amp,
            ctx: distributed.Context) -> float:
    """Load a saved state (weights, optimizer, scaler, RNG) into the run; returns the best mIoU so far."""
    net.load_state_dict(load_segmenter(saved.folder).state_dict())
    state = saved.state
    optimizer.load_state_dict(state["optimizer"])
    if amp.scaler and state["scaler"]:
        amp.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], ctx.device)
    saved_world = state.get("world_size", ctx.world_size)
    if saved_world != ctx.world_size and ctx.is_main:
        print(f"note: the state was saved by {saved_world} process(es), this run has {ctx.world_size}: the "
              "data order (and so the weights) will differ from an uninterrupted run's")
    return float(state["best_miou"])


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


class StateSaver:
    """Saves the run's state (rank 0 writes, every rank waits) and knows the newest one."""

    def __init__(self, cfg: TrainConfig, ctx: distributed.Context, out: Path, net: Segmenter,
                 optimizer: torch.optim.Optimizer, amp: Amp, start: RunStart, best: float,
                 clock: Callable[[], float]) -> None:
        self.cfg, self.ctx, self.out, self.net, self.optimizer, self.amp = cfg, ctx, out, net, optimizer, amp
        self.best, self.first = best, start.iteration
        self.saved_at: int | None = start.iteration if start.saved else None
        self.saved_in: Path | None = start.saved.folder if start.saved else None
        self.schedule = CheckpointSchedule(cfg.run.checkpoint_every, cfg.run.checkpoint_minutes, clock)
        self.provenance = dict(net.metadata.provenance)

    def save(self, iteration: int, evaluation: dict[str, Any] | None = None) -> None:
        """The state after `iteration` steps as `last/` (and `best/` on a new best evaluation).

        Without an evaluation, a state already saved (or a run that took no step yet) is not written again.
        """
        if evaluation is None and iteration in (self.saved_at, self.first):
            return
        if self.ctx.is_main:
            provenance = {**self.provenance, "run": str(self.out), "iteration": iteration}
            if evaluation is not None:
                provenance["miou"] = evaluation["miou"]
            self.net.metadata = self.net.metadata.replace(provenance=provenance)
            new_best = evaluation is not None and evaluation["miou"] > self.best
            self.best = max(self.best, evaluation["miou"]) if evaluation else self.best
            state = pack_state(self.optimizer, self.amp.scaler, iteration, self.best, self.ctx.world_size,
                               self.ctx.device)
            save_state(self.net, self.out, state, iteration, self.saved_at, self.cfg.run.keep_checkpoints)
            if new_best:
                save_checkpoint(self.net, self.out / "best")
        elif evaluation is not None:
            self.best = max(self.best, evaluation["miou"])
        self.saved_at, self.saved_in = iteration, self.out / LAST
        self.schedule.saved()
        distributed.barrier()

    def interrupted(self, signal_name: str, iteration: int, note: str = "") -> TrainingInterrupted:
        total = self.cfg.run.iterations
        if self.saved_in is None:
            return TrainingInterrupted(
                f"stopped by {signal_name} before the first iteration: nothing to save, the run starts over with "
                "--resume", signal_name, iteration, None)
        return TrainingInterrupted(f"stopped by {signal_name} after iteration {iteration} of {total}; the state is "
                                   f"saved in {self.saved_in}{note}", signal_name, iteration, str(self.saved_in))


def train(cfg: TrainConfig, resume: Resume = False, stop_at: int | None = None, allow_config_change: bool = False,
          overwrite: bool = False, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Run (or continue) the experiment `cfg`; returns the last evaluation's figures.

    Writes into `cfg.run.out_dir`: config.yaml, metrics.jsonl, the newest state in last/ and
    earlier ones in checkpoints/ (training/saved_states.py), best/, eval_classes.md and
    confusion.png. `resume`: False (a new run), True (continue; an error if there is nothing to
    continue) or "auto" (continue if there is a saved state); training/run_folder.py has the
    rules, `overwrite` starts a run over. `stop_at` ends the run early at that iteration (the
    schedule still spans run.iterations). `clock` times `run.checkpoint_minutes`.

    Raises TrainingInterrupted after SIGINT, SIGTERM or SIGUSR1, once the state is saved.
    """
    ctx = distributed.setup(cfg.run.device)
    try:
        out = Path(cfg.run.out_dir)
        start = plan_run(cfg, out, resume, overwrite, allow_config_change)
        distributed.barrier()  # every process has read the folder before one of them changes it
        end = min(stop_at or cfg.run.iterations, cfg.run.iterations)
        if ctx.is_main:
            for line in start.notes:
                print(line)
        if start.saved and start.iteration >= end:
            if ctx.is_main:
                print(f"{out} already reached iteration {start.iteration} of {cfg.run.iterations}; nothing to do")
            return {}
        if ctx.is_main:
            for line in prepare_folder(out, start):
                print(line)
            if start.saved:
                print(f"resuming {out} from iteration {start.iteration} of {cfg.run.iterations}"
                      + ("" if start.saved.folder == out / LAST else f" ({start.saved.folder})"))
        distributed.barrier()
        with StopSignals() as stop:
            return _run(cfg, ctx, out, start, end, stop, clock)
    finally:
        distributed.teardown()


def _run(cfg: TrainConfig, ctx: distributed.Context, out: Path, start: RunStart, end: int, stop: StopSignals,
         clock: Callable[[], float]) -> dict[str, Any]:
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
    best = restore(start.saved, net, optimizer, amp, ctx) if start.saved else -1.0
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        trim_log(out / "metrics.jsonl", start.iteration)
    model = DistributedDataParallel(net) if ctx.world_size > 1 else net
    batches = BatchStream(train_set, cfg, ctx, per_rank, start.iteration * cfg.run.accumulation)
    saver = StateSaver(cfg, ctx, out, net, optimizer, amp, start, best, clock)
    progress = tqdm(total=cfg.run.iterations, initial=start.iteration, desc="training", unit="it",
                    disable=not ctx.is_main, dynamic_ncols=True)
    result: dict[str, Any] = {}
    tic = time.perf_counter()
    model.train()
    for iteration in range(start.iteration, end):
        # Every process takes the same decision at the same step: any one's signal stops them all.
        stop_now, time_due = distributed.any_across([stop.requested, saver.schedule.time_due()], ctx.device)
        if stop_now or time_due:
            saver.save(iteration)
        if stop_now:
            progress.close()
            raise saver.interrupted(stop.signal_name or "a signal to another process", iteration)
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
            # Saved first: a signal or a kill during a long evaluation (minutes on ADE20K) loses nothing.
            saver.save(done)
            if distributed.any_across([stop.requested], ctx.device)[0]:
                progress.close()
                raise saver.interrupted(stop.signal_name or "a signal to another process", done,
                                        f" (its evaluation at iteration {done} was skipped)")
            result = _evaluate(ctx, net, val_set, done, out)
            saver.save(done, evaluation=result)
            model.train()
        elif saver.schedule.iteration_due(done):
            saver.save(done)
    progress.close()
    return result


def _evaluate(ctx: distributed.Context, net: Segmenter, val_set, iteration: int, out: Path) -> dict[str, Any]:
    net.eval()
    predictor = Predictor(net, device=ctx.device)
    # Whatever evaluation draws, training's random stream must not see: a run stopped before an
    # evaluation (and so resumed without it) continues exactly as one that evaluated.
    # Its bar sits under the training bar, which tqdm draws a line down and returns from with a cursor-up
    # escape: a terminal obeys it, a log file (`> train.log`, a SLURM job) keeps a stray "[A". There
    # the result line below is the progress report.
    bar = ctx.is_main and sys.stderr.isatty()
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
        scores = evaluate(predictor, val_set, rank=ctx.rank, world_size=ctx.world_size, progress=bar)
    result = {"iteration": iteration, "miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy,
              "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(val_set.class_names, scores.iou,
                                                                             strict=True)}}
    if ctx.is_main:
        _log(out / "metrics.jsonl", {"eval": result})
        tqdm.write(f"iteration {iteration}: mIoU {100 * scores.miou:.2f}, "
                   f"pixel accuracy {100 * scores.pixel_accuracy:.2f}")
        (out / "eval_classes.md").write_text(scores.table(val_set.class_names) + "\n")
        confusion_image(scores, val_set.class_names, out / "confusion.png")
    return result
