"""Label Studio JSON: tasks with their annotations, and the labeling config that shows them.

**Export** writes two files into the export folder:

- ``tasks.json``: a JSON list of tasks that Label Studio imports as pre-annotated tasks,
  one per note::

      {"id": 1, "data": {"text": "..."}, "meta": {"noteloop": {...}},
       "annotations": [{"result": [...], "was_cancelled": false, "ground_truth": true}]}

  The gold arrives as an annotation (not a prediction). Each span becomes a ``labels``
  region whose id is the span's id (``from_name="label"``, ``to_name="text"``,
  ``value={"start", "end", "text", "labels": [label]}``); each relation a ``relation``
  result (``from_id`` head, ``to_id`` tail, ``direction="right"``, ``labels=[label]``).
  Attributes become per-region ``choices`` results (one ``<Choices perRegion="true">``
  per attribute type, a flag as the choice ``true``); span notes become the region's
  ``meta.text``, the note Label Studio shows beside a region.
- ``label_config.xml``: the labeling config a project needs for those tasks, generated
  from the schema extended with every label the documents use: ``<Labels>`` (colours,
  hotkeys, descriptions as hints), ``<Relations>``, ``<Text value="$text">`` (with a style
  that keeps the note's line breaks) and the attributes' ``<Choices>``.

Label Studio has no discontinuous region: a discontinuous span is written as one region per
fragment, each with the span's label, consecutive fragments joined by a relation labelled
``noteloop:fragment`` (a label no noteloop relation type can have). The first fragment's
region keeps the span's id, attributes and notes. Label Studio cannot show concepts,
relation ids and notes, equivalences, the note's id and metadata: those live in the task's
``meta.noteloop`` (the note as the JSONL format writes it, without its text), which Label
Studio keeps on import and gives back on export.

**Import** reads one ``.json`` file: a list of tasks (Label Studio's JSON export, or tasks
shaped for its import) or one task object. Each task needs ``data`` with the note's text
under ``text``; for a config that reads another key (``value="$Full_Text"``), under the
only string of ``data``, else the only one whose key contains "text".

- *Which annotation*: a task's annotations that were not cancelled (``was_cancelled``,
  ``skipped``); among them the ``ground_truth`` ones if any; of those the latest
  (``updated_at``, else ``created_at``, else the last listed). The others are left out
  with a note. A task without one gives its note without annotations.
- *Predictions* are model output, not gold: left out, with a note. Drafts are ignored.
- *Regions*: ``labels`` results become spans (a region with several labels, one span per
  label); ``noteloop:fragment`` relations join regions back into a discontinuous span;
  ``relation`` results become relations (``direction="left"`` is read tail to head,
  ``"bi"`` as written, with a note; one relation per label, an unlabelled one labelled
  ``relation`` with a note); per-region ``choices`` become attributes (from_name as the
  name); a region's ``meta.text`` its notes. Labels with spaces or ``: = | , ;`` are read
  with ``_`` in their place, with a note.
- *Skipped, counted in a note*: results noteloop does not hold (``choices`` that are not
  per-region, ``textarea``, ``rating``, ``taxonomy``, ``number``, ``datetime``,
  ``pairwise``, ``ranker``).
- *Refused*: not JSON, a task without text, offsets outside the text or that are not
  integers, a region whose ``text`` does not match its offsets (with ``repair``, a
  difference only in whitespace keeps the offsets, with a note), a relation to a region
  the annotation lacks, result types of other objects (``rectanglelabels``...) or unknown
  ones, duplicate document ids. Every problem of the file is named (``task N`` is the
  task's place in the list, 1-based) and the file is refused whole.
- *The note's own data*: ``meta.noteloop``, when present, gives the document's id and
  metadata, the concepts of spans Label Studio still has unchanged (same id, label and
  offsets), the ids and notes of relations it still has, and the equivalences whose spans
  all remain; what was edited in Label Studio wins. Without it, the document id is the
  task's ``id`` (else ``<file stem>-N``) and the other scalar ``data`` values are metadata.

Offsets count characters (code points), as everywhere in noteloop.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.common import (
    DEFAULT_MAX_BYTES,
    Documents,
    Parsed,
    raise_if_errors,
    read_text_file,
)
from noteloop.core.formats.jsonl import document_json, read_document_json
from noteloop.core.formats.peer_json import (
    PAYLOAD,
    VOCAB_FAULTS,
    Bad,
    FreshIds,
    kind,
    metadata_of,
    parsed_of,
    restored_relations,
)
from noteloop.core.schema import (
    Document,
    LabelSchema,
    Relation,
    Span,
    SpanSource,
)

__all__ = [
    "CONFIG_FILE",
    "FRAGMENT",
    "TASKS_FILE",
    "LabelStudioReport",
    "labeling_config",
    "read_label_studio",
    "task_json",
    "write_label_studio",
]

TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
FRAGMENT = "noteloop:fragment"  # the relation joining the fragments of a discontinuous span
LABELS_TAG = "label"
TEXT_TAG = "text"
UNLABELLED = "relation"  # the label of a relation drawn without one
# Attribute types named like the config's own tags cannot have a <Choices> of that name.
_RESERVED = frozenset({LABELS_TAG, TEXT_TAG})
# Results of Label Studio controls that annotate a text but hold nothing noteloop keeps.
_UNHELD = frozenset(
    {"choices", "textarea", "rating", "taxonomy", "number", "datetime", "pairwise", "ranker"}
)
_DIRECTIONS = ("right", "left", "bi")
# What a noteloop label may not hold (schema.check_label): each run becomes one "_".
_NOT_IN_LABEL = re.compile(r"[\s:=|,;]+")


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class LabelStudioReport:
    """What an export wrote, and what Label Studio holds only in each task's meta."""

    documents: int = 0
    spans: int = 0
    regions: int = 0  # labels results: one per contiguous span, one per fragment otherwise
    discontinuous: int = 0  # spans written as fragment regions joined by FRAGMENT relations
    relations: int = 0
    # concepts, relation notes, equivalences, attributes named label/text: Label Studio
    # cannot show them; they live in meta.noteloop only
    only_in_meta: int = 0

    def __add__(self, other: LabelStudioReport) -> LabelStudioReport:
        return LabelStudioReport(
            *(a + b for a, b in zip(astuple(self), astuple(other), strict=True))
        )


