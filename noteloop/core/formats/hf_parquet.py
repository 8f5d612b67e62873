"""Hugging Face datasets in Parquet: noteloop gold as a dataset repository for the Hub.

**Schema: BigBio's ``kb``, plus noteloop's extras.** A researcher who takes a biomedical
NER/RE dataset from the Hub expects the ``kb`` schema of BigBio (the schema of its hundred
or so biomedical corpora), so the first seven columns are exactly ``kb``'s features and a
BigBio loader, evaluation script or ``concatenate_datasets`` with a BigBio corpus works on
them once the extra columns are removed:

- ``id``, ``document_id``: the document id (both, as BigBio allows when a corpus has one);
- ``passages``: one passage of type ``text`` holding the whole note, offsets ``[[0, n]]``;
- ``entities``: one per span: ``id``, ``type`` (the label), ``text`` and ``offsets`` (one
  entry per fragment, so a discontinuous span is one entity), ``normalized`` (the concept:
  ``"MeSH:D001241"`` is ``{db_name: "MeSH", db_id: "D001241"}``; a concept without a
  ``db:`` prefix has an empty ``db_name``; ``|`` separates several);
- ``events``: always empty (noteloop has none);
- ``coreferences``: one per equivalence group (its members in ``entity_ids``);
- ``relations``: ``id``, ``type``, ``arg1_id`` (head), ``arg2_id`` (tail), ``normalized``
  (empty).

Item ids are prefixed with ``<document id>_`` (``15939911_T1``), as BigBio's BRAT
conversion does, because BigBio asks every id to be unique across the dataset; reading
strips the prefix again. What ``kb`` has no place for follows, so the export is lossless:

- ``text``: the exact note (every ``\\r`` kept; offsets count its characters);
- ``metadata``: ``[{key, value}]``;
- ``attributes``: ``[{ref_id, type, value}]`` (as in BigBio's BRAT schema), per entity;
- ``notes``: ``[{ref_id, text}]``, of entities and relations;
- ``coreference_types``: ``[{ref_id, type}]``, the label of each equivalence group.

Every column is typed by an explicit Arrow schema, so an empty list still has its type.

**Files**: ``data/<split>-00000-of-00001.parquet`` per split (documents without a split go
to ``train``), written a row group of ``rows_per_group`` documents at a time from any
iterable, and ``README.md``, the dataset card: its YAML ``configs`` names each split's file
and ``dataset_info`` the features and row counts, so ``datasets.load_dataset(folder)`` (or
``load_dataset("parquet", data_dir=folder)``) gives a ``DatasetDict`` of the splits; its
text lists the entity and relation types.

**Import** reads one ``.parquet`` file: noteloop's export comes back exactly. A ``kb``
file from elsewhere also reads: the note is ``text`` when present, else its passages put
at their offsets (or joined by spaces when they have none); the extra columns are
optional; a coreference without a type is labelled ``Coreference``. A row is refused
(with the file and the row) when its offsets fall outside the note, an entity's text
disagrees with its offsets, a relation or an extra names an unknown entity, or it holds
events; a file is refused when it is not Parquet, lacks ``id``/``document_id`` or
``text``/``passages``, or has a column neither ``kb`` nor noteloop knows (a misnamed
column would otherwise drop annotations unseen). :func:`splits_of` gives the split of each
document of a dataset folder, from its files' names; :func:`noteloop_split` maps a Hub split
to noteloop's (``test`` to test, every other to pool).

An export with no documents writes an empty, typed ``train`` file: pyarrow, pandas and this
reader take it, ``datasets`` itself refuses to load a split without rows.

pyarrow is imported only when this format is used (it comes with ``datasets``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, Parsed, check_file, raise_if_errors
from noteloop.core.formats.jsonl import read_document_json
from noteloop.core.formats.peer_json import Bad, attempt, kind
from noteloop.core.schema import Document, LabelSchema, Relation, Span, Split

__all__ = [
    "ParquetReport",
    "arrow_schema",
    "concept_links",
    "concept_of",
    "data_file",
    "dataset_card",
    "document_row",
    "hub_split",
    "noteloop_split",
    "read_parquet",
    "splits_of",
    "units",
    "write_parquet",
    "yaml_features",
]

DEFAULT_SPLIT = "train"
ROWS_PER_GROUP = 1_000
COREFERENCE_TYPE = "Coreference"  # the label of a coreference that comes without one
KB_COLUMNS = ("id", "document_id", "passages", "entities", "events", "coreferences", "relations")
EXTRA_COLUMNS = ("text", "metadata", "attributes", "notes", "coreference_types")
# datasets accepts these split names (its own check); anything else fails at load time.
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
# datasets' own file naming, ``<split>-00000-of-00001``, which its loader reads splits from.
_SHARD = re.compile(r"^(?P<split>\w+(?:\.\w+)*)-\d{5}-of-\d{5}$")
# The names datasets itself gives a split when a file or folder is called that way.
_SPLIT_WORDS = {
    "train": "train", "training": "train", "test": "test", "testing": "test",
    "eval": "test", "evaluation": "test", "validation": "validation", "valid": "validation",
    "val": "validation", "dev": "validation",
}
# Card and report list splits in the order a reader expects them.
_SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportFileError.single(
            "pyarrow", 0, "the hf-parquet format needs pyarrow: pip install pyarrow"
        ) from None
    return pyarrow, pyarrow.parquet


def arrow_schema() -> Any:
    """The Arrow schema of every file: BigBio ``kb``'s columns, then noteloop's extras."""
    pa, _ = _pyarrow()
    s, offsets = pa.string(), pa.list_(pa.list_(pa.int32()))

    def rows(**fields: Any) -> Any:
        return pa.list_(pa.struct(list(fields.items())))

    links = rows(db_name=s, db_id=s)
    return pa.schema([
        ("id", s),
        ("document_id", s),
        ("passages", rows(id=s, type=s, text=pa.list_(s), offsets=offsets)),
        ("entities", rows(id=s, type=s, text=pa.list_(s), offsets=offsets, normalized=links)),
        ("events", rows(id=s, type=s, trigger=pa.struct([("text", pa.list_(s)),
                                                          ("offsets", offsets)]),
                        arguments=rows(role=s, ref_id=s))),
        ("coreferences", rows(id=s, entity_ids=pa.list_(s))),
        ("relations", rows(id=s, type=s, arg1_id=s, arg2_id=s, normalized=links)),
        ("text", s),
        ("metadata", rows(key=s, value=s)),
        ("attributes", rows(ref_id=s, type=s, value=s)),
        ("notes", rows(ref_id=s, text=s)),
        ("coreference_types", rows(ref_id=s, type=s)),
    ])


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ParquetReport:
    """What an export wrote: ``splits`` holds (split, documents) in card order."""

    out_dir: Path
    documents: int = 0
    spans: int = 0
    relations: int = 0
    splits: tuple[tuple[str, int], ...] = ()
    files: tuple[Path, ...] = ()

    def split_counts(self) -> str:
        """``"150 train, 50 test"``: the splits for a one-line summary."""
        return ", ".join(f"{n} {split}" for split, n in self.splits)

    def summary(self) -> str:
        """One line on what was written, for the CLI and the Data page."""
        return (
            f"{self.documents} documents to {self.out_dir} as a Hugging Face dataset "
            f"(Parquet, BigBio kb schema; {self.split_counts()}): {self.spans} spans, "
            f"{self.relations} relations; load with datasets.load_dataset(folder)"
        )


def write_parquet(
    docs: Iterable[Document],
    out_dir: Path,
    split_of: Mapping[str, str] | None = None,
    *,
    schema: LabelSchema | None = None,
    rows_per_group: int = ROWS_PER_GROUP,
) -> ParquetReport:
    """Write ``docs`` under ``out_dir`` as a Hugging Face dataset repository.

    Args:
        split_of: document id -> split name (``train``, ``test``, ``validation``...);
            documents it does not name go to ``train``.
        schema: its entity and relation types are listed in the card even when unused.
        rows_per_group: documents held in memory and written as one Parquet row group.

    Raises:
        ValueError: a split name that ``datasets`` would refuse, or ``rows_per_group < 1``.
    """
    if rows_per_group < 1:
        raise ValueError(f"rows_per_group must be >= 1, got {rows_per_group}")
    split_of = split_of or {}
    labels = _Labels.of(schema)
    with _SplitFiles(out_dir, rows_per_group) as files:
        for doc in docs:
            files.add(split_of.get(doc.id, DEFAULT_SPLIT), document_row(doc))
            labels.count(doc)
        if not files.counts:  # still a dataset folder, with an empty typed train file
            files.open(DEFAULT_SPLIT)
    splits = tuple(sorted(files.counts.items(), key=lambda kv: _split_key(kv[0])))
    sizes = [(s, n, files.nbytes[s]) for s, n in splits]
    card = dataset_card(sizes, labels.entities, labels.relations)
    (out_dir / "README.md").write_text(card, encoding="utf-8", newline="\n")
    return ParquetReport(
        out_dir, sum(files.counts.values()), sum(labels.entities.values()),
        sum(labels.relations.values()), splits, tuple(files.paths[s] for s, _ in splits),
    )


def _split_key(split: str) -> tuple[int, str]:
    return _SPLIT_ORDER.get(split, len(_SPLIT_ORDER)), split


def data_file(split: str) -> str:
    """The path of a split's file inside the dataset folder."""
    return f"data/{split}-00000-of-00001.parquet"


