"""The interface every extraction backend implements, in the project's vocabulary.

No torch in any signature: the worker, the simulator and the tests talk to a backend
(the encoder here, a generative LLM later, a fake in UI tests) only through
:class:`Extractor`, :class:`DocumentPrediction` and the training events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from noteloop.core.errors import NoteloopError
from noteloop.core.schema import Document, LabelSchema, Relation, Span, Suggestion


class TrainingCancelled(NoteloopError):
    """``should_stop`` returned True between two steps: the job was cancelled.

    The extractor is left as it was before ``train`` was called only in the sense that
    nothing was saved; a worker that catches this discards the extractor.
    """


@dataclass(frozen=True, slots=True)
class MetricEvent:
    """One measurement during training (``name``: "loss", "span_loss", "relation_loss",
    "epoch_loss"...), ``seconds`` since training began."""

    epoch: int
    step: int
    name: str
    value: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "name": self.name,
            "value": self.value,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True)
class TrainSummary:
    """What a finished training round did: size, time and the last step's loss."""

    epochs: int
    steps: int
    seconds: float
    final_loss: float
    n_docs: int
    n_tokens: int
    device: str
    precision: str = "fp32"
    restarts: int = 0  # runs thrown away because the model collapsed (see the backend)
    held_out: int = 0  # gold notes kept aside to choose the epoch and the thresholds
    held_out_score: float | None = None  # the chosen epoch's score on them
    # gold training spans the suggesting span head cannot express (a discontinuous span,
    # one wider than any candidate, or overlapping another under a BIO tagger)
    unexpressed_spans: int = 0
    warm_from: str = ""  # the saved model the round continued from; "" = the base model

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "steps": self.steps,
            "seconds": self.seconds,
            "final_loss": self.final_loss,
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "device": self.device,
            "precision": self.precision,
            "restarts": self.restarts,
            "held_out": self.held_out,
            "held_out_score": self.held_out_score,
            "unexpressed_spans": self.unexpressed_spans,
            "warm_from": self.warm_from,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSummary:
        return cls(**data)


# The most strict entity F1 that int8 inference may cost against the float model.
INT8_TOLERANCE = 0.005


@dataclass(frozen=True, slots=True)
class Int8Check:
    """Strict entity F1 of a model's float and int8 inference on the same gold notes,
    measured once when the model is published and stored with it: int8 serves only
    where it costs at most ``INT8_TOLERANCE``."""

    notes: int
    float_f1: float
    int8_f1: float
    scheme: str = "all"  # which linear layers are int8 (noteloop.core.model.quantize)

    @property
    def passed(self) -> bool:
        return self.notes > 0 and self.float_f1 - self.int8_f1 <= INT8_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"notes": self.notes, "float_f1": self.float_f1, "int8_f1": self.int8_f1,
                "scheme": self.scheme, "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Int8Check:
        return cls(int(data["notes"]), float(data["float_f1"]), float(data["int8_f1"]),
                   str(data.get("scheme", "all")))


@dataclass(frozen=True, slots=True)
class DocumentPrediction:
    """A backend's suggestions for one note.

    Attributes:
        doc_id: The note's id.
        spans: Suggested spans (``Span`` items with ids ``S1``, ``S2``... in text order).
        relations: Suggested relations (``Relation`` items whose head/tail are span ids
            of ``spans``).
        uncertainty: In [0, 1]; higher means the model is less sure about this note.
        embedding: A note-level vector, for diversity-based active learning.
    """

    doc_id: str
    spans: tuple[Suggestion, ...]
    relations: tuple[Suggestion, ...]
    uncertainty: float
    embedding: tuple[float, ...]

    def __post_init__(self) -> None:
        if not 0.0 <= self.uncertainty <= 1.0:
            raise ValueError(
                f"prediction {self.doc_id}: uncertainty must be in [0, 1], got {self.uncertainty}"
            )
        for s in self.spans:
            if not isinstance(s.item, Span):
                raise ValueError(f"prediction {self.doc_id}: {s.item.id} is not a span")
        for r in self.relations:
            if not isinstance(r.item, Relation):
                raise ValueError(f"prediction {self.doc_id}: {r.item.id} is not a relation")

    def as_document(self, text: str) -> Document:
        """The suggestions as a Document over ``text`` (for evaluation and export)."""
        spans = [s.item for s in self.spans]
        relations = [r.item for r in self.relations]
        return Document(self.doc_id, text, tuple(spans), tuple(relations))  # type: ignore[arg-type]


OnMetric = Callable[[MetricEvent], None]
ShouldStop = Callable[[], bool]
OnProgress = Callable[[int, int], None]  # (documents done, documents in all)


class ExtractorConfig(Protocol):
    """What the loop reads of any backend's settings: the seed a round trains with, and
    every setting, to record with the version it trained."""

    seed: int

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class Extractor(Protocol):
    """A model that learns spans and relations from gold notes and suggests them."""

    config: ExtractorConfig

    def train(
        self,
        docs: Sequence[Document],
        schema: LabelSchema,
        *,
        on_metric: OnMetric | None = None,
        should_stop: ShouldStop | None = None,
        start: Path | None = None,
    ) -> TrainSummary:
        """Trains on the gold ``docs`` (their spans and relations) under ``schema``.

        ``start`` is an earlier saved model of the same backend that the round may continue
        from; a backend that cannot (other labels, other shapes) starts from its base
        model, and the summary's ``warm_from`` says which it did.

        Raises:
            TrainingCancelled: ``should_stop()`` returned True between two steps.
        """
        ...

    def predict(
        self,
        docs: Sequence[Document],
        *,
        batch_size: int = 32,
        on_progress: OnProgress | None = None,
        given_spans: bool = False,
    ) -> list[DocumentPrediction]:
        """Suggestions for ``docs``, one prediction per document, in order.

        With ``given_spans`` the documents' own spans are taken as the span suggestions
        (score 1.0) and only relations between them are predicted: relation suggestions
        for a note whose concepts an annotator has already fixed, and the "relations with
        gold entities" evaluation.
        """
        ...

    def save(self, path: Path) -> None:
        """Writes everything needed by :meth:`load` into the (existing or new) folder."""
        ...

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> Self:
        """An extractor from a folder written by :meth:`save`."""
        ...


@runtime_checkable
class ChecksInt8(Protocol):
    """A backend whose inference can run with int8 weights, once checked on gold notes."""

    def check_int8(self, gold: Sequence[Document], float_f1: float) -> Int8Check | None:
        """Predicts ``gold`` from its text with int8 weights, compares with the float
        model's ``float_f1`` on the same notes and records the check with the model;
        None where int8 cannot run (a GPU)."""
        ...