def write_label_studio(docs: Documents, schema: LabelSchema, out_dir: Path) -> LabelStudioReport:
    """Write :data:`TASKS_FILE` and :data:`CONFIG_FILE` for ``docs`` into ``out_dir``;
    ``docs`` is read twice (the labels the config needs, then the tasks), a document at
    a time."""
    fragments = False

    def noting_fragments() -> Iterator[Document]:
        nonlocal fragments
        for doc in docs:
            fragments = fragments or any(s.discontinuous for s in doc.spans)
            yield doc

    wider = schema.extended_with(noting_fragments())
    (out_dir / CONFIG_FILE).write_text(labeling_config(wider, fragments=fragments),
                                       encoding="utf-8")
    report = LabelStudioReport()
    # One task per line: a compact file that still reads (and diffs) task by task.
    with (out_dir / TASKS_FILE).open("w", encoding="utf-8", newline="") as handle:
        handle.write("[\n")
        for number, doc in enumerate(docs, start=1):
            comma = ",\n" if number > 1 else ""
            handle.write(comma + json.dumps(task_json(doc, number), ensure_ascii=False))
            report = report + _report([doc])
        handle.write("\n]\n")
    return report


def _report(docs: Sequence[Document]) -> LabelStudioReport:
    spans = [s for d in docs for s in d.spans]
    in_meta = sum(
        bool(s.concept) + sum(name in _RESERVED for name, _ in s.attributes) for s in spans
    )
    in_meta += sum(bool(r.notes) for d in docs for r in d.relations)
    in_meta += sum(len(d.equivalences) for d in docs)
    return LabelStudioReport(
        documents=len(docs),
        spans=len(spans),
        regions=sum(len(s.fragments) for s in spans),
        discontinuous=sum(s.discontinuous for s in spans),
        relations=sum(len(d.relations) for d in docs),
        only_in_meta=in_meta,
    )