@dataclass
class _Labels:
    """How often each entity and relation type occurs (a schema's unused types at 0)."""

    entities: Counter[str] = field(default_factory=Counter)
    relations: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, schema: LabelSchema | None) -> _Labels:
        labels = cls()
        if schema is not None:
            labels.entities.update(dict.fromkeys(schema.entity_names, 0))
            labels.relations.update(dict.fromkeys(schema.relation_names, 0))
        return labels

    def count(self, doc: Document) -> None:
        self.entities.update(s.label for s in doc.spans)
        self.relations.update(r.label for r in doc.relations)


class _SplitFiles:
    """One Parquet writer per split, opened when its first document comes, each fed a
    row group at a time so a large export never sits in memory whole. Leaving on an
    error removes what was written: no half a dataset stays behind."""

    def __init__(self, out_dir: Path, rows_per_group: int) -> None:
        self.out_dir = out_dir
        self.rows_per_group = rows_per_group
        self.schema = arrow_schema()
        self.writers: dict[str, Any] = {}
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.paths: dict[str, Path] = {}
        self.counts: dict[str, int] = {}
        self.nbytes: dict[str, int] = {}  # Arrow bytes, what datasets calls num_bytes

    def __enter__(self) -> _SplitFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                for split in self.buffers:
                    self._flush(split)
        finally:
            for writer in self.writers.values():
                writer.close()
            if kind is not None:
                for path in self.paths.values():
                    path.unlink(missing_ok=True)

    def open(self, split: str) -> None:
        if not _SPLIT_NAME.match(split):
            raise ValueError(
                f"split name {split!r} is not valid: use letters, digits and _ "
                "(datasets refuses other names)"
            )
        _, pq = _pyarrow()
        path = self.out_dir / data_file(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.paths[split] = path
        self.writers[split] = pq.ParquetWriter(path, self.schema)
        self.buffers[split] = []
        self.counts[split] = 0
        self.nbytes[split] = 0

    def add(self, split: str, row: dict[str, Any]) -> None:
        if split not in self.writers:
            self.open(split)
        self.buffers[split].append(row)
        self.counts[split] += 1
        if len(self.buffers[split]) >= self.rows_per_group:
            self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self.buffers[split]
        if rows:
            pa, _ = _pyarrow()
            table = pa.Table.from_pylist(rows, schema=self.schema)
            self.writers[split].write_table(table)
            self.nbytes[split] += table.nbytes
            self.buffers[split] = []


def document_row(doc: Document) -> dict[str, Any]:
    """One document as a row of :func:`arrow_schema` (plain Python values)."""
    prefix = f"{doc.id}_"
    corefs = [(f"{prefix}*{i}", eq) for i, eq in enumerate(doc.equivalences, start=1)]
    return {
        "id": doc.id,
        "document_id": doc.id,
        "passages": [{"id": f"{prefix}_text", "type": "text", "text": [doc.text],
                      "offsets": [[0, len(doc.text)]]}],
        "entities": [_entity(span, doc.text, prefix) for span in doc.spans],
        "events": [],
        "coreferences": [
            {"id": ident, "entity_ids": [prefix + m for m in eq.members]} for ident, eq in corefs
        ],
        "relations": [
            {"id": prefix + r.id, "type": r.label, "arg1_id": prefix + r.head,
             "arg2_id": prefix + r.tail, "normalized": []}
            for r in doc.relations
        ],
        "text": doc.text,
        "metadata": [{"key": k, "value": v} for k, v in doc.metadata.items()],
        "attributes": [
            {"ref_id": prefix + s.id, "type": name, "value": value}
            for s in doc.spans for name, value in s.attributes
        ],
        "notes": [
            {"ref_id": prefix + ident, "text": note}
            for ident, notes in _notes(doc) for note in notes
        ],
        "coreference_types": [{"ref_id": ident, "type": eq.label} for ident, eq in corefs],
    }


def _notes(doc: Document) -> list[tuple[str, tuple[str, ...]]]:
    """The notes of every span, then of every relation, by their id."""
    items: list[Span | Relation] = [*doc.spans, *doc.relations]
    return [(item.id, item.notes) for item in items]


def _entity(span: Span, text: str, prefix: str) -> dict[str, Any]:
    return {
        "id": prefix + span.id,
        "type": span.label,
        "text": [text[a:b] for a, b in span.fragments],
        "offsets": [[a, b] for a, b in span.fragments],
        "normalized": concept_links(span.concept),
    }


def concept_links(concept: str) -> list[dict[str, str]]:
    """A concept as BigBio ``normalized`` entries; :func:`concept_of` undoes it exactly."""
    return [_link(part) for part in concept.split("|")] if concept else []


def _link(part: str) -> dict[str, str]:
    db_name, _, db_id = part.partition(":")
    # Only a "db:id" with both halves splits; anything else stays whole in db_id, so that
    # joining back gives the very string (":x" or "x:" included).
    if db_name and db_id:
        return {"db_name": db_name, "db_id": db_id}
    return {"db_name": "", "db_id": part}


def concept_of(links: Sequence[Mapping[str, Any]]) -> str:
    """The concept string of BigBio ``normalized`` entries."""
    parts = [(str(link.get("db_name") or ""), str(link.get("db_id") or "")) for link in links]
    return "|".join(f"{name}:{ident}" if name else ident for name, ident in parts)


# --------------------------------------------------------------------------- the card


def dataset_card(
    splits: Sequence[tuple[str, int, int]],
    entity_types: Mapping[str, int],
    relation_types: Mapping[str, int],
) -> str:
    """The ``README.md`` of the dataset: YAML that ``datasets`` and the Hub read, then text.

    Args:
        splits: (split, documents, Arrow bytes) of each split, in the order to list them.
        entity_types, relation_types: how often each label occurs.
    """
    import yaml  # a dependency of the project's own dependencies (gguf)

    meta = {
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": s, "path": data_file(s)} for s, _, _ in splits],
        }],
        "dataset_info": {
            "features": yaml_features(arrow_schema()),
            "splits": [{"name": s, "num_bytes": b, "num_examples": n} for s, n, b in splits],
            "dataset_size": sum(b for _, _, b in splits),
        },
        "tags": ["bigbio", "biomedical", "named-entity-recognition", "relation-extraction"],
    }
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    counts = [(s, n) for s, n, _ in splits]
    return f"---\n{header}---\n\n" + _card_text(counts, entity_types, relation_types)


