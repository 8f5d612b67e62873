"""The transfer experiment (``noteloop transfer``): zero- and few-shot F1 on a held-out
corpus, from scratch and from a multi-task starting point tuned on other corpora."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noteloop.core import fewshot
from noteloop.core.errors import ConfigError
from noteloop.usecases import modeling


@dataclass(frozen=True)
class TransferPlan:
    """What ``noteloop transfer`` was asked for, its options read and checked."""

    shots: Sequence[int]
    backend: str = "generative"
    seed: int = 0
    test_docs: int = 0  # target test documents used (0: all)
    source_docs: int = 0  # training documents per source corpus (0: all)
    max_words: int = 0  # notes clipped to about this many words (0: whole)
    top_types: int = 0  # each corpus's most frequent entity types kept (0: all)
    definitions: dict[str, str] | None = None
    relations: bool = True
    keep_multitask: Path | None = None  # where the multi-task starting point is kept
    multitask_from: Path | None = None  # a starting point kept by an earlier run


def transfer_experiment(
    target: fewshot.Corpus,
    sources: Sequence[fewshot.Corpus],
    plan: TransferPlan,
    config: dict[str, Any],
    on_point: Callable[[fewshot.TransferPoint], None],
) -> fewshot.TransferResult:
    """The experiment's curves: every corpus reduced as ``plan`` says, then
    :func:`noteloop.core.fewshot.transfer_curves` with the backend's factories."""
    if plan.multitask_from is not None and not (plan.multitask_from / "noteloop.json").is_file():
        raise ConfigError(f"--multitask-from {plan.multitask_from}: not a saved model")
    reduce = {"max_words": plan.max_words, "n_types": plan.top_types,
              "definitions": plan.definitions or {}}  # fmt: skip
    goal = fewshot.prepare(target, **reduce)
    test = tuple(fewshot.sample(goal.test, plan.test_docs, plan.seed))
    goal = fewshot.Corpus(goal.name, goal.schema, goal.train, test)
    reduced = [fewshot.prepare(c, **reduce) for c in sources]
    reduced = [_sampled(c, plan.source_docs, plan.seed) for c in reduced]
    with tempfile.TemporaryDirectory(prefix="noteloop-transfer-") as tmp:
        # A starting point not asked to be kept lives as long as the experiment.
        workdir = plan.keep_multitask or Path(tmp)
        fresh, pretrain, zero_shot = modeling.transfer_factories(
            plan.backend, config, workdir, plan.multitask_from
        )
        return fewshot.transfer_curves(
            reduced, goal, list(plan.shots), fresh, pretrain, backend=plan.backend,
            seed=plan.seed, can_zero_shot=zero_shot, relations=plan.relations, on_point=on_point,
        )  # fmt: skip


def _sampled(corpus: fewshot.Corpus, n: int, seed: int) -> fewshot.Corpus:
    """``corpus`` with ``n`` of its training documents (all of them when ``n`` is 0)."""
    train = tuple(fewshot.sample(corpus.train, n, seed))
    return fewshot.Corpus(corpus.name, corpus.schema, train, corpus.test)
