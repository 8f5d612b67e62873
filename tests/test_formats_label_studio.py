"""Label Studio JSON: round trips, a file as Label Studio writes it, every problem named,
and the export checked with Label Studio's own SDK (its label-config parser, its annotation
validator and its converter)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats_jsonl import documents

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.label_studio import (
    CONFIG_FILE,
    FRAGMENT,
    TASKS_FILE,
    labeling_config,
    read_label_studio,
    task_json,
    write_label_studio,
)
from noteloop.core.schema import (
    AttributeType,
    Document,
    EntityType,
    Equivalence,
    LabelSchema,
    Relation,
    RelationType,
    Span,
)

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain."
#       0123456789012345678901234567890123456789012345


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 12, attributes=(("Certainty", "low"),)),
        Span("T3", "Sign", 17, 27, notes=("check", "again")),
        Span("T4", "Anatomy", 23, 27),  # "pain" inside T3: overlapping
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # left arm pain, split
    )
    relations = (
        Relation("R1", "treats", "T1", "T3", notes=("sure",)),
        Relation("R2", "treats", "T1", "T5"),
    )
    eqs = (Equivalence("Same", ("T3", "T5")),)
    return Document("n1", TEXT, spans, relations, eqs, metadata={"ward": "ICU"})


def exported(tmp_path: Path, docs: list[Document], schema: LabelSchema | None = None) -> Path:
    write_label_studio(docs, schema or LabelSchema(), tmp_path)
    return tmp_path / TASKS_FILE


def tasks_of(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_tasks(tmp_path: Path, tasks: Any, name: str = "export.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def problems(path: Path, **kwargs: Any) -> list[tuple[int, str]]:
    with pytest.raises(ImportFileError) as info:
        read_label_studio(path, **kwargs)
    return [(e.line, e.reason) for e in info.value.errors]


def region(rid: str, start: int, end: int, label: str, text: str = TEXT, **extra: Any) -> dict:
    value = {"start": start, "end": end, "text": text[start:end], "labels": [label]}
    return {"id": rid, "from_name": "label", "to_name": "text", "type": "labels",
            "value": value, **extra}  # fmt: skip


def link(head: str, tail: str, *labels: str, direction: str = "right") -> dict:
    return {"type": "relation", "from_id": head, "to_id": tail, "direction": direction,
            "labels": list(labels)}  # fmt: skip


# --------------------------------------------------------------------------- round trips


def test_the_exact_note_comes_back_and_the_report_counts_what_label_studio_cannot_show(
    tmp_path,
):
    report = write_label_studio([sample()], LabelSchema(), tmp_path)
    notes: list[LineError] = []
    (parsed,) = read_label_studio(tmp_path / TASKS_FILE, notes=notes)
    back = parsed.doc
    assert (back.id, back.text, dict(back.metadata)) == ("n1", TEXT, {"ward": "ICU"})
    assert back.annotation_set() == sample().annotation_set()
    assert [r.id for r in back.relations] == ["R1", "R2"]
    assert parsed.line == 1 and set(parsed.lines.values()) == {1}
    assert notes == []
    # 6 regions: T5 is two; a concept, a relation note and an equivalence are in meta only
    assert (report.documents, report.spans, report.regions, report.discontinuous) == (1, 5, 6, 1)
    assert (report.relations, report.only_in_meta) == (2, 3)


def test_what_label_studio_itself_holds_without_the_meta(tmp_path):
    (task,) = tasks_of(exported(tmp_path, [sample()]))
    del task["meta"]
    (back,) = [p.doc for p in read_label_studio(write_tasks(tmp_path, [task]))]
    assert back.id == "1"  # the task's id
    assert {s.id: (s.label, s.fragments, s.attributes, s.notes) for s in back.spans} == {
        s.id: (s.label, s.fragments, s.attributes, s.notes) for s in sample().spans
    }
    assert [s.concept for s in back.spans] == [""] * 5  # concepts: in meta only
    assert [(r.label, r.head, r.tail, r.notes) for r in back.relations] == [
        ("treats", "T1", "T3", ()),  # relation notes: in meta only
        ("treats", "T1", "T5", ()),
    ]
    assert back.equivalences == ()


def test_edits_made_in_label_studio_win_over_the_saved_note(tmp_path):
    (task,) = tasks_of(exported(tmp_path, [sample()]))
    result = task["annotations"][0]["result"]
    t1 = next(r for r in result if r["id"] == "T1" and r["type"] == "labels")
    t1["value"]["labels"] = ["Medication"]  # relabelled: its saved concept no longer applies
    result.remove(next(r for r in result if r.get("to_id") == "T5"))  # R2 deleted
    result.append(link("T4", "T2", "near"))  # a new relation
    (back,) = [p.doc for p in read_label_studio(write_tasks(tmp_path, [task]))]
    assert back.span("T1").label == "Medication" and back.span("T1").concept == ""
    assert [(r.id, r.label, r.head, r.tail, r.notes) for r in back.relations] == [
        ("R1", "treats", "T1", "T3", ("sure",)),
        ("R3", "near", "T4", "T2", ()),  # a fresh id: R1 and R2 were the note's
    ]
    assert back.equivalences == sample().equivalences  # T3 and T5 are still there


@settings(deadline=None, max_examples=60,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents(), min_size=1, max_size=3, unique_by=lambda d: d.id))
def test_generated_documents_survive_label_studio(docs, tmp_path):  # fmt: skip
    back = [p.doc for p in read_label_studio(exported(tmp_path, docs))]
    assert [(d.id, d.text, dict(d.metadata), d.annotation_set()) for d in back] == [
        (d.id, d.text, dict(d.metadata), d.annotation_set()) for d in docs
    ]


# --------------------------------------------------------------------------- Label Studio's files

# A text-relation project's export, written after Label Studio's documented task format
# (https://labelstud.io/guide/task_format: id, data, annotations with result, was_cancelled,
# ground_truth, created_at/updated_at; predictions), the export fields of the SDK
# converter's own fixture (label-studio-converter tests/data/test_export_json_min/data.json:
# drafts, meta, cancelled_annotations...), text "labels" results as in
# label-studio-converter issue #53, the config of label-studio issue #1803 (a text under
# data.Full_Text, a label with a space) and region notes as the editor stores them
# (meta.text, a one-item list: NormalizationMixin.setMetaText in label-studio-frontend).
EXPORT_TEXT = "BORROWER: Synergy One Lending, Inc. denies chest pain."
#              0123456789012345678901234567890123456789012345678901234


def label_studio_export() -> list[dict[str, Any]]:
    old = {
        "id": 21, "completed_by": 1, "was_cancelled": False, "ground_truth": False,
        "created_at": "2024-01-30T02:40:43.893565Z", "updated_at": "2024-01-30T02:40:43Z",
        "result": [region("old1", 0, 8, "PARTY ROLE", EXPORT_TEXT)],
    }  # fmt: skip
    cancelled = {"id": 23, "was_cancelled": True, "created_at": "2024-02-02T00:00:00Z",
                 "result": []}  # fmt: skip
    latest = {
        "id": 22, "completed_by": 2, "was_cancelled": False, "ground_truth": False,
        "created_at": "2024-01-31T09:00:00.000000Z", "updated_at": "2024-02-01T10:00:00Z",
        "lead_time": 8.65, "result_count": 0, "task": 87, "project": 29,
        "result": [
            region("fkVqYYR_P7", 10, 35, "PARTY NAME", EXPORT_TEXT, origin="manual"),
            region("62m6jvJopr", 0, 8, "PARTY ROLE", EXPORT_TEXT,
                   meta={"text": ["the signatory"]}),
            region("x3Pain0001", 43, 53, "Sign", EXPORT_TEXT),
            {"id": "x3Pain0001", "from_name": "negation", "to_name": "text", "type": "choices",
             "value": {"start": 43, "end": 53, "text": "chest pain", "choices": ["negated"]}},
            {"id": "docChoice1", "from_name": "kind", "to_name": "text", "type": "choices",
             "value": {"choices": ["contract"]}},
            {"id": "summary001", "from_name": "summary", "to_name": "text", "type": "textarea",
             "value": {"text": ["a loan"]}},
            link("fkVqYYR_P7", "62m6jvJopr", "has role"),
            link("x3Pain0001", "62m6jvJopr", "refers_to", direction="left"),
            link("fkVqYYR_P7", "x3Pain0001", direction="bi"),
        ],
    }  # fmt: skip
    prediction = {"model_version": "model 1", "score": 0.5,
                  "result": [region("p1", 10, 35, "PARTY NAME", EXPORT_TEXT)]}  # fmt: skip
    return [
        {
            "id": 87, "data": {"Full_Text": EXPORT_TEXT, "source": "loan-7", "pages": 2},
            "annotations": [old, latest, cancelled], "drafts": [], "predictions": [prediction],
            "meta": {}, "created_at": "2024-01-30T02:40:33.867975Z", "inner_id": 1,
            "total_annotations": 2, "cancelled_annotations": 1, "total_predictions": 1,
        },
        {"id": 88, "data": {"Full_Text": "Nothing annotated yet."}, "annotations": [],
         "predictions": []},
    ]  # fmt: skip


def test_a_label_studio_export_imports_its_latest_gold(tmp_path):
    notes: list[LineError] = []
    first, second = read_label_studio(write_tasks(tmp_path, label_studio_export()), notes=notes)
    doc = first.doc
    assert (doc.id, doc.text, dict(doc.metadata)) == ("87", EXPORT_TEXT,
                                                      {"source": "loan-7", "pages": "2"})
    assert [(s.id, s.label, s.start, s.end, s.attributes, s.notes) for s in doc.spans] == [
        ("fkVqYYR_P7", "PARTY_NAME", 10, 35, (), ()),
        ("62m6jvJopr", "PARTY_ROLE", 0, 8, (), ("the signatory",)),
        ("x3Pain0001", "Sign", 43, 53, (("negation", "negated"),), ()),
    ]
    assert [(r.id, r.label, r.head, r.tail) for r in doc.relations] == [
        ("R1", "has_role", "fkVqYYR_P7", "62m6jvJopr"),
        ("R2", "refers_to", "62m6jvJopr", "x3Pain0001"),  # "left": drawn tail to head
        ("R3", "relation", "fkVqYYR_P7", "x3Pain0001"),
    ]
    assert (second.doc.id, second.doc.spans, second.line) == ("88", (), 2)
    said = [(n.line, n.reason) for n in notes]
    assert said == [
        (1, "task 1: took annotation 22 (the latest not cancelled) of 3; the other 2 left out"),
        (1, "task 1: 1 prediction(s) left out: model output, not gold"),
        (1, "task 1: label 'PARTY NAME' read as 'PARTY_NAME' (no spaces or : = | , ;)"),
        (1, "task 1: label 'PARTY ROLE' read as 'PARTY_ROLE' (no spaces or : = | , ;)"),
        (1, "task 1: results noteloop does not hold left out: 1 choices, 1 textarea"),
        (1, "task 1: label 'has role' read as 'has_role' (no spaces or : = | , ;)"),
        (1, "task 1: 1 relation(s) two-way, read from from_id to to_id"),
        (1, "task 1: 1 relation(s) without label, labelled 'relation'"),
    ]


def test_the_import_shape_one_task_and_ground_truth(tmp_path):
    tasks = [{"data": {"text": "Fever."}}, {"data": {"text": "Cough."}, "predictions": []}]
    docs = [p.doc for p in read_label_studio(write_tasks(tmp_path, tasks, "in.json"))]
    assert [(d.id, d.text, d.spans) for d in docs] == [("in-1", "Fever.", ()),
                                                       ("in-2", "Cough.", ())]  # fmt: skip
    gold = {"ground_truth": True, "created_at": "2020-01-01",
            "result": [region("a", 0, 5, "Sign", "Fever.")]}  # fmt: skip
    gold["result"][0]["value"]["labels"] = ["Sign", "Symptom"]  # choice="multiple"
    newer = {"created_at": "2024-01-01", "result": []}
    one = {"id": "note-9", "data": {"text": "Fever."}, "annotations": [newer, gold]}
    (doc,) = [p.doc for p in read_label_studio(write_tasks(tmp_path, one))]
    assert doc.id == "note-9"
    assert [(s.id, s.label, s.start, s.end) for s in doc.spans] == [
        ("a", "Sign", 0, 5), ("a-Symptom", "Symptom", 0, 5)]  # one span per label


def test_a_whitespace_difference_is_refused_or_repaired(tmp_path):
    text = "chest\r\npain"
    shown = region("a", 0, 11, "Sign", text)
    shown["value"]["text"] = "chest\npain"  # the browser's selection folds \r\n
    path = write_tasks(tmp_path, [{"data": {"text": text}, "annotations": [{"result": [shown]}]}])
    assert problems(path) == [
        (1, "task 1: result 1 (region a): text 'chest\\npain' does not match offsets 0-11, "
            "which cover 'chest\\r\\npain'"),
    ]  # fmt: skip
    notes: list[LineError] = []
    (parsed,) = read_label_studio(path, repair=True, notes=notes)
    assert [(s.start, s.end) for s in parsed.doc.spans] == [(0, 11)]
    assert notes[0].reason.startswith("task 1: repaired: result 1 (region a)")


# --------------------------------------------------------------------------- refused files


def test_every_problem_of_a_file_is_named_and_the_file_refused(tmp_path):
    good = {"id": 5, "data": {"text": TEXT},
            "annotations": [{"result": [region("a", 0, 7, "Drug")]}]}  # fmt: skip
    bad_regions = [
        region("b", 0, 99, "Drug"),
        {**region("c", 0, 7, "Drug"), "value": {"start": "/p[1]", "end": 7, "labels": ["X"]}},
        {**region("d", 0, 7, "Drug"), "value": {"start": 0, "end": 7, "text": "Aspirn",
                                                "labels": ["Drug"]}},
        region("e", 8, 12, "Dosage"),
        {"id": "f", "type": "rectanglelabels", "value": {"x": 1}},
        link("e", "zz", "treats"),
        link("e", "e", "treats", direction="up"),
        region("g", 17, 22, "Sign"), region("h", 23, 27, "Anatomy"), link("g", "h", FRAGMENT),
        link("b", "e", "treats"),  # b is refused already: no second message for it
    ]  # fmt: skip
    tasks = [
        good,
        "not a task",
        {"data": {"note": "a", "other": "b"}},
        {"id": 7, "data": {"text": TEXT}, "annotations": [{"result": bad_regions}]},
        {"id": 5, "data": {"text": "again"}},
    ]
    path = write_tasks(tmp_path, tasks)
    with pytest.raises(ImportFileError) as info:
        read_label_studio(path)
    assert [(e.line, e.reason) for e in info.value.errors] == [
        (2, "task 2: expected a task object, got str"),
        (3, 'task 3: data has no "text" string (its keys: note, other)'),
        (4, "task 4: result 1 (region b): offsets 0-99 are not a stretch of the text "
            "(46 characters)"),
        (4, "task 4: result 2 (region c): start and end must be integer character offsets, "
            "got '/p[1]' and 7 (a region of a HyperText or Paragraphs object?)"),
        (4, "task 4: result 3 (region d): text 'Aspirn' does not match offsets 0-7, which "
            "cover 'Aspirin'"),
        (4, "task 4: result 5: type 'rectanglelabels' is not a text span or relation "
            "(noteloop reads labels and relation results; it skips choices, datetime, "
            "number, pairwise, ranker, rating, taxonomy, textarea)"),
        (4, "task 4: result 7 (relation): direction must be one of right, left, bi, got 'up'"),
        (4, "task 4: regions g, h are joined as fragments of one span but carry different "
            "labels (Anatomy, Sign)"),
        (4, "task 4: result 6 (relation): zz is not a region of this annotation"),
        (5, "task 5: duplicate document id '5' (first in task 1)"),
    ]  # fmt: skip
    assert all(e.path == str(path) for e in info.value.errors)
    assert [p.doc.id for p in info.value.parsed] == ["5", "5"]  # the schema check still sees them


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('[{"data": {"text": "a"}', "not JSON: Expecting ',' delimiter (line 1, column 24)"),
        ('{"text": "a"}', "expected a JSON list of Label Studio tasks, got dict"),
        ("[]", "the list holds no tasks"),
    ],
)
def test_a_file_that_is_not_a_task_list_is_refused(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    assert problems(path) == [(0, reason)]


def test_a_broken_saved_note_is_named(tmp_path):
    (task,) = tasks_of(exported(tmp_path, [sample()]))
    task["meta"]["noteloop"]["spans"][0]["end"] = 999
    [(line, reason)] = problems(write_tasks(tmp_path, [task]))
    assert line == 1 and reason.startswith("task 1: meta.noteloop is not a note noteloop wrote")
    assert "beyond the text" in reason


# --------------------------------------------------------------------------- Label Studio's SDK

label_interface = pytest.importorskip("label_studio_sdk.label_interface")
converter_module = pytest.importorskip("label_studio_sdk.converter")


def project_schema() -> LabelSchema:
    return LabelSchema(
        (EntityType("Drug", "#112233", "d", "a medicine"), EntityType("Sign")),
        (RelationType("treats", ("Drug",), ("Sign",)),),
        (AttributeType("Negated"), AttributeType("Certainty", ("low", "high"))),
    )


def test_label_studio_accepts_the_config_with_the_labels_written(tmp_path):
    exported(tmp_path, [sample()], project_schema())
    config = (tmp_path / CONFIG_FILE).read_text(encoding="utf-8")
    interface = label_interface.LabelInterface(config)
    interface.validate()  # Label Studio's schema, unique names and toName checks
    labels = interface.get_control("label")
    assert labels.labels == ["Drug", "Sign", "Dosage", "Anatomy"]  # the schema, then the docs'
    assert labels.labels_attrs["Drug"].attr == {"value": "Drug", "background": "#112233",
                                                "hotkey": "d", "hint": "a medicine"}  # fmt: skip
    assert interface.get_control("Certainty").labels == ["low", "high"]
    assert interface.get_control("Negated").labels == ["true"]
    relations = [r.get("value") for r in ET.fromstring(config).iter("Relation")]
    assert relations == ["treats", "Same", FRAGMENT]  # Label Studio's parser skips Relations
    parsed = converter_module.utils.parse_config(config)
    assert sorted(parsed) == ["Certainty", "Negated", "label"]
    assert parsed["label"]["inputs"] == [{"type": "Text", "value": "text"}]


def test_a_project_without_entity_types_still_has_a_valid_config():
    label_interface.LabelInterface(labeling_config(LabelSchema())).validate()


def test_label_studio_validates_every_exported_annotation(tmp_path):
    config = labeling_config(project_schema().extended_with([sample()]), fragments=True)
    interface = label_interface.LabelInterface(config)
    annotation = task_json(sample(), 1)["annotations"][0]
    assert interface.validate_prediction(annotation, return_errors=True) == []
    annotation["result"][0]["value"]["labels"] = ["Unknown"]
    assert interface.validate_prediction(annotation, return_errors=True) != []


def test_label_studio_converter_keeps_spans_and_loses_relations(tmp_path):
    tasks = exported(tmp_path, [sample()])
    converter = converter_module.Converter(config=str(tmp_path / CONFIG_FILE),
                                           project_dir=str(tmp_path))  # fmt: skip
    assert "CONLL2003" in converter.supported_formats
    for fmt in ("JSON", "JSON_MIN", "CONLL2003"):
        converter.convert(str(tasks), str(tmp_path / fmt), fmt, is_dir=False)
    # JSON is the file itself: relations and meta included
    assert tasks_of(tmp_path / "JSON" / "result.json") == tasks_of(tasks)
    # JSON-MIN: every region, no relation (label-studio issue #1803)
    (record,) = tasks_of(tmp_path / "JSON_MIN" / "result.json")
    regions = [(r["start"], r["end"], r["labels"]) for r in record["label"]]
    assert regions == [(0, 7, ["Drug"]), (8, 12, ["Dosage"]), (17, 27, ["Sign"]),
                       (23, 27, ["Anatomy"]), (32, 40, ["Sign"]), (41, 45, ["Sign"])]  # fmt: skip
    assert record["Negated"] == "true"  # one choice: its value alone, the region forgotten
    assert "treats" not in json.dumps(record) and FRAGMENT not in json.dumps(record)
    # CoNLL-2003: no relations (label-studio-converter #219), the overlapping T4 is lost and
    # the discontinuous T5 becomes two entities
    conll = (tmp_path / "CONLL2003" / "result.conll").read_text(encoding="utf-8")
    tags = [line.split()[-1] for line in conll.splitlines()[1:] if line.strip()]
    assert tags == ["B-Drug", "B-Dosage", "O", "B-Sign", "I-Sign", "O", "B-Sign", "I-Sign",
                    "B-Sign", "O"]  # fmt: skip
    # this converter has no BRAT output at all
    with pytest.raises(ValueError):
        converter.convert(str(tasks), str(tmp_path / "BRAT"), "BRAT", is_dir=False)


# --------------------------------------------------------------------------- MACCROBAT


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_survives_label_studio(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    report = write_label_studio(docs, LabelSchema(), tmp_path)
    assert (report.documents, report.discontinuous) == (200, 44)
    back = [p.doc for p in read_label_studio(tmp_path / TASKS_FILE, max_bytes=200 * 2**20)]
    assert [(d.id, d.text, d.annotation_set()) for d in back] == [
        (d.id, d.text, d.annotation_set()) for d in docs
    ]
    # what Label Studio alone holds: every span with its attributes and notes, every relation
    # (the notes with a discontinuous span, to keep the test short)
    pairs = [(d, t) for d, t in zip(docs, tasks_of(tmp_path / TASKS_FILE), strict=True)
             if any(s.discontinuous for s in d.spans)]  # fmt: skip
    for _, task in pairs:
        del task["meta"]
    bare = [p.doc for p in read_label_studio(write_tasks(tmp_path, [t for _, t in pairs]))]

    def shown(doc: Document) -> tuple[Any, ...]:
        spans = {s.id: (s.label, s.fragments, s.attributes, s.notes) for s in doc.spans}
        rels = sorted((r.label, spans[r.head], spans[r.tail]) for r in doc.relations)
        return sorted(spans.values()), rels

    assert [shown(d) for d in bare] == [shown(d) for d, _ in pairs]