def _card_text(
    splits: Sequence[tuple[str, int]],
    entity_types: Mapping[str, int],
    relation_types: Mapping[str, int],
) -> str:
    lines = [
        "# Annotated clinical notes",
        "",
        "One row per note. The columns `id`, `document_id`, `passages`, `entities`, `events`, "
        "`coreferences` and `relations` follow BigBio's `kb` schema; `text` (the exact note), "
        "`metadata`, `attributes`, `notes` and `coreference_types` carry the rest of each "
        "annotation. Entity and relation ids are prefixed with `<document_id>_`; offsets "
        "count characters of `text`.",
        "",
        "```python",
        "from datasets import load_dataset",
        'dataset = load_dataset("path/to/this/folder")',
        "```",
        "",
        "| split | notes |",
        "| --- | --- |",
        *(f"| {s} | {n} |" for s, n in splits),
        "",
        *_label_table("Entity types", entity_types),
        *_label_table("Relation types", relation_types),
    ]
    return "\n".join(lines)


def _label_table(title: str, counts: Mapping[str, int]) -> list[str]:
    if not counts:
        return [f"{title}: none.", ""]
    rows = [f"| `{name}` | {n} |" for name, n in sorted(counts.items())]
    return [f"## {title}", "", "| label | count |", "| --- | --- |", *rows, ""]