def labeling_config(schema: LabelSchema, *, fragments: bool = False) -> str:
    """The labeling config (XML) of a Label Studio project for ``schema``'s labels.

    Args:
        fragments: also offer the :data:`FRAGMENT` relation that joins a discontinuous
            span's regions.
    """
    root = ET.Element("View")
    # Without pre-wrap Label Studio folds a note's line breaks into spaces on screen.
    ET.SubElement(root, "Style").text = ".htx-text { white-space: pre-wrap; }"
    _add_labels(root, schema)
    relation_values = schema.relation_names + ([FRAGMENT] if fragments else [])
    if relation_values:
        relations = ET.SubElement(root, "Relations")
        for value in relation_values:
            ET.SubElement(relations, "Relation", value=value)
    ET.SubElement(root, "Text", name=TEXT_TAG, value=f"${TEXT_TAG}")
    _add_choices(root, schema)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _add_labels(root: ET.Element, schema: LabelSchema) -> None:
    # Label Studio refuses an empty <Labels>: a project without entity types shows text only.
    if not schema.entity_types:
        return
    labels = ET.SubElement(root, "Labels", name=LABELS_TAG, toName=TEXT_TAG)
    for entity in schema.entity_types:
        attrs = {"value": entity.name, "background": schema.color(entity.name)}
        attrs |= {"hotkey": entity.hotkey} if entity.hotkey else {}
        attrs |= {"hint": entity.description} if entity.description else {}
        ET.SubElement(labels, "Label", attrs)


def _add_choices(root: ET.Element, schema: LabelSchema) -> None:
    """One per-region ``<Choices>`` per attribute type; a flag offers the one choice ``true``."""
    for attribute in schema.attributes:
        if attribute.name in _RESERVED:
            continue
        choices = ET.SubElement(
            root,
            "Choices",
            name=attribute.name,
            toName=TEXT_TAG,
            perRegion="true",
            visibleWhen="region-selected",
        )
        for value in attribute.values or ("true",):
            ET.SubElement(choices, "Choice", value=value)


def task_json(doc: Document, number: int) -> dict[str, Any]:
    """One Label Studio task for ``doc``, the ``number``-th of its file.

    Label Studio assigns its own task ids on import; ``id`` is there for tools that read
    the file as an export (its converter needs one).
    """
    region_ids = _region_ids(doc)
    results = [r for s in doc.spans for r in _span_results(s, doc.text, region_ids[s.id])]
    results += [_relation_result(r.head, r.tail, r.label) for r in doc.relations]
    return {
        "id": number,
        "data": {TEXT_TAG: doc.text},
        "meta": {PAYLOAD: document_json(doc, with_text=False)},
        "annotations": [{"result": results, "was_cancelled": False, "ground_truth": True}],
    }


def _region_ids(doc: Document) -> dict[str, list[str]]:
    """Each span's region ids: its own id, then a fresh one per further fragment."""
    taken = {s.id for s in doc.spans} | {r.id for r in doc.relations}
    out: dict[str, list[str]] = {}
    for span in doc.spans:
        out[span.id] = [span.id]
        for k in range(2, len(span.fragments) + 1):
            rid = f"{span.id}-{k}"
            while rid in taken:
                rid += "_"
            taken.add(rid)
            out[span.id].append(rid)
    return out


