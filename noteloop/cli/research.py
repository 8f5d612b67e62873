"""Experiments on corpora, without a project: ``simulate``, ``simulate-report``,
``transfer`` and ``multitask``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from noteloop.core.active import DEFAULT_STRATEGY
from noteloop.core.errors import NoteloopError

if TYPE_CHECKING:
    from noteloop.core.fewshot import TransferPoint

from noteloop.cli.common import (
    DbOption,
    RepairOption,
    StrictOption,
    app,
    console,
    csv_ints,
    fail,
    open_sessions,
    print_table,
    progress_bar,
)


def read_corpus(path: Path, fmt: str, *, repair: bool, strict: bool) -> Any:
    """The corpus's documents (:func:`noteloop.core.formats.registry.read_corpus`), with
    every refused file, repair and skipped note printed."""
    from noteloop.core.formats.registry import read_corpus as read_all
    from noteloop.usecases.corpora import reading_lines

    read = read_all(path, fmt, repair=repair, strict=strict)
    for line in reading_lines(path.name, read.refused, read.notes):
        console.print(line, highlight=False, markup=False)
    return read


def _load_corpus(spec: str, *, seed: int = 0, repair: bool, strict: bool) -> Any:
    """:func:`noteloop.usecases.corpora.load_corpus`, with what its reading left out printed."""
    from noteloop.usecases import corpora
    corpus = corpora.load_corpus(spec, seed=seed, repair=repair, strict=strict)
    for line in corpora.reading_lines(corpus.name, corpus.refused, corpus.notes):
        console.print(line, highlight=False, markup=False)
    return corpus


def _read_summary(read: Any) -> dict[str, Any]:
    """What a results JSON records of the corpus's reading; empty when nothing happened."""
    if not read.refused_files and not read.notes:
        return {}
    return {
        "refused_files": read.refused_files,
        "refused": [str(e) for e in read.refused],
        "notes": [str(n) for n in read.notes],
    }


@app.command()
def simulate(
    corpus: Annotated[Path, typer.Argument(help="Annotated corpus: a file or a folder")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="brat, jsonl, pubtator or bioc")],
    out: Annotated[Path, typer.Option(help="Where to write the results JSON")],
    strategy: Annotated[str, typer.Option(help="Active-learning strategy")] = DEFAULT_STRATEGY,
    seed: Annotated[int, typer.Option(help="Seed of the split, the picks and the model")] = 0,
    initial: Annotated[int, typer.Option(help="Documents in round 0")] = 10,
    batch: Annotated[int, typer.Option(help="Documents added per round")] = 10,
    rounds: Annotated[int, typer.Option(help="Rounds, round 0 included")] = 5,
    split_file: Annotated[
        Path | None, typer.Option(help='JSON {"train": [ids], "test": [ids]}')
    ] = None,
    test_fraction: Annotated[float, typer.Option(help="Test share without a split file")] = 0.25,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per round")] = None,
    entity_types: Annotated[
        str | None, typer.Option(help="Comma-separated entity types to keep (default: all)")
    ] = None,
    no_relations: Annotated[bool, typer.Option(help="Leave relations out")] = False,
    backend: Annotated[str, typer.Option(help="Model backend")] = "encoder",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = 1,
    repair: RepairOption = False,
    strict: StrictOption = False,
) -> None:
    """Replay the annotation loop on an annotated corpus: select, train, evaluate, repeat."""
    from noteloop.core import simulate as sim
    from noteloop.core.schema import schema_from_documents
    from noteloop.usecases import modeling

    read = read_corpus(corpus, fmt, repair=repair, strict=strict)
    docs = read.docs
    if not docs:
        raise fail(f"{corpus}: no document could be read")
    train_docs, test_docs = sim.split_documents(
        docs, split_file, test_fraction=test_fraction, seed=seed, absent=read.absent_ids()
    )
    config = modeling.config_with({}, epochs=epochs, threads=threads, seed=seed)
    with progress_bar() as bar:
        task = bar.add_task("simulating", total=rounds)
        result = sim.simulate(
            train_docs,
            test_docs,
            schema_from_documents(docs),
            lambda: modeling.make_extractor(backend, config),
            strategy=strategy,
            seed=seed,
            initial=initial,
            batch=batch,
            rounds=rounds,
            entity_types=entity_types.split(",") if entity_types else None,
            relations=not no_relations,
            corpus=corpus.name,
            backend=backend,
            on_round=lambda point: bar.update(task, advance=1),
        )
    result = dataclasses.replace(result, corpus_read=_read_summary(read))
    out.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    for point in result.to_dict()["points"]:
        console.print(
            f"round {point['round']}: {point['n_docs']} docs, entity strict F1 "
            f"{point['entity']['strict']['f1']:.3f}, lenient "
            f"{point['entity']['lenient']['f1']:.3f}, relation {point['relation']['f1']:.3f}"
        )
    console.print(f"results in {out}")


@app.command("simulate-report")
def simulate_report(
    results: Annotated[list[Path], typer.Argument(help="results JSON files of one corpus")],
    out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("curves.html"),
) -> None:
    """Draw simulated learning curves against notes and against words read: mean and spread
    over seeds, a line per strategy; print the areas under them."""
    from noteloop.core.curves import auc_table, effort_table
    from noteloop.usecases.reports import simulation_report

    try:
        data = [json.loads(path.read_text(encoding="utf-8")) for path in results]
        _, summaries = simulation_report(data, out)
    except (OSError, json.JSONDecodeError, ValueError, NoteloopError) as exc:
        raise fail(str(exc)) from None
    print_table("normalised areas under the curves, mean ± sd over seeds", *auc_table(summaries))
    header, rows = effort_table(summaries)
    if rows:
        title = ("annotator effort on the test notes, keystroke-level model: seconds per note "
                 "to reach the gold with the round's suggestions and from scratch")
        print_table(title, header, rows)
    console.print(f"learning curves of {len(data)} run(s), per note and per word read, in {out}")