def yaml_features(schema: Any) -> list[dict[str, Any]]:
    """``dataset_info.features`` of the card: the Arrow schema in ``datasets``' YAML form."""
    return [{"name": f.name, **_yaml_type(f.type)} for f in schema]


def _yaml_type(arrow_type: Any) -> dict[str, Any]:
    pa, _ = _pyarrow()
    if pa.types.is_list(arrow_type):
        inner = _yaml_type(arrow_type.value_type)
        # datasets writes a list of values as ``list: int32`` and of structs as the fields
        return {"list": inner.get("dtype") or inner.get("struct") or inner}
    if pa.types.is_struct(arrow_type):
        return {"struct": [{"name": f.name, **_yaml_type(f.type)} for f in arrow_type]}
    return {"dtype": str(arrow_type)}


# --------------------------------------------------------------------------- reading


def units(path: Path) -> list[Path]:
    """The Parquet files of ``path``: the file itself, or every one in a dataset folder
    (all splits), sorted; hidden folders (a ``.cache``) are passed over.

    Raises:
        ImportFileError: the path does not exist, or the folder holds no ``.parquet`` file.
    """
    if not path.exists():
        raise ImportFileError.single(str(path), 0, "no such file or folder")
    if not path.is_dir():
        return [path]
    found = sorted(
        p for p in path.rglob("*.parquet")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not found:
        raise ImportFileError.single(str(path), 0, "folder holds no .parquet files")
    return found


def hub_split(path: Path) -> str:
    """The split a Parquet file holds, named as ``datasets`` names it: ``<split>`` of
    ``<split>-00000-of-00001.parquet``, or a file or folder called ``train``, ``test``,
    ``validation`` (or ``dev``, ``eval``...); ``train`` otherwise."""
    shard = _SHARD.match(path.stem)
    if shard:
        return shard.group("split")
    for name in (path.stem, path.parent.name):
        if name.lower() in _SPLIT_WORDS:
            return _SPLIT_WORDS[name.lower()]
    return DEFAULT_SPLIT


def noteloop_split(split: str) -> Split:
    """noteloop's split for a Hub split: ``test`` only ever measures; every other split
    (``train``, ``validation``...) is pool that annotation and training may draw on."""
    return Split.TEST if split == "test" else Split.POOL


def splits_of(path: Path) -> dict[str, str]:
    """Document id -> Hub split, for every Parquet file of ``path`` (reads ids only).

    Raises:
        ImportFileError: a file that is not Parquet or has no id column.
    """
    out: dict[str, str] = {}
    for unit in units(path):
        split = hub_split(unit)
        out.update(dict.fromkeys(_ids(unit), split))
    return out


def _ids(path: Path) -> list[str]:
    with _open(path) as parquet:
        names = parquet.schema_arrow.names
        columns = [c for c in ("document_id", "id") if c in names]
        if not columns:
            raise ImportFileError.single(str(path), 0, "missing column id (or document_id)")
        table = parquet.read(columns=columns)
    ids = zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    return [next((str(v) for v in row if v), "") for row in ids]


def _open(path: Path) -> Any:
    pa, pq = _pyarrow()
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ImportFileError.single(str(path), 0, f"not a Parquet file ({exc})") from None


def read_parquet(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Parsed]:
    """Every document of one Parquet file (a row each; ``Parsed.line`` is the row, from 1).

    Raises:
        ImportFileError: not Parquet, required columns missing or unknown ones present, or
            every bad row with what is wrong in it.
    """
    name = str(path)
    check_file(path, max_bytes)
    errors: list[LineError] = []
    out: list[Parsed] = []
    first_row: dict[str, int] = {}
    with _open(path) as parquet:
        _check_columns(parquet.schema_arrow.names, name)
        for no, row in enumerate(_rows(parquet, name), start=1):
            problems, parsed = _read_row(row, name, no)
            if parsed is not None:
                seen = first_row.setdefault(parsed.doc.id, no)
                problems += [f"duplicate document id (first in row {seen})"] if seen != no else []
            errors += [LineError(name, no, _where(no, row) + p) for p in problems]
            out += [parsed] if parsed and not problems else []
    raise_if_errors(errors, out)
    return out


def _rows(parquet: Any, name: str) -> Iterator[dict[str, Any]]:
    """The rows as plain Python values, a batch at a time."""
    pa, _ = _pyarrow()
    try:
        for batch in parquet.iter_batches(batch_size=ROWS_PER_GROUP):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ImportFileError.single(name, 0, f"unreadable Parquet data ({exc})") from None


def _where(no: int, row: Mapping[str, Any]) -> str:
    ident = row.get("document_id") or row.get("id")
    return f"row {no}" + (f" (document {ident})" if isinstance(ident, str) else "") + ": "


def _check_columns(names: Sequence[str], name: str) -> None:
    problems = []
    if "id" not in names and "document_id" not in names:
        problems.append("missing column id (or document_id)")
    if "text" not in names and "passages" not in names:
        problems.append("missing column text (or passages)")
    # pandas and Arrow add "__index_level_0__"-style columns of their own: not data.
    unknown = [c for c in names if c not in KB_COLUMNS + EXTRA_COLUMNS and not c.startswith("__")]
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(unknown)} (known: BigBio kb's "
            f"{', '.join(KB_COLUMNS)} and {', '.join(EXTRA_COLUMNS)})"
        )
    if problems:
        raise ImportFileError([LineError(name, 0, p) for p in problems])