def _span_results(span: Span, text: str, ids: list[str]) -> list[dict[str, Any]]:
    out = [
        _region(rid, "labels", text, a, b, labels=[span.label])
        for rid, (a, b) in zip(ids, span.fragments, strict=True)
    ]
    if span.notes:
        out[0]["meta"] = {"text": list(span.notes)}
    a, b = span.fragments[0]
    for name, values in _grouped(span.attributes).items():
        if name not in _RESERVED:
            out.append(_region(ids[0], "choices", text, a, b, name=name, choices=values))
    out += [_relation_result(x, y, FRAGMENT) for x, y in pairwise(ids)]
    return out


def _region(
    rid: str, type_: str, text: str, start: int, end: int, *, name: str = LABELS_TAG, **value: Any
) -> dict[str, Any]:
    return {
        "id": rid,
        "from_name": name,
        "to_name": TEXT_TAG,
        "type": type_,
        "value": {"start": start, "end": end, "text": text[start:end], **value},
    }


def _relation_result(head: str, tail: str, label: str) -> dict[str, Any]:
    return {
        "type": "relation",
        "from_id": head,
        "to_id": tail,
        "direction": "right",
        "labels": [label],
    }


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


# --------------------------------------------------------------------------- reading


def read_label_studio(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    repair: bool = False,
    notes: list[LineError] | None = None,
) -> list[Parsed]:
    """Every task of a Label Studio JSON file, as documents with their gold.

    Args:
        repair: keep the offsets of a region whose ``text`` differs from what they cover
            only in whitespace (with a note) instead of refusing the file.
        notes: collects what was left out, renamed or repaired, ``task N`` each; filled
            only when the file is read.

    Raises:
        ImportFileError: with every problem of every task (``line`` is the task's place).
    """
    name = str(path)
    tasks = _tasks(read_text_file(path, max_bytes=max_bytes, strip_bom=True), name)
    errors: list[LineError] = []
    said: list[LineError] = []
    out: list[Parsed] = []
    renamed: dict[str, str] = {}  # a label renamed is said once per file, not per task
    for no, task in enumerate(tasks, start=1):
        reader = _TaskReader(task, no, f"{path.stem}-{no}", repair, renamed)
        parsed = reader.parsed(name)
        errors += [LineError(name, no, f"task {no}: {p}") for p in reader.problems]
        said += [LineError(name, no, f"task {no}: {n}") for n in reader.notes]
        out += [parsed] if parsed else []
    errors += _duplicate_ids(out, name)
    raise_if_errors(sorted(errors, key=lambda e: e.line), out)
    if notes is not None:
        notes.extend(said)
    return out


