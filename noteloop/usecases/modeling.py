"""Train, evaluate and predict for a project: the one glue between ``db`` and ``core.model``.

The CLI calls these functions directly and the worker calls them inside its jobs, so a
model trained either way is published the same way: written to a temporary folder of
its own (named after the worker, job and attempt), renamed into place, and only then
registered as a ready model version, its files stored in the database in the same
transaction. A crash at any point leaves either no version or a complete one, never half
of one. Any host loads a version from the database into its own models folder
(:func:`version_folder`), so workers on several hosts share every published model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from noteloop.core import job_progress
from noteloop.core.active import note_confidence
from noteloop.core.errors import NoteloopError
from noteloop.core.metrics import Evaluation, evaluate, unrepresentable
from noteloop.core.model.base import (
    ChecksInt8,
    DocumentPrediction,
    Extractor,
    OnMetric,
    ShouldStop,
    TrainingCancelled,
    TrainSummary,
)
from noteloop.core.model.config import EncoderConfig
from noteloop.core.schema import Document, LabelSchema, Relation, Span, Split, Suggestion
from noteloop.core.serving_rule import Scores, decide
from noteloop.db import (
    convert,
    documents,
    gold,
    learning,
    limits,
    model_versions,
    models,
    projects,
    serving,
    suggestions,
)
from noteloop.db.engine import begin_write
from noteloop.db.models import ModelVersion

log = logging.getLogger(__name__)

OnPhase = Callable[[str, float], None]  # (phase, its place on the job's bar: job_progress)


@dataclass(frozen=True)
class Backend:
    """How to build a fresh extractor from a config dict, and load a saved one."""

    create: Callable[[Mapping[str, Any]], Extractor]
    # load(path, **overrides): overrides replace config fields that do not change the
    # weights' meaning (``device``, ``threads``).
    load: Callable[..., Extractor]
    # Whether ``train(start=...)`` can continue from a saved model of this backend: the
    # worker then hands it the serving version's folder (fetched to this host if need be).
    continues: bool = False
    # The default of the config's ``restarts`` where the backend retrains a collapsed run
    # itself (0: it never does); the job's retry budget caps what a config asks.
    restarts: int = 0


def _encoder_create(config: Mapping[str, Any]) -> Extractor:
    # Imported here: torch loads only in processes that train or predict.
    from noteloop.core.model.encoder import EncoderExtractor

    return EncoderExtractor(EncoderConfig.from_dict(dict(config)))


def _encoder_load(path: Path, **overrides: Any) -> Extractor:
    from noteloop.core.model.encoder import EncoderExtractor

    return EncoderExtractor.load(path, **overrides)


def _generative_config(config: Mapping[str, Any]) -> Any:
    from noteloop.core.model.config import GenerativeConfig

    # NOTELOOP_CACHE names where the packaged model's float copy is kept; read here, the
    # one place the CLI, the worker and the experiments all build the backend through.
    data = {"cache_dir": os.environ.get("NOTELOOP_CACHE", ""), **config}
    return GenerativeConfig.from_dict(data)


def _generative_create(config: Mapping[str, Any]) -> Extractor:
    from noteloop.core.model.generative import GenerativeExtractor

    return GenerativeExtractor(_generative_config(config))


def _generative_load(path: Path, **overrides: Any) -> Extractor:
    from noteloop.core.model.generative import GenerativeExtractor

    return GenerativeExtractor.load(path, **overrides)


BACKENDS: dict[str, Backend] = {
    "encoder": Backend(
        _encoder_create, _encoder_load, continues=True, restarts=EncoderConfig.restarts
    ),
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


def load_extractor(path: Path, **overrides: Any) -> Extractor:
    """The extractor saved in ``path``, whatever its backend (read from its metadata);
    ``overrides`` replace config fields that do not change the weights (``device``)."""
    meta = path / "noteloop.json"
    if not meta.is_file():
        raise NoteloopError(f"{path} holds no saved model (no noteloop.json)")
    backend = json.loads(meta.read_text(encoding="utf-8")).get("backend", "encoder")
    return _backend(backend).load(path, **overrides)


def this_process() -> str:
    """The id of this process among the workers: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Publisher:
    """Who publishes a round. Its temporary folder carries the worker id, job and attempt,
    so that a starting worker removes only folders no live worker writes
    (:func:`temp_owner`); ``check`` runs inside the transaction that registers the version
    and raises when the job is no longer this worker's (a reclaimed job registers nothing).
    """

    worker_id: str = field(default_factory=this_process)
    job_id: int | None = None
    attempt: int | None = None
    check: Callable[[Session], object] | None = None

    def temp_name(self, name: str) -> str:
        return temp_name(self.worker_id, name, self.job_id, self.attempt)