def _read_row(row: Mapping[str, Any], name: str, no: int) -> tuple[list[str], Parsed | None]:
    """The problems of one row, or its document (checked as noteloop's JSON of it is)."""
    reader = _RowReader(row)
    obj = reader.document_json()
    if reader.problems or obj is None:
        return reader.problems, None
    return read_document_json(json.dumps(obj, ensure_ascii=False), name, no)


class _RowReader:
    """Turns one ``kb`` row into noteloop's JSON of a document, collecting every problem."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.problems: list[str] = []
        self.strip = ""  # the id prefix every item id of the row carries, if any

    def document_json(self) -> dict[str, Any] | None:
        doc_id = attempt(self.problems, "id", self._doc_id)
        text = attempt(self.problems, "text", self._text)
        if self._items("events"):
            self.problems.append(
                "holds events, which noteloop cannot hold: give each trigger as an entity "
                "and each argument as a relation"
            )
        if doc_id is None or text is None:
            return None
        self.strip = _common_prefix(self.row, f"{doc_id}_")
        extras = self._extras()
        # References are checked against every id the row gives, an item refused for
        # its own fault included, so that one bad entity is reported once, not per link.
        entity_ids, relation_ids = self._ids("entities"), self._ids("relations")
        spans = [self._with(extras, s) for s in self._spans(text)]
        relations = [self._with(extras, r) for r in self._relations(entity_ids)]
        self.problems += [f"{', '.join(kinds)} of unknown id {ident}"
                          for ident, kinds in extras.items()
                          if ident not in entity_ids | relation_ids]
        return {
            "id": doc_id,
            "text": text,
            "metadata": attempt(self.problems, "metadata", self._metadata) or {},
            "spans": spans,
            "relations": relations,
            "equivalences": self._equivalences(),
        }

    def _each(self, column: str, build: Callable[[Any], Any]) -> list[Any]:
        """``build`` of every item of a list column; a bad item is a problem, left out."""
        built = [attempt(self.problems, _at(column, i, item), partial(build, item))
                 for i, item in enumerate(self._items(column))]
        return [b for b in built if b is not None]

    def _items(self, column: str) -> list[Any]:
        value = self.row.get(column)
        return value if isinstance(value, list) else []

    def _doc_id(self) -> str:
        ident = self.row.get("document_id") or self.row.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise Bad(f"the document id must be a non-empty string, got {ident!r}")
        return ident

    def _text(self) -> str:
        text = self.row.get("text")
        if text is not None:
            return _string(text, "text")
        return _passages_text(self._items("passages"))

    def _metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self._items("metadata"):
            key, value = _field(item, "key"), _field(item, "value")
            if key in out:
                raise Bad(f"key {key!r} appears twice")
            out[key] = value
        return out

    def _ids(self, column: str) -> set[str]:
        items = self._items(column)
        return {self._ref(i["id"]) for i in items if isinstance(i, dict) and _is_str(i.get("id"))}

    def _ref(self, ident: Any) -> str:
        ident = _string(ident, "id")
        return ident[len(self.strip):] if self.strip and ident.startswith(self.strip) else ident

    def _extras(self) -> dict[str, dict[str, list[Any]]]:
        """Attributes and notes by the (stripped) id of the entity or relation they are of."""
        extras: dict[str, dict[str, list[Any]]] = {}
        attributes = self._each("attributes", lambda it: (
            self._ref(_field(it, "ref_id")), [_field(it, "type"), _field(it, "value")]))
        notes = self._each("notes", lambda it: (self._ref(_field(it, "ref_id")),
                                                _field(it, "text")))
        for what, pairs in (("attributes", attributes), ("notes", notes)):
            for ident, value in pairs:
                extras.setdefault(ident, {}).setdefault(what, []).append(value)
        return extras

    @staticmethod
    def _with(extras: dict[str, dict[str, list[Any]]], item: dict[str, Any]) -> dict[str, Any]:
        """``item`` with its attributes and notes, taken out of ``extras``."""
        return {**item, **extras.pop(item["id"], {})}

    def _spans(self, text: str) -> list[dict[str, Any]]:
        return self._each("entities", partial(self._span, text=text))

    def _span(self, item: Any, text: str) -> dict[str, Any]:
        offsets = _offsets(_field(item, "offsets", list))
        if any(a < 0 or b > len(text) for a, b in offsets):
            raise Bad(f"offsets {offsets} fall outside the text ({len(text)} characters)")
        shown = item.get("text")
        covered = [text[a:b] for a, b in offsets]
        if shown is not None and shown != covered:
            raise Bad(f"text {shown!r} does not match the offsets, which cover {covered!r}")
        return {
            "id": self._ref(item.get("id")),
            "label": _field(item, "type"),
            "start": offsets[0][0],
            "end": offsets[-1][1],
            "fragments": offsets,
            "concept": concept_of(_list(item.get("normalized"), "normalized")),
        }

    def _relations(self, span_ids: set[str]) -> list[dict[str, Any]]:
        relations = self._each("relations", self._relation)
        for rel in relations:
            missing = [rel[k] for k in ("head", "tail") if rel[k] not in span_ids]
            self.problems += [f"relation {rel['id']}: {m} is not an entity of this row"
                              for m in missing]
        return relations

    def _relation(self, item: Any) -> dict[str, Any]:
        return {
            "id": self._ref(_field(item, "id")),
            "label": _field(item, "type"),
            "head": self._ref(_field(item, "arg1_id")),
            "tail": self._ref(_field(item, "arg2_id")),
        }

    def _equivalences(self) -> list[dict[str, Any]]:
        types = dict(self._each("coreference_types",
                                lambda it: (_field(it, "ref_id"), _field(it, "type"))))
        return self._each("coreferences", partial(self._equivalence, types=types))

    def _equivalence(self, item: Any, types: Mapping[str, str]) -> dict[str, Any]:
        members = [self._ref(m) for m in _field(item, "entity_ids", list)]
        return {"label": types.get(item.get("id"), COREFERENCE_TYPE), "members": members}


def _common_prefix(row: Mapping[str, Any], prefix: str) -> str:
    """``prefix`` when every entity, relation and coreference id of the row starts with it
    (as this writer and BigBio's BRAT conversion make them), else ``""``: a foreign row
    whose ids merely look alike keeps its ids whole."""
    ids = [
        item.get("id") for column in ("entities", "relations", "coreferences")
        for item in (row.get(column) or []) if isinstance(item, dict)
    ]
    ok = ids and all(isinstance(i, str) and i.startswith(prefix) and i != prefix for i in ids)
    return prefix if ok else ""


def _passages_text(passages: list[Any]) -> str:
    """The note that BigBio's passages cut up: each piece at its offsets, gaps as spaces;
    passages without offsets are joined by spaces, as BigBio's schema notes describe."""
    if not passages:
        raise Bad("missing: neither a text nor passages")
    pieces: list[tuple[int, str]] = []
    for passage in passages:
        texts = [_string(t, "passage text") for t in _field(passage, "text", list)]
        offsets = _list(passage.get("offsets"), "passage offsets")
        if not offsets:
            return " ".join(t for p in passages for t in _field(p, "text", list))
        if len(texts) != len(offsets):
            raise Bad(f"a passage has {len(texts)} text(s) but {len(offsets)} offset(s)")
        pieces += [(start, t) for t, (start, _) in zip(texts, _offsets(offsets), strict=True)]
    return _place(pieces)


def _place(pieces: list[tuple[int, str]]) -> str:
    chars: list[str] = []
    for start, piece in sorted(pieces):
        chars += [" "] * (start + len(piece) - len(chars))
        if any(c not in (" ", p) for c, p in zip(chars[start:], piece, strict=False)):
            raise Bad(f"passages overlap with different text at offset {start}")
        chars[start:start + len(piece)] = piece
    return "".join(chars)


def _at(column: str, index: int, item: Any) -> str:
    ident = item.get("id") if isinstance(item, dict) else None
    return f"{column}[{index}]" + (f" (id {ident})" if isinstance(ident, str) else "")


def _field(item: Any, key: str, expected: type = str) -> Any:
    if not isinstance(item, dict):
        raise Bad(f"expected a struct, got {kind(item)}")
    value = item.get(key)
    if not isinstance(value, expected):
        raise Bad(f"{key} must be a {'string' if expected is str else 'list'}, got {kind(value)}")
    return value


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Bad(f"{what} must be a string, got {kind(value)}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Bad(f"{what} must be a list, got {kind(value)}")
    return value


def _offsets(value: list[Any]) -> list[list[int]]:
    ok = value and all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(n, int) for n in pair)
        for pair in value
    )
    if not ok:
        raise Bad(f"offsets must be a non-empty list of [start, end] pairs, got {value!r}")
    return [[pair[0], pair[1]] for pair in value]