def _tasks(raw: str, name: str) -> list[Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        reason = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ImportFileError.single(name, 0, reason) from None
    if isinstance(data, dict) and "data" in data:
        return [data]  # one task object
    if not isinstance(data, list):
        raise ImportFileError.single(
            name, 0, f"expected a JSON list of Label Studio tasks, got {kind(data)}"
        )
    if not data:
        raise ImportFileError.single(name, 0, "the list holds no tasks")
    return data


def _duplicate_ids(parsed: list[Parsed], name: str) -> list[LineError]:
    first: dict[str, int] = {}
    errors = []
    for p in parsed:
        line = first.setdefault(p.doc.id, p.line)
        if line != p.line:
            reason = f"task {p.line}: duplicate document id {p.doc.id!r} (first in task {line})"
            errors.append(LineError(name, p.line, reason))
    return errors


@dataclass
class _Region:
    """One ``labels`` result, checked; ``labels`` already made noteloop labels."""

    rid: str
    start: int
    end: int
    labels: list[str]
    notes: tuple[str, ...] = ()
    attributes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Link:
    """One ``relation`` result, checked: head and tail are region ids."""

    head: str
    tail: str
    labels: list[str]
    index: int


class _TaskReader:
    """Checks one task, collecting every problem rather than the first."""

    def __init__(
        self, task: Any, no: int, fallback_id: str, repair: bool, renamed: dict[str, str]
    ) -> None:
        self.task, self.no, self.fallback_id, self.repair = task, no, fallback_id, repair
        self.renamed = renamed
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.text = ""
        self.text_key = TEXT_TAG
        self.read_as: Counter[str] = Counter()  # relations read other than as drawn
        self.broken: set[str] = set()  # regions already refused: no second message for them

    def parsed(self, name: str) -> Parsed | None:
        if not isinstance(self.task, dict):
            self.problems.append(f"expected a task object, got {kind(self.task)}")
            return None
        text = self._attempt(self._text)
        result = self._attempt(self._chosen_result) or []
        self._note_predictions()
        if text is None:
            return None
        self.text = text
        doc = self._document(result)
        if self.problems or doc is None:
            return None
        return parsed_of(doc, name, self.no)

    def _attempt(self, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (Bad, *VOCAB_FAULTS) as exc:
            self.problems.append(str(exc))
            return None

    # ---- the task's parts

    def _text(self) -> str:
        data = self.task.get("data")
        if not isinstance(data, dict):
            raise Bad(f'no "data" object (got {kind(data)}): a task holds its text in data')
        if isinstance(data.get(TEXT_TAG), str):
            return str(data[TEXT_TAG])
        # A config may read another key (value="$Full_Text"): the only string, else the
        # only string whose key names a text.
        strings = [k for k, v in data.items() if isinstance(v, str)]
        named = [k for k in strings if TEXT_TAG in k.lower()]
        for keys in (strings, named):
            if TEXT_TAG not in data and len(keys) == 1:
                self.text_key = keys[0]
                return str(data[keys[0]])
        raise Bad(f'data has no "text" string (its keys: {", ".join(sorted(data)) or "none"})')

    def _chosen_result(self) -> list[Any]:
        annotations = self.task.get("annotations", self.task.get("completions", []))
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise Bad("annotations must be a list of objects")
        live = [a for a in annotations if not (a.get("was_cancelled") or a.get("skipped"))]
        pool = [a for a in live if a.get("ground_truth")] or live
        if not pool:
            if annotations:
                self.notes.append(f"all {len(annotations)} annotation(s) cancelled: no gold")
            return []
        chosen = max(enumerate(pool), key=_recency)[1]
        if len(annotations) > 1:
            which = "the latest ground truth" if chosen.get("ground_truth") else "the latest"
            self.notes.append(
                f"took annotation {chosen.get('id', '(no id)')} ({which} not cancelled) of "
                f"{len(annotations)}; the other {len(annotations) - 1} left out"
            )
        result = chosen.get("result")
        if not isinstance(result, list):
            raise Bad(f"annotation {chosen.get('id', '(no id)')}: result must be a list")
        return result

    def _note_predictions(self) -> None:
        predictions = self.task.get("predictions")
        if isinstance(predictions, list) and predictions:
            self.notes.append(f"{len(predictions)} prediction(s) left out: model output, not gold")

    # ---- results to a document

    def _document(self, result: list[Any]) -> Document | None:
        regions, links, choices, skipped = self._sorted_results(result)
        for index, item in choices:
            if not self._attach_choices(index, item, regions):
                skipped["choices"] += 1
        if skipped:
            counts = ", ".join(f"{n} {what}" for what, n in sorted(skipped.items()))
            self.notes.append(f"results noteloop does not hold left out: {counts}")
        spans, span_of = self._spans(regions, links)
        relations = self._relations(links, span_of, regions)
        self.notes += [f"{n} relation(s) {how}" for how, n in self.read_as.items()]
        if self.problems:
            return None
        return self._attempt(self._merged, spans, relations)

    def _sorted_results(
        self, result: list[Any]
    ) -> tuple[dict[str, _Region], list[_Link], list[tuple[int, dict[str, Any]]], Counter[str]]:
        regions: dict[str, _Region] = {}
        links: list[_Link] = []
        choices: list[tuple[int, dict[str, Any]]] = []
        skipped: Counter[str] = Counter()
        for index, item in enumerate(result, start=1):
            what = str(item.get("type", "")).lower() if isinstance(item, dict) else ""
            if what == "labels":
                rid = _region_id(item.get("id"), len(regions))
                region = self._attempt(self._region, index, item, rid)
                self._add_region(region, regions, index)
                self.broken |= {rid} if region is None else set()
            elif what == "relation":
                links += [link for link in [self._attempt(self._link, index, item)] if link]
            elif what == "choices":
                choices.append((index, item))
            elif what in _UNHELD:
                skipped[what] += 1
            else:
                self.problems.append(_unknown(index, item))
        return regions, links, choices, skipped

    def _add_region(self, region: _Region | None, regions: dict[str, _Region], index: int) -> None:
        if region is None:
            return
        if region.rid in regions:
            self.problems.append(f"result {index}: duplicate region id {region.rid}")
            return
        regions[region.rid] = region

    def _region(self, index: int, item: dict[str, Any], rid: str) -> _Region:
        where = f"result {index} (region {rid})"
        value = item.get("value")
        if not isinstance(value, dict):
            raise Bad(f"{where}: value must be an object, got {kind(value)}")
        start, end = self._offsets(where, value)
        labels = value.get("labels")
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) for x in labels)
        ):
            raise Bad(f"{where}: labels must be a non-empty list of strings, got {labels!r}")
        notes = _meta_text(item.get("meta"))
        return _Region(rid, start, end, [self._label(x, where) for x in labels], notes)

    def _offsets(self, where: str, value: Mapping[str, Any]) -> tuple[int, int]:
        start, end = value.get("start"), value.get("end")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, end)):
            raise Bad(
                f"{where}: start and end must be integer character offsets, got {start!r} "
                f"and {end!r} (a region of a HyperText or Paragraphs object?)"
            )
        assert isinstance(start, int) and isinstance(end, int)
        if not 0 <= start < end <= len(self.text):
            raise Bad(
                f"{where}: offsets {start}-{end} are not a stretch of the text "
                f"({len(self.text)} characters)"
            )
        self._check_shown(where, value.get("text"), start, end)
        return start, end

    def _check_shown(self, where: str, shown: Any, start: int, end: int) -> None:
        covered = self.text[start:end]
        if shown is None or shown == covered:
            return
        if self.repair and isinstance(shown, str) and shown.split() == covered.split():
            self.notes.append(
                f"repaired: {where}: text {shown!r} differs from the {covered!r} its offsets "
                "cover only in whitespace; the offsets are kept"
            )
            return
        raise Bad(
            f"{where}: text {shown!r} does not match offsets {start}-{end}, which cover {covered!r}"
        )

    def _label(self, raw: str, where: str) -> str:
        label = _NOT_IN_LABEL.sub("_", raw.strip())
        if not label:
            raise Bad(f"{where}: empty label {raw!r}")
        if label != raw and raw not in self.renamed:
            self.renamed[raw] = label
            self.notes.append(f"label {raw!r} read as {label!r} (no spaces or : = | , ;)")
        return label

    def _link(self, index: int, item: dict[str, Any]) -> _Link:
        where = f"result {index} (relation)"
        head, tail = item.get("from_id"), item.get("to_id")
        if not isinstance(head, str | int) or not isinstance(tail, str | int):
            raise Bad(f"{where}: from_id and to_id must name regions, got {head!r}, {tail!r}")
        direction = item.get("direction", "right")
        if direction not in _DIRECTIONS:
            raise Bad(
                f"{where}: direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}"
            )
        labels = item.get("labels") or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise Bad(f"{where}: labels must be a list of strings, got {labels!r}")
        if direction == "bi":
            self.read_as["two-way, read from from_id to to_id"] += 1
        ends = (str(tail), str(head)) if direction == "left" else (str(head), str(tail))
        return _Link(*ends, labels, index)

    def _attach_choices(self, index: int, item: Any, regions: dict[str, _Region]) -> bool:
        """Per-region choices become the region's attributes; False for any other."""
        region = regions.get(str(item.get("id"))) if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if region is None or not isinstance(value, dict):
            return False
        values = value.get("choices")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.problems.append(f"result {index}: choices must be a list of strings")
            return True
        attribute = self._label(str(item.get("from_name", "")), f"result {index}")
        region.attributes += [(attribute, v) for v in values]
        return True

    def _spans(
        self, regions: dict[str, _Region], links: list[_Link]
    ) -> tuple[list[Span], dict[str, str]]:
        """The spans and, for each region id, the id of the span it became."""
        joins = [x for x in links if FRAGMENT in x.labels]
        spans: list[Span] = []
        span_of: dict[str, str] = {}
        taken: set[str] = set()
        for group in _groups(regions, joins):
            made = self._attempt(_group_spans, group, taken) or []
            spans += made
            taken |= {s.id for s in made}
            for region in group:
                span_of[region.rid] = group[0].rid
        return spans, span_of

    def _relations(
        self, links: list[_Link], span_of: dict[str, str], regions: dict[str, _Region]
    ) -> list[Relation]:
        out: list[Relation] = []
        for link in links:
            ends = (link.head, link.tail)
            missing = [r for r in ends if r not in regions and r not in self.broken]
            if missing or not all(r in regions for r in ends):
                self.problems += [
                    f"result {link.index} (relation): {r} is not a region of this annotation"
                    for r in missing
                ]
                continue
            labels = [x for x in link.labels if x != FRAGMENT]
            if FRAGMENT in link.labels and not labels:
                continue
            if not labels:
                self.read_as[f"without label, labelled {UNLABELLED!r}"] += 1
            where = f"result {link.index} (relation)"
            for label in labels or [UNLABELLED]:
                out.append(
                    Relation(
                        f"R{len(out) + 1}",
                        self._label(label, where),
                        span_of[link.head],
                        span_of[link.tail],
                    )
                )
        return out

    def _merged(self, spans: list[Span], relations: list[Relation]) -> Document:
        """The document, with what only ``meta.noteloop`` holds put back where it fits."""
        meta = self.task.get("meta")
        payload = meta.get(PAYLOAD) if isinstance(meta, dict) else None
        if payload is None:
            doc_id = self.task.get("id")
            doc_id = str(doc_id) if isinstance(doc_id, str | int) and str(doc_id) else None
            fresh = FreshIds({s.id for s in spans})
            relations = [replace(r, id=fresh.next("R")) for r in relations]
            return Document(
                doc_id or self.fallback_id,
                self.text,
                tuple(spans),
                tuple(relations),
                (),
                self._data_metadata(),
            )
        saved = self._saved(payload)
        return _restored(saved, spans, relations)

    def _saved(self, payload: Any) -> Document:
        if not isinstance(payload, dict):
            raise Bad(f"meta.{PAYLOAD} must be an object, got {kind(payload)}")
        raw = json.dumps({**payload, "text": self.text}, ensure_ascii=False)
        problems, parsed = read_document_json(raw, "", self.no)
        if problems or parsed is None:
            raise Bad(f"meta.{PAYLOAD} is not a note noteloop wrote: {'; '.join(problems)}")
        return parsed.doc

    def _data_metadata(self) -> dict[str, str]:
        data = self.task["data"]
        return metadata_of(
            (k, v) for k, v in data.items()
            if isinstance(v, str | int | float | bool) and k != self.text_key
        )