TEMP_PREFIX = ".tmp-"


def temp_name(
    worker_id: str, name: str, job_id: int | None = None, attempt: int | None = None
) -> str:
    """``.tmp-<worker>.<job>.<attempt>.<name>``, '-' where there is no job: the worker
    id loses every character but letters, digits, '-' and '_', so the dots only separate."""
    worker = "".join(c if c.isalnum() or c in "-_" else "_" for c in worker_id)
    job = "-" if job_id is None else str(job_id)
    tried = "-" if attempt is None else str(attempt)
    return f"{TEMP_PREFIX}{worker}.{job}.{tried}.{name}"


@dataclass(frozen=True)
class TempOwner:
    worker: str
    job_id: int | None
    attempt: int | None


def temp_owner(folder_name: str) -> TempOwner | None:
    """Who writes a temporary folder (:func:`temp_name`); None for a name of another form."""
    if not folder_name.startswith(TEMP_PREFIX):
        return None
    parts = folder_name[len(TEMP_PREFIX) :].split(".", 3)
    if len(parts) != 4:
        return None
    worker, job, attempt, _ = parts
    if not (job.isdigit() or job == "-") or not (attempt.isdigit() or attempt == "-"):
        return None
    return TempOwner(
        worker, None if job == "-" else int(job), None if attempt == "-" else int(attempt)
    )


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
    train = gold.gold_documents(session, project, split=Split.POOL)
    test = gold.gold_documents(session, project, split=Split.TEST)
    hours = float(projects.project_stats(session, project)["hours"])
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
    publisher: Publisher | None = None,
) -> TrainedVersion:
    """Train on the pool's gold, evaluate on the test gold, publish and register a version.

    The round continues from the serving version where the backend can (the encoder's
    ``warm_epochs``): rounds that follow each other as the gold grows cost a few epochs,
    not a whole schedule from the base model.

    The version is always registered, ready; it serves when the project's ``model_rule``
    says so (:func:`noteloop.core.serving_rule.decide`), else it waits as a candidate.

    Raises:
        NoteloopError: no gold to train on; TrainingCancelled when ``should_stop`` says so;
            JobLostError when ``publisher.check`` finds the job taken over.
    """
    publisher = publisher or Publisher()
    phase = on_phase or (lambda _p, _f: None)
    with make_session() as session:
        data = training_data(session, project_name)
    if not data.train:
        raise NoteloopError(
            f"project {project_name} has no submitted gold notes in the pool to train on"
        )
    start = _warm_start(make_session, project_name, backend, models_dir, publisher.worker_id)
    extractor, summary, evaluation, retries = _train_unless_regressed(
        make_session, project_name, data, config, backend, on_metric, should_stop, phase, start
    )
    int8 = _check_int8(extractor, data.test, evaluation)
    phase("publishing", job_progress.PUBLISHING)
    name = datetime.now(UTC).strftime("v%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    path = publish(extractor, models_dir / _safe(project_name), name, publisher.temp_name(name))
    try:
        version_id, serves, verdict = _register(
            make_session,
            Publication(project_name, name, path, backend, publisher),
            extractor,
            data,
            evaluation,
            {**summary.to_dict(), "regression_retries": retries, "int8_check": int8},
        )
    except Exception:
        # Registered nothing (a lost job, a refused write): the folder would be an orphan.
        shutil.rmtree(path, ignore_errors=True)
        raise
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
    start: Path | None = None,
) -> tuple[Extractor, TrainSummary, Evaluation | None, int]:
    """Train (continuing from ``start`` where the backend can) and evaluate; on a
    regression, train again from the base model with the next seed. Every run after the
    first, whether the backend restarted a collapsed run itself or a regression called for
    it, spends one of the job's ``RETRY_BUDGET``. Returns the extractor, its summary, its
    evaluation and the number of retrains after a regression.

    Raises:
        RegressionError: every run fell far below the serving version.
    """
    first_seed: int | None = None
    seed: int | None = None
    left, retrains = RETRY_BUDGET, 0
    while True:
        phase("training", job_progress.TRAIN_STEPS[0])
        run_config = config if seed is None else {**config, "seed": seed}
        extractor = make_extractor(backend, _within_budget(backend, run_config, left))
        summary = extractor.train(data.train, data.schema, on_metric=on_metric,
                                  should_stop=should_stop, start=start if seed is None else None)
        left -= summary.restarts
        first_seed = _used_seed(extractor) if first_seed is None else first_seed
        phase("evaluating", job_progress.EVALUATING)
        evaluation = evaluate_extractor(extractor, data.test) if data.test else None
        if evaluation is None:
            return extractor, summary, None, retrains
        try:
            with make_session() as session:
                refuse_regression(session, project_name, evaluation, tested_on(data))
            return extractor, summary, evaluation, retrains
        except RegressionError as err:
            last_seed = _used_seed(extractor) + summary.restarts
            if left <= 0:
                raise RegressionError(
                    f"{err}. Trained with seeds {first_seed}-{last_seed}: each fell short."
                    if last_seed > first_seed else f"{err}."
                ) from None
            seed, left, retrains = last_seed + 1, left - 1, retrains + 1
            log.warning("%s; retraining with seed %d", err, seed)


