"""A fake extractor for worker and UI tests: fast, deterministic, and it really learns.

It memorises the (text, label) of every training span and predicts by exact string match,
so its quality grows with the gold set, as a real model's does, in milliseconds. Config
knobs make a run slow (to cancel it), fail, or learn nothing (to test failure handling).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from noteloop.core.model.base import (
    DocumentPrediction,
    MetricEvent,
    TrainingCancelled,
    TrainSummary,
)
from noteloop.core.schema import Document, LabelSchema, Span, Suggestion
from noteloop.usecases.modeling import Backend


@dataclass(frozen=True)
class FakeConfig:
    step_seconds: float = 0.0  # sleep per training document (to have time to cancel)
    fail: str = ""  # raise RuntimeError(fail) at the end of training
    forget: bool = False  # learn nothing: a round whose model collapsed
    forget_seeds: tuple[int, ...] = ()  # learn nothing when trained with one of these seeds
    threads: int = 0
    seed: int = 0
    # Runs that collapse before one learns; the fake retrains them itself, as the encoder
    # does, up to ``restarts`` times (the job's retry budget caps that).
    collapses: int = 0
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemoryExtractor:
    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config or FakeConfig()
        self.lexicon: dict[str, str] = {}
        self.trained_on: list[str] = []

    def train(self, docs, schema: LabelSchema, *, on_metric=None, should_stop=None, start=None):
        """Learns the spans of ``docs``; given ``start`` (a saved model of this backend),
        continues from its lexicon, as the encoder continues from a saved adapter, unless
        this round forgets (a collapsed model keeps nothing)."""
        warm_from = str(start) if start is not None and not self._forgets() else ""
        if warm_from:
            self.lexicon = dict(MemoryExtractor.load(Path(start)).lexicon)
        began = time.perf_counter()
        for step, doc in enumerate(docs, start=1):
            if should_stop and should_stop():
                raise TrainingCancelled("cancelled")
            time.sleep(self.config.step_seconds)
            self.trained_on.append(doc.id)
            for span in () if self._forgets() else doc.spans:
                self.lexicon[span.text_in(doc.text)] = span.label
            if on_metric:
                seconds = time.perf_counter() - began
                on_metric(MetricEvent(1, step, "loss", 1.0 / step, seconds))
                on_metric(MetricEvent(1, step, "progress", step / len(docs), seconds))
        if self.config.fail:
            raise RuntimeError(self.config.fail)
        words = sum(len(d.text.split()) for d in docs)
        return TrainSummary(1, len(docs), time.perf_counter() - began, 0.0, len(docs), words, "cpu",
                            warm_from=warm_from,
                            restarts=min(self.config.collapses, self.config.restarts))

    def _forgets(self) -> bool:
        collapsed = self.config.collapses > self.config.restarts  # still, after its restarts
        return collapsed or self.config.forget or self.config.seed in self.config.forget_seeds

    def predict(
        self, docs: Sequence[Document], *, batch_size=32, on_progress=None, given_spans=False
    ) -> list[DocumentPrediction]:
        out = []
        for i, doc in enumerate(docs, start=1):
            out.append(self._predict(doc))
            if on_progress:
                on_progress(i, len(docs))
        return out

    def _patterns(self) -> list[tuple[str, re.Pattern[str], str]]:
        """The lexicon as compiled patterns, longest first; compiled once per lexicon
        (re's own cache holds 512 patterns, fewer than a trained lexicon has)."""
        key = tuple(self.lexicon.items())
        if getattr(self, "_compiled_for", None) != key:
            ordered = sorted(self.lexicon.items(), key=lambda kv: -len(kv[0]))
            self._compiled = [
                (text, re.compile(rf"(?<!\w){re.escape(text)}(?!\w)"), label)
                for text, label in ordered
            ]
            self._compiled_for = key
        return self._compiled

    def _predict(self, doc: Document) -> DocumentPrediction:
        spans: list[Suggestion] = []
        taken: set[int] = set()
        for text, pattern, label in self._patterns():
            if text not in doc.text:  # a plain search first: most entries are not in a note
                continue
            for m in pattern.finditer(doc.text):
                if taken.isdisjoint(range(m.start(), m.end())):
                    taken.update(range(m.start(), m.end()))
                    span = Span(f"S{len(spans) + 1}", label, m.start(), m.end())
                    spans.append(Suggestion(span, 0.9))
        covered = len(taken) / max(len(doc.text), 1)
        embedding = (float(len(doc.text) % 97), covered, float(len(spans)))
        return DocumentPrediction(doc.id, tuple(spans), (), 1.0 - min(covered * 5, 1.0), embedding)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "backend": "memory",
            "config": self.config.to_dict(),
            "lexicon": self.lexicon,
            "trained_on": self.trained_on,
        }
        (path / "noteloop.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> MemoryExtractor:
        meta = json.loads((path / "noteloop.json").read_text(encoding="utf-8"))
        extractor = cls(FakeConfig(**meta["config"]))
        extractor.lexicon, extractor.trained_on = meta["lexicon"], meta["trained_on"]
        return extractor


def _create(config: Mapping[str, Any]) -> MemoryExtractor:
    data = dict(config)
    data["forget_seeds"] = tuple(data.get("forget_seeds", ()))  # JSON settings give lists
    return MemoryExtractor(FakeConfig(**data))


MEMORY_BACKEND = Backend(_create, MemoryExtractor.load, continues=True)
# The same, as a backend that restarts a collapsed run itself (by default twice).
RESTARTING_BACKEND = Backend(_create, MemoryExtractor.load, continues=True, restarts=2)
