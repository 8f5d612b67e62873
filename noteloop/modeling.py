"""Train, evaluate and predict for a project: the one glue between ``db`` and ``core.model``.

The CLI calls these functions directly and the worker calls them inside its jobs, so a
model trained either way is published the same way: written to a temporary folder,
renamed into place, and only then registered as a ready model version. A crash at any
point leaves either no version or a complete one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import NoteloopError
from noteloop.core.metrics import Evaluation, evaluate, unrepresentable
from noteloop.core.model.base import (
    DocumentPrediction,
    Extractor,
    OnMetric,
    ShouldStop,
    TrainSummary,
)
from noteloop.core.schema import Document, LabelSchema, Split, Suggestion
from noteloop.core.serving_rule import Scores, decide
from noteloop.db import documents, learning, projects, repo, serving
from noteloop.db.engine import begin_write
from noteloop.db.models import ModelVersion

log = logging.getLogger(__name__)

OnPhase = Callable[[str, float], None]  # (phase, fraction done)
# Of train_project's progress: the training steps (their "progress" events run from 0 to
# this); evaluating and publishing take the rest.
TRAINING_STEPS_SHARE = 0.8


@dataclass(frozen=True)
class Backend:
    """How to build a fresh extractor from a config dict, and load a saved one."""

    create: Callable[[Mapping[str, Any]], Extractor]
    load: Callable[[Path], Extractor]


def _encoder_create(config: Mapping[str, Any]) -> Extractor:
    # Imported here: torch loads only in processes that train or predict.
    from noteloop.core.model.config import EncoderConfig
    from noteloop.core.model.encoder import EncoderExtractor

    return EncoderExtractor(EncoderConfig.from_dict(dict(config)))


def _encoder_load(path: Path) -> Extractor:
    from noteloop.core.model.encoder import EncoderExtractor

    return EncoderExtractor.load(path)


def _generative_config(config: Mapping[str, Any]) -> Any:
    from noteloop.core.model.config import GenerativeConfig

    # NOTELOOP_CACHE names where the packaged model's float copy is kept; read here, the
    # one place the CLI, the worker and the experiments all build the backend through.
    data = {"cache_dir": os.environ.get("NOTELOOP_CACHE", ""), **config}
    return GenerativeConfig.from_dict(data)


def _generative_create(config: Mapping[str, Any]) -> Extractor:
    from noteloop.core.model.generative import GenerativeExtractor

    return GenerativeExtractor(_generative_config(config))


def _generative_load(path: Path) -> Extractor:
    from noteloop.core.model.generative import GenerativeExtractor

    return GenerativeExtractor.load(path)


BACKENDS: dict[str, Backend] = {
    "encoder": Backend(_encoder_create, _encoder_load),
    "generative": Backend(_generative_create, _generative_load),
}


def register_backend(name: str, backend: Backend) -> None:
    """Make another backend available by name (the generative one, a test's fake)."""
    BACKENDS[name] = backend


def _backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise NoteloopError(f"unknown backend {name!r}; choose one of: {known}") from None


def make_extractor(backend: str, config: Mapping[str, Any]) -> Extractor:
    """A fresh, untrained extractor of ``backend`` built from a config dict."""
    return _backend(backend).create(config)


def load_extractor(path: Path) -> Extractor:
    """The extractor saved in ``path``, whatever its backend (read from its metadata)."""
    meta = path / "noteloop.json"
    if not meta.is_file():
        raise NoteloopError(f"{path} holds no saved model (no noteloop.json)")
    backend = json.loads(meta.read_text(encoding="utf-8")).get("backend", "encoder")
    return _backend(backend).load(path)


@dataclass(frozen=True)
class TrainingData:
    """What a training round reads: pool gold to learn from, test gold to measure on."""

    schema: LabelSchema
    train: list[Document]
    test: list[Document]
    annotator_hours: float


def training_data(session: Session, project_name: str) -> TrainingData:
    """The project's submitted gold, split. Test documents never reach ``train``."""
    project = projects.get_project(session, project_name)
    train = repo.gold_documents(session, project, split=Split.POOL)
    test = repo.gold_documents(session, project, split=Split.TEST)
    hours = float(repo.project_stats(session, project)["hours"])
    return TrainingData(projects.project_schema(project), train, test, hours)


@dataclass(frozen=True)
class TrainedVersion:
    """A published round: ``serves`` says whether the project's rule made it the serving
    version, ``verdict`` why (or why it was kept as a candidate)."""

    version_id: int
    name: str
    path: Path
    n_train_docs: int
    seconds: float
    evaluation: Evaluation | None
    serves: bool
    verdict: str


def train_project(
    make_session: sessionmaker[Session],
    project_name: str,
    models_dir: Path,
    config: Mapping[str, Any],
    *,
    backend: str = "encoder",
    on_metric: OnMetric | None = None,
    should_stop: ShouldStop | None = None,
    on_phase: OnPhase | None = None,
) -> TrainedVersion:
    """Train on the pool's gold, evaluate on the test gold, publish and register a version.

    The version is always registered, ready; it serves when the project's ``model_rule``
    says so (:func:`noteloop.core.serving_rule.decide`), else it waits as a candidate.

    Raises:
        NoteloopError: no gold to train on; TrainingCancelled when ``should_stop`` says so.
    """
    phase = on_phase or (lambda _p, _f: None)
    with make_session() as session:
        data = training_data(session, project_name)
    if not data.train:
        raise NoteloopError(
            f"project {project_name} has no submitted gold notes in the pool to train on"
        )
    extractor, summary, evaluation, retries = _train_unless_regressed(
        make_session, project_name, data, config, backend, on_metric, should_stop, phase
    )
    phase("publishing", 0.9)
    name = datetime.now(UTC).strftime("v%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    path = publish(extractor, models_dir / _safe(project_name), name)
    version_id, serves, verdict = _register(
        make_session,
        project_name,
        name,
        path,
        backend,
        extractor,
        data,
        evaluation,
        {**summary.to_dict(), "regression_retries": retries},
    )
    return TrainedVersion(
        version_id, name, path, len(data.train), summary.seconds, evaluation, serves, verdict
    )


def _train_unless_regressed(
    make_session: sessionmaker[Session],
    project_name: str,
    data: TrainingData,
    config: Mapping[str, Any],
    backend: str,
    on_metric: OnMetric | None,
    should_stop: ShouldStop | None,
    phase: OnPhase,
) -> tuple[Extractor, TrainSummary, Evaluation | None, int]:
    """Train and evaluate; on a regression, train again with the next seed (up to
    ``REGRESSION_RETRIES`` times). Returns the extractor, its summary, its evaluation and
    the number of retrains.

    Raises:
        RegressionError: every run fell far below the serving version.
    """
    seed: int | None = None
    for retry in range(REGRESSION_RETRIES + 1):
        phase("training", 0.0)
        extractor = make_extractor(backend, config if seed is None else {**config, "seed": seed})
        summary = extractor.train(data.train, data.schema, on_metric=on_metric,
                                  should_stop=should_stop)
        phase("evaluating", TRAINING_STEPS_SHARE)
        evaluation = evaluate_extractor(extractor, data.test) if data.test else None
        if evaluation is None:
            return extractor, summary, None, retry
        try:
            with make_session() as session:
                refuse_regression(session, project_name, evaluation, tested_on(data))
            return extractor, summary, evaluation, retry
        except RegressionError as err:
            if retry == REGRESSION_RETRIES:
                tried = ("" if seed is None
                         else f" Trained with seeds {seed - retry}-{seed}: each fell short.")
                raise RegressionError(f"{err}.{tried}") from None
            seed = _used_seed(extractor) + 1
            log.warning("%s; retraining with seed %d", err, seed)
    raise AssertionError("unreachable: the last retry returns or raises")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def publish(extractor: Extractor, folder: Path, name: str) -> Path:
    """Save into a hidden temporary folder, then rename: the final path is complete or absent."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{name}"
    final = folder / name
    try:
        extractor.save(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _register(
    make_session: sessionmaker[Session],
    project_name: str,
    name: str,
    path: Path,
    backend: str,
    extractor: Extractor,
    data: TrainingData,
    evaluation: Evaluation | None,
    summary: dict[str, Any],
) -> tuple[int, bool, str]:
    """Register the version and apply the project's rule; returns (id, serves, verdict)."""
    config = getattr(getattr(extractor, "config", None), "to_dict", dict)()
    metrics = {
        "train": summary,
        "evaluation": evaluation.to_dict() if evaluation else None,
        "unrepresentable": unrepresentable(data.train).to_dict(),
        "tested_on": tested_on(data),
    }
    with make_session.begin() as session:
        # The write lock before the first read: the serving version compared with must
        # still be the serving one when the decision is written.
        begin_write(session)
        project = projects.get_project(session, project_name)
        serving.lock(session, project)
        current = serving.serving_version(session, project)
        rule = str(project.settings.get("model_rule", "ci"))
        decision = decide(
            rule,
            Scores.from_metrics(name, metrics),
            None if current is None else Scores.from_metrics(current.name, current.metrics),
        )
        version = repo.register_model_version(
            session,
            project,
            name=name,
            backend=backend,
            path=str(path),
            config=config,
            metrics=metrics,
            n_train_docs=len(data.train),
        )
        if evaluation is not None:
            learning.add_curve_points(
                session,
                project,
                version,
                evaluation.to_dict(),
                n_gold_docs=len(data.train),
                annotator_hours=data.annotator_hours,
            )
        version.verdict = decision.verdict
        if decision.serves:
            serving.use_version(session, project, name, f"rule {rule}", decision.verdict)
        session.flush()
        return version.id, decision.serves, decision.verdict


# A round that scores under half of what the serving model scored on the same test notes
# is a failed round (a tagger that nearly collapsed: bench/README.md, active learning),
# not progress: publishing it would swap useful suggestions for almost none. Under the
# floor, F1 is too small for the ratio to mean anything.
REGRESSION_RATIO = 0.5
REGRESSION_FLOOR = 0.1
# A round that falls that far is almost always an unlucky run (a tagger that settled on
# the tag frequencies, a generator that loops), not a sign of bad gold: the same notes
# with another seed train normally. One retrain inside the same job keeps the annotators'
# round instead of making them wait for more gold; a second failure is reported.
REGRESSION_RETRIES = 1


class RegressionError(NoteloopError):
    """A newly trained model scored far below the serving one on the same test notes."""


def _used_seed(extractor: Extractor) -> int:
    """The seed a round trained with, from the extractor's own config (which holds the
    backend's default when the project's config names none)."""
    return int(getattr(getattr(extractor, "config", None), "seed", 0))


def tested_on(data: TrainingData) -> list[str]:
    return sorted(d.id for d in data.test)


def refuse_regression(
    session: Session, project_name: str, evaluation: Evaluation, test_ids: list[str]
) -> None:
    """Raise when ``evaluation`` is far below the serving version's, on the same test notes.

    Raises:
        RegressionError: entity strict F1 under ``REGRESSION_RATIO`` times the serving
            version's, which scored at least ``REGRESSION_FLOOR`` on the same notes.
    """
    serving = serving_version(session, project_name)
    metrics = (serving.metrics or {}) if serving is not None else {}
    if serving is None or not metrics.get("evaluation") or metrics.get("tested_on") != test_ids:
        return  # nothing serving, or scored on other test notes: nothing to compare
    old = float(metrics["evaluation"]["entity"]["strict"]["f1"])
    new = evaluation.entity_strict.f1
    if old >= REGRESSION_FLOOR and new < REGRESSION_RATIO * old:
        raise RegressionError(
            f"the new model scored {new:.3f} entity strict F1 on the {len(test_ids)} test "
            f"notes, under half of the {old:.3f} of the serving version {serving.name}: it "
            f"was not published and {serving.name} keeps serving. The next round trains "
            "after more gold; to retry now, change the seed on the Model page and train now"
        )


def evaluate_extractor(
    extractor: Extractor, gold: Sequence[Document], *, n_bootstrap: int = 1000
) -> Evaluation:
    """Predict the gold notes from their text alone and score the predictions."""
    predictions = extractor.predict([d.without_annotations() for d in gold])
    by_id = {d.id: d for d in gold}
    return evaluate(
        gold, [p.as_document(by_id[p.doc_id].text) for p in predictions], n_bootstrap=n_bootstrap
    )


def serving_version(session: Session, project_name: str) -> ModelVersion | None:
    """The version the project serves (:func:`noteloop.db.serving.serving_version`)."""
    return serving.serving_version(session, projects.get_project(session, project_name))


def latest_version(session: Session, project_name: str) -> tuple[int, Path]:
    """The id and folder of the version the project serves, the one that predicts.

    Raises:
        NoteloopError: nothing serves yet.
    """
    version = serving_version(session, project_name)
    if version is None:
        raise NoteloopError(
            f"project {project_name} has no serving model yet: "
            f"run `noteloop train -p {project_name}`"
        )
    return version.id, Path(version.path)


def evaluate_project(make_session: sessionmaker[Session], project_name: str) -> Evaluation:
    """The serving model's scores on the project's test documents."""
    with make_session() as session:
        _, path = latest_version(session, project_name)
        data = training_data(session, project_name)
    extractor = load_extractor(path)
    if not data.test:
        raise NoteloopError(
            f"project {project_name} has no annotated test documents: import some with "
            "--split test or --split-file"
        )
    return evaluate_extractor(extractor, data.test)


def predict_project(
    make_session: sessionmaker[Session],
    project_name: str,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    notes_per_commit: int = 32,
    version: tuple[int, Path] | None = None,
) -> tuple[int, list[tuple[int, DocumentPrediction]]]:
    """Suggest with the serving version for every pool note without submitted gold; store
    the suggestions of the notes that have none from that version yet.

    Notes without its suggestions are predicted first, in the order of the current
    queue, and committed ``notes_per_commit`` notes at a time: the notes annotators open
    next get the model's suggestions first, minutes before the end of the pool with a
    slow backend, instead of all at once at the end. The notes it suggested for already
    (a version served again after a rollback) are predicted too, last, without storing
    anything: ranking the queue needs every note's prediction from the same model.

    ``version`` (id, folder) names the serving version as the caller read it already.

    Returns the number of suggestions stored and (document row id, prediction) pairs,
    which the worker ranks for the queue.
    """
    with make_session() as session:
        version_id, path = version or latest_version(session, project_name)
        pending = queue_order(session, project_name, unannotated_pool(session, project_name))
        done = serving.suggested_by(session, version_id, [row for row, _ in pending])
    pending = [n for n in pending if n[0] not in done] + [n for n in pending if n[0] in done]
    extractor = load_extractor(path)  # outside the session: loading takes seconds
    stored, out = 0, []
    for start in range(0, len(pending), notes_per_commit):
        part = pending[start : start + notes_per_commit]
        predictions = extractor.predict([doc for _, doc in part])
        with make_session.begin() as session:
            begin_write(session)  # checked and written in one transaction
            have = serving.suggested_by(session, version_id, [row for row, _ in part])
            for (row_id, _), prediction in zip(part, predictions, strict=True):
                if row_id not in have:
                    stored += repo.add_suggestions(session, row_id, version_id, _items(prediction))
        out += [(row_id, p) for (row_id, _), p in zip(part, predictions, strict=True)]
        if on_progress is not None:
            on_progress(len(out), len(pending))
    return stored, out


def queue_order(
    session: Session, project_name: str, notes: Sequence[tuple[int, Document]]
) -> list[tuple[int, Document]]:
    """``notes`` (row id, document) by their rank in the project's queue; unranked last."""
    ranks = {e.document_id: e.rank for e in learning.queue(session, projects.get_project(
        session, project_name))}
    return sorted(notes, key=lambda n: (ranks.get(n[0], len(ranks)), n[0]))


def _items(prediction: DocumentPrediction) -> list[Suggestion]:
    return [*prediction.spans, *prediction.relations]


def unannotated_pool(session: Session, project_name: str) -> list[tuple[int, Document]]:
    """Pool documents that no one has submitted gold for, with their row ids."""
    project = projects.get_project(session, project_name)
    done = {d.id for d in repo.gold_documents(session, project, split=Split.POOL)}
    ids = documents.document_ids(session, project, split=Split.POOL)
    return [
        (ids[doc.id], doc)
        for doc in documents.documents(session, project, split=Split.POOL)
        if doc.id not in done
    ]


def config_with(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with the non-None ``changes`` applied (CLI flags over project settings)."""
    return {**base, **{k: v for k, v in changes.items() if v is not None}}


# --------------------------------------------------------------------------- multi-task

Dataset = tuple[Sequence[Document], LabelSchema]


def train_multitask(
    datasets: Sequence[Dataset],
    config: Mapping[str, Any],
    folder: Path,
    name: str,
    *,
    on_metric: OnMetric | None = None,
) -> tuple[Path, float]:
    """Train one generative adapter on both tasks of every dataset and publish it as
    ``folder/name``: a starting point (``init_adapter``) for new projects.

    Returns:
        The published folder and the training seconds.
    """
    if not any(docs for docs, _ in datasets):
        raise NoteloopError("multi-task training needs at least one annotated document")
    from noteloop.core.model.generative import GenerativeExtractor  # torch only from here

    extractor = GenerativeExtractor(_generative_config(config))
    summary = extractor.train_multitask(datasets, on_metric=on_metric)
    return publish(extractor, folder, name), summary.seconds


def project_datasets(make_session: sessionmaker[Session], names: Sequence[str]) -> list[Dataset]:
    """The pool gold of each project under its own schema (test notes are left out)."""
    out = []
    with make_session() as session:
        for name in names:
            data = training_data(session, name)
            out.append((data.train, data.schema))
    return out


def transfer_factories(
    backend: str, config: Mapping[str, Any], workdir: Path, reuse: Path | None = None
) -> tuple[Callable[[bool], Extractor], Callable[[Sequence[Dataset]], float] | None, bool]:
    """What :func:`noteloop.core.fewshot.transfer_curves` needs for ``backend``: a fresh
    extractor (from the multi-task starting point or not), the multi-task training (None
    for a backend without one), and whether an untrained model can answer (zero-shot).

    ``reuse`` names a starting point already trained on the same sources: it is used as
    it is, and the training seconds it recorded are reported.
    """
    if backend != "generative":
        return (lambda _multitask: make_extractor(backend, config)), None, False
    start = reuse or workdir / "multitask"

    def pretrain(datasets: Sequence[Dataset]) -> float:
        if reuse is not None:
            summary = json.loads((reuse / "noteloop.json").read_text("utf-8")).get("summary")
            return float((summary or {}).get("seconds", 0.0))
        _, seconds = train_multitask(datasets, config, workdir, "multitask")
        return seconds

    def fresh(multitask: bool) -> Extractor:
        extra = {"init_adapter": str(start)} if multitask else {}
        return make_extractor(backend, {**config, **extra})

    return fresh, pretrain, True


# --------------------------------------------------------------------------- app state


@dataclass(frozen=True)
class SuggestionStatus:
    """Whether a project's notes have suggestions, for the annotator's page to say so.

    ``state``: ``"ready"`` (a trained model's suggestions are stored), ``"preparing"`` (a
    training or prediction job is queued or running) or ``"none"`` (no model, none coming).
    """

    state: str
    message: str
    backend: str
    phase: str = ""
    progress: float = 0.0


def suggestion_status(session: Session, project_name: str) -> SuggestionStatus:
    """What the app should tell annotators about the project's suggestions right now."""
    from noteloop.db import jobs

    project = projects.get_project(session, project_name)
    backend = str(project.settings.get("backend", "encoder"))
    active = [j for j in jobs.jobs_of(session, project) if j.status in ("queued", "running")]
    trained = any(v.status == "ready" and v.backend != "import"
                  for v in learning.model_versions(session, project))
    if active:
        job = active[-1]  # the oldest active job is the one the worker runs first
        slow = " (the generative model takes minutes per note batch on a CPU)" if (
            backend == "generative") else ""
        what = "updated" if trained else "prepared"
        return SuggestionStatus("preparing", f"Suggestions are being {what}{slow}.",
                                backend, job.phase, float(job.progress))
    if trained:
        return SuggestionStatus("ready", "Suggestions are ready.", backend)
    return SuggestionStatus(
        "none", "No model yet: suggestions appear after the first training round.", backend
    )