def _within_budget(backend: str, config: Mapping[str, Any], left: int) -> Mapping[str, Any]:
    """``config`` with the backend's own restarts capped at what the job has left of its
    retry budget (a backend that never restarts is given the config as it is)."""
    default = _backend(backend).restarts
    if not default:
        return config
    return {**config, "restarts": min(int(config.get("restarts", default)), left)}


def _check_int8(
    extractor: Extractor, gold: Sequence[Document], evaluation: Evaluation | None
) -> dict[str, Any] | None:
    """Where the backend can predict with int8 weights, its strict F1 that way on the test
    notes beside the float evaluation's. The extractor keeps the check, so the published
    folder carries it and 'auto' inference uses int8 only where it passed; the version's
    metrics record it for the lead."""
    if evaluation is None or not isinstance(extractor, ChecksInt8):
        return None
    check = extractor.check_int8(gold, evaluation.entity_strict.f1)
    return None if check is None else check.to_dict()


def _warm_start(
    make_session: sessionmaker[Session], project_name: str, backend: str, models_dir: Path,
    worker_id: str,
) -> Path | None:
    """The serving version's folder, for the round to continue from; None when the backend
    cannot continue, nothing of it serves, or its files cannot be had (the round then
    starts from the base model, as it always could)."""
    if not _backend(backend).continues:
        return None
    with make_session() as session:
        version = serving_version(session, project_name)
        if version is None or version.backend != backend:
            return None
        version_id = version.id
    try:
        return version_folder(make_session, version_id, models_dir, worker_id)
    except NoteloopError as err:
        log.warning("the round starts from the base model: %s", err)
        return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def publish(extractor: Extractor, folder: Path, name: str, temp: str = "") -> Path:
    """Save into a hidden temporary folder (``temp``, by default one of this process), then
    rename: the final path is complete or absent."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (temp or temp_name(this_process(), name))
    final = folder / name
    try:
        extractor.save(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclass(frozen=True)
class Publication:
    """A published folder on its way to becoming a registered version."""

    project_name: str
    name: str
    path: Path
    backend: str
    publisher: Publisher


def folder_files(folder: Path) -> list[tuple[str, bytes]]:
    """Every file under ``folder`` as (relative '/'-separated path, content)."""
    return [
        (f.relative_to(folder).as_posix(), f.read_bytes())
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    ]


def _register(
    make_session: sessionmaker[Session],
    publication: Publication,
    extractor: Extractor,
    data: TrainingData,
    evaluation: Evaluation | None,
    summary: dict[str, Any],
) -> tuple[int, bool, str]:
    """Register the version with its files and apply the project's rule; returns (id,
    serves, verdict)."""
    config = extractor.config.to_dict()
    metrics = {
        "train": summary,
        "evaluation": evaluation.to_dict() if evaluation else None,
        "unrepresentable": unrepresentable(data.train).to_dict(),
        "tested_on": tested_on(data),
    }
    files = folder_files(publication.path)  # read before the write lock is taken
    project_name, name = publication.project_name, publication.name
    with make_session.begin() as session:
        # The write lock before the first read: the serving version compared with must
        # still be the serving one when the decision is written.
        begin_write(session)
        if publication.publisher.check is not None:
            publication.publisher.check(session)  # the job is still ours, and stays so
        project = projects.get_project(session, project_name)
        serving.lock(session, project)
        current = serving.serving_version(session, project)
        rule = str(project.settings.get("model_rule", "ci"))
        decision = decide(
            rule,
            Scores.from_metrics(name, metrics),
            None if current is None else Scores.from_metrics(current.name, current.metrics),
        )
        version = model_versions.register_model_version(
            session,
            project,
            name=name,
            backend=publication.backend,
            path=str(publication.path),
            config=config,
            metrics=metrics,
            n_train_docs=len(data.train),
        )
        model_versions.add_files(session, version.id, files)
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
# with another seed train normally. Retraining inside the same job keeps the annotators'
# round instead of making them wait for more gold. One budget per job covers those
# retrains and the backend's own restarts of a collapsed run, so a job trains at most
# RETRY_BUDGET + 1 times (the two used to stack: up to six runs for the encoder).
RETRY_BUDGET = 2


class RegressionError(NoteloopError):
    """A newly trained model scored far below the serving one on the same test notes."""


def _used_seed(extractor: Extractor) -> int:
    """The seed a round trained with, from the extractor's own config (which holds the
    backend's default when the project's config names none)."""
    return int(extractor.config.seed)


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


def version_folder(
    make_session: sessionmaker[Session],
    version_id: int,
    models_dir: Path | None = None,
    worker_id: str = "",
) -> Path:
    """A local folder that holds the version: ``models_dir/<project>/<name>``, written
    from the database's copy of its files when this host lacks it.

    ``models_dir`` None: the models folder the version was published to (this host's,
    when it trained it). A version published before its files were kept in the database
    loads from its own ``path`` only.

    Raises:
        NoteloopError: the version is neither here nor in the database.
    """
    with make_session() as session:
        version = session.get(ModelVersion, version_id)
        if version is None:
            raise NoteloopError(f"no model version with id {version_id}")
        project = session.get(models.Project, version.project_id)
        assert project is not None  # versions cascade-delete with their project
        published = Path(version.path)
        base = models_dir if models_dir is not None else published.parent.parent
        local = base / _safe(project.name) / version.name
        if (local / "noteloop.json").is_file():
            return local  # published here, or fetched before: folders appear complete
        if not model_versions.has_files(session, version_id):
            if (published / "noteloop.json").is_file():
                return published
            raise NoteloopError(
                f"model version {version.name} is not on this host ({published}) and the "
                "database holds none of its files: it was published before models were "
                "kept in the database; copy its folder here, or train a new version"
            )
        files = model_versions.files_of(session, version_id)
    return _write_folder(local, files, temp_name(worker_id or this_process(), version.name))


def _write_folder(final: Path, files: list[tuple[str, bytes]], temp: str) -> Path:
    """Write ``files`` into ``final`` as :func:`publish` does: a temporary folder renamed."""
    tmp = final.parent / temp
    try:
        for relative, data in files:
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "noteloop.json").is_file():  # not another process's copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_version(
    make_session: sessionmaker[Session],
    version_id: int,
    models_dir: Path | None = None,
    *,
    worker_id: str = "",
    overrides: Mapping[str, Any] | None = None,
) -> Extractor:
    """The version's extractor, loaded on this host (:func:`version_folder`)."""
    folder = version_folder(make_session, version_id, models_dir, worker_id)
    return load_extractor(folder, **dict(overrides or {}))