def _recency(pair: tuple[int, dict[str, Any]]) -> tuple[str, int]:
    index, annotation = pair
    return str(annotation.get("updated_at") or annotation.get("created_at") or ""), index


def _unknown(index: int, item: Any) -> str:
    if not isinstance(item, dict):
        return f"result {index}: expected an object, got {kind(item)}"
    return (
        f"result {index}: type {item.get('type')!r} is not a text span or relation (noteloop reads "
        f"labels and relation results; it skips {', '.join(sorted(_UNHELD))})"
    )


def _region_id(raw: Any, count: int) -> str:
    rid = str(raw) if isinstance(raw, str | int) else ""
    # Label Studio's import shape may leave ids out; a span id may hold no whitespace.
    return rid if rid and not re.search(r"\s", rid) else f"region{count + 1}"


def _meta_text(meta: Any) -> tuple[str, ...]:
    text = meta.get("text") if isinstance(meta, dict) else None
    if isinstance(text, str):
        return (text,)
    return tuple(t for t in text if isinstance(t, str)) if isinstance(text, list) else ()


def _groups(regions: dict[str, _Region], joins: list[_Link]) -> list[list[_Region]]:
    """Regions joined by fragment relations, each group ordered by offset; others alone."""
    parent = {rid: rid for rid in regions}

    def root(rid: str) -> str:
        while parent[rid] != rid:
            rid = parent[rid]
        return rid

    for link in joins:
        if link.head in parent and link.tail in parent:
            parent[root(link.head)] = root(link.tail)
    groups: dict[str, list[_Region]] = {}
    for rid, region in regions.items():
        groups.setdefault(root(rid), []).append(region)
    return [sorted(g, key=lambda r: r.start) for g in groups.values()]


