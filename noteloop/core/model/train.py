"""The training loop shared by the backends: AdamW, warm-up and decay, clipping, events.

The loop knows nothing of spans or relations. A backend hands it parameter groups, a
function that yields an epoch's batches (shuffled with a seeded generator, so a run
repeats exactly) and a function that turns a batch into named losses; the loop steps,
reports every loss through ``on_metric`` and checks ``should_stop`` between steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from noteloop.core.model.base import MetricEvent, OnMetric, ShouldStop, TrainingCancelled

B = TypeVar("B")
# Names of parameters that get no weight decay: biases and normalisation weights.
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


@dataclass(frozen=True, slots=True)
class LoopOptions:
    epochs: int
    steps_per_epoch: int
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0


@dataclass(frozen=True, slots=True)
class LoopResult:
    steps: int
    seconds: float
    final_loss: float


def parameter_groups(
    named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW groups at one learning rate: decayed weights, then undecayed biases/norms."""
    decay, plain = [], []
    for name, param in named:
        if param.requires_grad:
            (plain if name.endswith(_NO_DECAY) else decay).append(param)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": plain, "lr": lr, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def warmup_then_linear_decay(warmup: int, total: int) -> Callable[[int], float]:
    """The LR multiplier at a step: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _emit(on_metric: OnMetric | None, epoch: int, step: int, losses: Mapping[str, float],
          start: float) -> None:
    if on_metric is None:
        return
    now = time.perf_counter() - start
    for name, value in losses.items():
        on_metric(MetricEvent(epoch, step, name, value, now))


class _Stepper:
    """One optimiser, its schedule and clipping; ``step`` runs one batch."""

    def __init__(self, groups: list[dict[str, Any]], options: LoopOptions) -> None:
        total = max(1, options.epochs * options.steps_per_epoch)
        warmup = math.floor(options.warmup_ratio * total)
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_then_linear_decay(warmup, total)
        )
        self.max_norm = options.max_grad_norm

    def step(self, losses: Mapping[str, torch.Tensor]) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.max_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_norm)
        self.optimizer.step()
        self.schedule.step()
        return {name: float(value.detach()) for name, value in losses.items()}


def fit(
    groups: list[dict[str, Any]],
    epoch_batches: Callable[[int], Sequence[B]],
    loss_fn: Callable[[B], Mapping[str, torch.Tensor]],
    options: LoopOptions,
    *,
    on_metric: OnMetric | None = None,
    should_stop: ShouldStop | None = None,
    after_epoch: Callable[[int], bool] | None = None,
) -> LoopResult:
    """Trains for ``options.epochs`` epochs; ``loss_fn`` must return a ``"loss"`` entry.

    Emits every named loss of every step and ``progress`` (the share of all steps done,
    for a progress bar), then ``epoch_loss`` (the epoch's mean loss). ``after_epoch(n)``
    runs after epoch ``n`` (1-based) and ends training early by returning True.

    Raises:
        TrainingCancelled: ``should_stop()`` was True before a step.
    """
    stepper = _Stepper(groups, options)
    total = max(1, options.epochs * options.steps_per_epoch)
    start, step, last = time.perf_counter(), 0, math.nan
    for epoch in range(options.epochs):
        epoch_losses = []
        for batch in epoch_batches(epoch):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"training cancelled at epoch {epoch + 1}, step {step}")
            values = stepper.step(loss_fn(batch))
            step += 1
            last = values["loss"]
            epoch_losses.append(last)
            _emit(on_metric, epoch + 1, step, {**values, "progress": min(1.0, step / total)},
                  start)
        mean = sum(epoch_losses) / max(1, len(epoch_losses))
        _emit(on_metric, epoch + 1, step, {"epoch_loss": mean}, start)
        if after_epoch is not None and after_epoch(epoch + 1):
            break
    return LoopResult(step, time.perf_counter() - start, last)