def evaluate_project(
    make_session: sessionmaker[Session], project_name: str, models_dir: Path | None = None
) -> Evaluation:
    """The serving model's scores on the project's test documents."""
    with make_session() as session:
        version_id, _ = latest_version(session, project_name)
        data = training_data(session, project_name)
    if not data.test:
        raise NoteloopError(
            f"project {project_name} has no annotated test documents: import some with "
            "--split test or --split-file"
        )
    extractor = load_version(make_session, version_id, models_dir)
    return evaluate_extractor(extractor, data.test)


# Notes per suggestion transaction. On SQLite every annotator's save waits for the write
# lock these commits hold: 32 notes per commit (validated inside) held it long enough to
# push the submit p95 of 8 annotators to 4.2 s. A few notes, checked before the
# transaction and written with one executemany, hold it for milliseconds.
NOTES_PER_COMMIT = 4
# Notes per call to the backend: batching is what makes a GPU (and the CPU) fast.
NOTES_PER_PREDICT = 32


def predict_project(
    make_session: sessionmaker[Session],
    project_name: str,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    notes_per_commit: int = NOTES_PER_COMMIT,
    version_id: int | None = None,
    models_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[int, list[tuple[int, DocumentPrediction]]]:
    """Suggest with the serving version for every pool note without submitted gold; store
    the suggestions of the notes that have none from that version yet.

    Notes without its suggestions are predicted first, in the order of the current
    queue, and committed ``notes_per_commit`` notes at a time: the notes annotators open
    next get the model's suggestions first, minutes before the end of the pool with a
    slow backend, instead of all at once at the end. The notes it suggested for already
    (a version served again after a rollback) are predicted too, last, without storing
    anything: ranking the queue needs every note's prediction from the same model.

    ``version_id`` names the serving version as the caller read it already.

    Returns the number of suggestions stored and (document row id, prediction) pairs,
    which the worker ranks for the queue.
    """
    with make_session() as session:
        if version_id is None:
            version_id, _ = latest_version(session, project_name)
        pending = pool_to_predict(session, project_name, version_id)
    extractor = load_version(make_session, version_id, models_dir, overrides=overrides)
    return predict_notes(
        make_session,
        extractor,
        version_id,
        pending,
        notes_per_commit=notes_per_commit,
        on_progress=on_progress,
    )


def pool_to_predict(
    session: Session, project_name: str, version_id: int
) -> list[tuple[int, Document]]:
    """The unannotated pool in the order to predict it: the notes without the version's
    suggestions first, by their place in the queue, then the ones that have them."""
    pending = queue_order(session, project_name, unannotated_pool(session, project_name))
    done = suggestions.suggested_by(session, version_id, [row for row, _ in pending])
    return [n for n in pending if n[0] not in done] + [n for n in pending if n[0] in done]


def predict_notes(
    make_session: sessionmaker[Session],
    extractor: Extractor,
    version_id: int,
    notes: Sequence[tuple[int, Document]],
    *,
    notes_per_commit: int = NOTES_PER_COMMIT,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: ShouldStop | None = None,
) -> tuple[int, list[tuple[int, DocumentPrediction]]]:
    """Predict ``notes`` (row id, document) and store the suggestions of those that have
    none from ``version_id`` yet, a few notes per short transaction.

    Raises:
        TrainingCancelled: ``should_stop`` said so between two batches.
    """
    stored, out = 0, []
    for start in range(0, len(notes), NOTES_PER_PREDICT):
        if should_stop is not None and should_stop():
            raise TrainingCancelled("stopped while predicting")
        batch = notes[start : start + NOTES_PER_PREDICT]
        predictions = extractor.predict([doc for _, doc in batch])
        pairs = [(row, p) for (row, _), p in zip(batch, predictions, strict=True)]
        for first in range(0, len(pairs), notes_per_commit):
            part = pairs[first : first + notes_per_commit]
            stored += _store(make_session, version_id, part, dict(batch))
            out += part
            if on_progress is not None:
                on_progress(len(out), len(notes))
    return stored, out


def _store(
    make_session: sessionmaker[Session],
    version_id: int,
    part: Sequence[tuple[int, DocumentPrediction]],
    docs: Mapping[int, Document],
) -> int:
    """One short transaction: the suggestions were built and checked before it began."""
    batches = []
    for row, prediction in part:
        items = _items(prediction)
        # Checks offsets against the text and relation ends, outside the write lock.
        docs[row].with_annotations(
            [s.item for s in prediction.spans if isinstance(s.item, Span)],
            [r.item for r in prediction.relations if isinstance(r.item, Relation)],
        )
        batches.append((row, items))
    started = time.perf_counter()
    with make_session.begin() as session:
        stored = suggestions.add_checked_suggestions(session, version_id, batches)
    log.debug("stored %d suggestions in %.1f ms", stored, 1000 * (time.perf_counter() - started))
    return stored


def ranking_summary(
    predictions: Sequence[tuple[int, DocumentPrediction]],
) -> dict[str, Any]:
    """What ranking the queue needs of each prediction (its row id, note confidence and
    embedding), small enough to pass between workers through the database."""
    return {
        "rows": [row for row, _ in predictions],
        "confidence": [note_confidence(p) for _, p in predictions],
        "embedding": [list(p.embedding) for _, p in predictions],
    }


def from_ranking_summary(summary: Mapping[str, Any]) -> list[tuple[int, DocumentPrediction]]:
    """Predictions that rank exactly as the summarised ones: no suggestions, and the
    note's confidence as its token confidence (which :func:`note_confidence` returns for a
    note without suggestions)."""
    return [
        (row, DocumentPrediction(str(row), (), (), 1.0 - confidence, tuple(embedding)))
        for row, confidence, embedding in zip(
            summary["rows"], summary["confidence"], summary["embedding"], strict=True
        )
    ]


def documents_by_row(session: Session, rows: Sequence[int]) -> list[tuple[int, Document]]:
    """The documents of ``rows`` (without annotations), in that order."""
    found = {}
    for part in limits.chunks(list(rows)):
        query = select(models.Document).where(models.Document.id.in_(part))
        found.update({r.id: convert.document_from_row(r) for r in session.scalars(query)})
    return [(row, found[row]) for row in rows if row in found]


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
    done = {d.id for d in gold.gold_documents(session, project, split=Split.POOL)}
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
    out: list[Dataset] = []
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