@app.command()
def transfer(
    train: Annotated[
        str, typer.Option("--train", help="Source corpora, comma-separated (PATH or NAME=PATH)")
    ],
    target: Annotated[str, typer.Option(help="The held-out corpus (PATH or NAME=PATH)")],
    out: Annotated[Path, typer.Option(help="Where to write the results JSON")],
    shots: Annotated[str, typer.Option(help="Target training documents per point")] = "0,5,10,20",
    backend: Annotated[str, typer.Option(help="generative or encoder")] = "generative",
    seed: Annotated[int, typer.Option(help="Seed of the splits, the shots and the model")] = 0,
    test_docs: Annotated[int, typer.Option(help="Target test documents used (0: all)")] = 0,
    source_docs: Annotated[
        int, typer.Option(help="Training documents per source corpus (0: all)")
    ] = 0,
    max_words: Annotated[
        int, typer.Option(help="Clip every note to about this many words (0: whole notes)")
    ] = 0,
    top_types: Annotated[
        int, typer.Option(help="Keep each corpus's N most frequent entity types (0: all)")
    ] = 0,
    definitions: Annotated[
        Path | None, typer.Option(help='JSON {"Type": "definition"} for types without one')
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: automatic)")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer")] = None,
    no_relations: Annotated[bool, typer.Option(help="Concepts only")] = False,
    base_model: Annotated[
        str | None, typer.Option(help="Local model folder [default: the packaged one]")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = 1,
    keep_multitask: Annotated[
        Path | None, typer.Option(help="Keep the multi-task starting point in this folder")
    ] = None,
    multitask_from: Annotated[
        Path | None,
        typer.Option(help="Reuse a starting point trained on these sources (kept earlier)"),
    ] = None,
    repair: RepairOption = False,
    strict: StrictOption = False,
) -> None:
    """Leave-one-dataset-out: zero- and few-shot F1 on a held-out corpus, with and
    without a multi-task starting point tuned on the other corpora."""
    from noteloop.usecases import corpora, modeling
    from noteloop.usecases.experiments import TransferPlan, transfer_experiment

    config = modeling.config_with(
        {}, epochs=epochs, threads=threads, seed=seed, max_new_tokens=max_new_tokens,
        base_model=base_model, relations=False if no_relations else None,
    )  # fmt: skip
    if backend == "encoder":
        config.pop("max_new_tokens", None)
        config.pop("relations", None)
    plan = TransferPlan(
        csv_ints(shots, "--shots"), backend, seed, test_docs, source_docs, max_words, top_types,
        definitions and corpora.load_definitions(definitions), not no_relations, keep_multitask,
        multitask_from,
    )  # fmt: skip
    loaded = [_load_corpus(spec, seed=seed, repair=repair, strict=strict)
              for spec in [target, *(s for s in train.split(",") if s.strip())]]  # fmt: skip
    read = {c.name: c.read_summary() for c in loaded if c.read_summary()}
    result = transfer_experiment(
        loaded[0], loaded[1:], plan, config, lambda p: console.print(_transfer_line(p))
    )
    data = result.to_dict() | ({"corpus_read": read} if read else {})
    out.write_text(json.dumps(data, indent=1), encoding="utf-8")
    console.print(f"results in {out}")


def _transfer_line(p: TransferPoint) -> str:
    given = p.relation_gold_entities
    return (
        f"{p.start} {p.shots} shots: entity strict F1 {p.entity_strict.f1:.3f}, "
        f"lenient {p.entity_lenient.f1:.3f}, relation {p.relation.f1:.3f}"
        + ("" if given is None else f" ({given.f1:.3f} on gold entities)")
        + f" ({p.train_seconds:.0f} s training, {p.predict_seconds:.0f} s predicting)"
    )


@app.command()
def multitask(
    out: Annotated[Path, typer.Option(help="Folder to publish the starting point in")],
    project: Annotated[
        list[str] | None, typer.Option("--project", "-p", help="Project(s) whose pool gold to use")
    ] = None,
    corpus: Annotated[
        list[str] | None, typer.Option(help="Annotated corpus (PATH or NAME=PATH), repeatable")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch")] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Local model folder [default: the packaged one]")
    ] = None,
    repair: RepairOption = False,
    strict: StrictOption = False,
    db: DbOption = None,
) -> None:
    """Train one generative adapter on both tasks of several projects and corpora: a
    starting point for new projects (`noteloop project backend NAME generative --init-adapter`)."""
    from noteloop.usecases import modeling
    datasets = modeling.project_datasets(open_sessions(db), project) if project else []
    for spec in corpus or []:
        loaded = _load_corpus(spec, repair=repair, strict=strict)
        datasets.append((list(loaded.train), loaded.schema))
    config = modeling.config_with({}, epochs=epochs, threads=threads, base_model=base_model)
    path, seconds = modeling.train_multitask(datasets, config, out.parent, out.name)
    console.print(f"multi-task starting point in {path} ({seconds:.0f} s of training)")