def _group_spans(group: list[_Region], taken: set[str]) -> list[Span]:
    """One span per label of a lone region; one discontinuous span of a joined group."""
    first = group[0]
    notes = tuple(n for r in group for n in r.notes)
    attributes = tuple(a for r in group for a in r.attributes)
    if len(group) > 1:
        labels = {label for r in group for label in r.labels}
        if len(labels) != 1:
            raise Bad(
                f"regions {', '.join(r.rid for r in group)} are joined as fragments of one "
                f"span but carry different labels ({', '.join(sorted(labels))})"
            )
        frags = tuple((r.start, r.end) for r in group)
        return [
            Span(
                first.rid,
                first.labels[0],
                frags[0][0],
                frags[-1][1],
                frags,
                attributes,
                notes,
                source=SpanSource.IMPORTED,
            )
        ]
    ids = [first.rid] + [f"{first.rid}-{label}" for label in first.labels[1:]]
    clash = [i for i in ids if i in taken]
    if clash:
        raise Bad(f"duplicate region id {clash[0]}")
    return [
        Span(
            i,
            label,
            first.start,
            first.end,
            attributes=attributes,
            notes=notes,
            source=SpanSource.IMPORTED,
        )
        for i, label in zip(ids, first.labels, strict=True)
    ]


def _restored(saved: Document, spans: list[Span], relations: list[Relation]) -> Document:
    """Label Studio's spans and relations, with the saved note's id, metadata, concepts,
    relation ids and notes, and equivalences where they still fit."""
    kept = {s.id: s for s in saved.spans}
    spans = [_with_saved(s, kept.get(s.id)) for s in spans]
    span_ids = {s.id for s in spans}
    # Label Studio keeps region ids, so a span is its own end; a relation's saved id and
    # notes come back, a new one is numbered clear of every span and saved relation id.
    fresh = FreshIds(span_ids | {r.id for r in saved.relations})
    out = restored_relations(relations, saved.relations, {s.id: s for s in spans}, fresh)
    eqs = tuple(e for e in saved.equivalences if set(e.members) <= span_ids)
    return Document(saved.id, saved.text, tuple(spans), out, eqs, saved.metadata)


def _with_saved(span: Span, saved: Span | None) -> Span:
    """``span`` with the saved span's concept and reserved-name attributes, if unchanged."""
    if saved is None or (saved.label, saved.fragments) != (span.label, span.fragments):
        return span
    hidden = tuple(a for a in saved.attributes if a[0] in _RESERVED)
    return replace(span, concept=saved.concept, attributes=span.attributes + hidden)
