"""Notes for the annotator widget's browser tests and benchmark (pure, no Streamlit).

``clinic``: a short note with one saved span, ten span suggestions (one nested in
another) and three relation suggestions; a character beyond the BMP before the spans
checks that offsets survive the code point / UTF-16 conversion. ``inject``: a note and
a label made of HTML. ``two_types``: two suggestions of different types on one range.
``bench``: a generated note of N words with M span suggestions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from noteloop.core.schema import LabelSchema, Relation, Span, Suggestion
from noteloop.screen.components.annotator import AnnotatorView

SCHEMA = LabelSchema.from_dict(
    {
        "entity_types": [
            {"name": "Problem", "color": "#e15759", "hotkey": "p"},
            {"name": "Test", "color": "#4e79a7", "hotkey": "t"},
            {"name": "Treatment", "color": "#59a14f", "hotkey": "r"},
            {"name": "Drug", "color": "#f28e2b", "hotkey": "d"},
            {"name": "Dosage", "color": "#b07aa1", "hotkey": "o"},
            {"name": "Anatomy", "color": "#76b7b2", "hotkey": "a"},
        ],
        "relation_types": [
            {"name": "treats", "heads": ["Drug", "Treatment"], "tails": ["Problem"]},
            {"name": "causes", "heads": ["Drug", "Treatment", "Problem"], "tails": ["Problem"]},
            {"name": "has_dosage", "heads": ["Drug"], "tails": ["Dosage"]},
            {"name": "reveals", "heads": ["Test"], "tails": ["Problem"]},
            {"name": "located_in", "heads": ["Problem", "Test"], "tails": ["Anatomy"]},
        ],
        "attributes": [
            {"name": "negated", "description": "the finding is absent"},
            {"name": "uncertain", "description": "possible, suspected"},
            {"name": "historical", "description": "past, not current"},
        ],
    }
)

CLINIC_TEXT = (
    "Cardiology follow-up (𝛽-blocker review)\n"
    "\n"
    "Mr. K is a 67-year-old man with atrial fibrillation and hypertension. He reports "
    "palpitations but denies chest pain. Metoprolol 50 mg daily was started for atrial "
    "fibrillation. Echocardiogram showed a dilated left atrium.\n"
    "History of hypothyroidism, treated with levothyroxine.\n"
)

# (phrase, occurrence, label, score, suggestion id)
CLINIC_SUGGESTIONS = (
    ("atrial fibrillation", 0, "Problem", 0.95, 101),
    ("palpitations", 0, "Problem", 0.91, 102),
    ("chest pain", 0, "Problem", 0.62, 103),
    ("Metoprolol", 0, "Drug", 0.93, 104),
    ("50 mg daily", 0, "Dosage", 0.85, 105),
    ("atrial fibrillation", 1, "Problem", 0.88, 106),
    ("Echocardiogram", 0, "Test", 0.90, 107),
    ("dilated left atrium", 0, "Problem", 0.55, 108),
    ("left atrium", 0, "Anatomy", 0.71, 109),
    ("67-year-old", 0, "Problem", 0.12, 110),
)
# (key, label, head key, tail key, score, suggestion id)
CLINIC_RELATIONS = (
    ("SR1", "has_dosage", "S104", "S105", 0.84, 201),
    ("SR2", "treats", "S104", "S106", 0.77, 202),
    ("SR3", "reveals", "S107", "S108", 0.66, 203),
)


def find(text: str, phrase: str, nth: int = 0) -> tuple[int, int]:
    """Offsets of the ``nth`` occurrence of ``phrase`` in ``text``."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(phrase, start + 1)
    return start, start + len(phrase)


def clinic_view(params: Mapping[str, str] | None = None) -> AnnotatorView:
    text = CLINIC_TEXT
    start, end = find(text, "hypertension")
    gold = (Span("T1", "Problem", start, end),)
    suggestions: list[Suggestion] = []
    for phrase, nth, label, score, sid in CLINIC_SUGGESTIONS:
        start, end = find(text, phrase, nth)
        suggestions.append(Suggestion(Span(f"S{sid}", label, start, end, suggestion_id=sid), score))
    for key, label, head, tail, score, _sid in CLINIC_RELATIONS:
        suggestions.append(Suggestion(Relation(key, label, head, tail), score))
    return AnnotatorView(
        document_id="clinic-1",
        text=text,
        schema=SCHEMA,
        spans=gold,
        suggestions=tuple(suggestions),
        version=3,
        status="in_progress",
        suggestion_ids={key: sid for key, *_, sid in CLINIC_RELATIONS},
    )


INJECT_TEXT = (
    "Patient pasted this into the portal: <script>window.__nlInjected = 1</script> and "
    '<img src=x onerror="window.__nlInjected = 2"> then <b>bold</b> &amp; more.\n'
)


def inject_view(params: Mapping[str, str] | None = None) -> AnnotatorView:
    schema = LabelSchema.from_dict(
        {"entity_types": [{"name": "<b>Bold</b>", "color": "#e15759", "hotkey": "b"}]}
    )
    text = INJECT_TEXT
    start, end = find(text, "<script>window.__nlInjected = 1</script>")
    img_start, img_end = find(text, "<img")
    return AnnotatorView(
        document_id="inject-1",
        text=text,
        schema=schema,
        suggestions=(
            Suggestion(Span("S1", "<b>Bold</b>", start, end, suggestion_id=1), 0.9),
            Suggestion(Span("S2", "<b>Bold</b>", img_start, img_end, suggestion_id=2), 0.4),
        ),
    )


_FILLER = (
    "the patient was seen in clinic today and reports feeling better overall with no new "
    "complaints since the last visit family at bedside plan discussed in detail and agreed"
)
_WORDS = tuple(_FILLER.split())
_PHRASES = (
    (
        "Problem",
        (
            "atrial fibrillation",
            "hypertension",
            "chest pain",
            "pneumonia",
            "edema",
            "shortness of breath",
            "type 2 diabetes",
            "anemia",
            "syncope",
            "fever",
        ),
    ),
    ("Drug", ("metoprolol", "lisinopril", "apixaban", "furosemide", "ceftriaxone", "insulin")),
    ("Dosage", ("25 mg daily", "40 mg IV twice daily", "1 g IV daily", "5 mg twice daily")),
    ("Test", ("ECG", "chest X-ray", "troponin", "CBC", "echocardiogram", "CT angiogram")),
    ("Anatomy", ("left lower lobe", "right atrium", "both legs", "abdomen")),
)


def bench_view(params: Mapping[str, str] | None = None) -> AnnotatorView:
    """A generated note: ``words`` words, ``suggestions`` span suggestions, a relation
    suggestion for every fifth of them, one nested pair in ten, twenty saved spans."""
    params = params or {}
    n_words = int(params.get("words", 5000))
    n_sugg = int(params.get("suggestions", 150))
    rng = random.Random(7)
    parts: list[str] = []
    entities: list[tuple[str, int, int]] = []
    length, words = 0, 0
    per_entity = max(3, n_words // (n_sugg + 25))
    while words < n_words:
        filler = " ".join(rng.choice(_WORDS) for _ in range(per_entity))
        label, phrases = rng.choice(_PHRASES)
        phrase = rng.choice(phrases)
        piece = f"{filler} {phrase}"
        start = length + len(filler) + 1
        entities.append((label, start, start + len(phrase)))
        piece += ". " if rng.random() < 0.3 else " "
        if rng.random() < 0.06:
            piece += "\n\n"
        parts.append(piece)
        length += len(piece)
        words += per_entity + len(phrase.split())
    text = "".join(parts)
    gold = [Span(f"T{i + 1}", lab, s, e) for i, (lab, s, e) in enumerate(entities[:20])]
    spans: list[Span] = []
    for i, (label, s, e) in enumerate(entities[20:]):
        if len(spans) >= n_sugg:
            break
        spans.append(Span(f"S{1000 + len(spans)}", label, s, e, suggestion_id=1000 + len(spans)))
        if i % 10 == 9 and " " in text[s:e] and len(spans) < n_sugg:
            inner = text.rindex(" ", s, e) + 1  # a nested pair: the last word on its own
            sid = 1000 + len(spans)
            spans.append(Span(f"S{sid}", "Anatomy", inner, e, suggestion_id=sid))
    suggestions = [Suggestion(span, round(rng.uniform(0.3, 0.99), 3)) for span in spans]
    for i in range(0, len(spans) - 1, 5):
        head, tail = spans[i], spans[i + 1]
        suggestions.append(Suggestion(Relation(f"SR{i}", "causes", head.id, tail.id), 0.6))
    return AnnotatorView(
        document_id=f"bench-{n_words}-{n_sugg}",
        text=text,
        schema=_bench_schema(),
        spans=tuple(gold),
        suggestions=tuple(suggestions),
    )


def two_types_view(params: Mapping[str, str] | None = None) -> AnnotatorView:
    """A past problem suggested as two types on the same characters, as span enumeration
    suggests a disorder that is also history."""
    data = SCHEMA.to_dict()
    data["entity_types"] = [*data["entity_types"], {"name": "History", "hotkey": "h"}]
    text = CLINIC_TEXT
    start, end = find(text, "hypothyroidism")
    return AnnotatorView(
        document_id="two-types-1",
        text=text,
        schema=LabelSchema.from_dict(data),
        suggestions=(
            Suggestion(Span("S1", "Problem", start, end, suggestion_id=1), 0.9),
            Suggestion(Span("S2", "History", start, end, suggestion_id=2), 0.85),
        ),
    )


def _bench_schema() -> LabelSchema:
    # "causes" between any two types, so every generated relation suggestion is allowed.
    data = SCHEMA.to_dict()
    data["relation_types"] = [{"name": "causes"}]
    return LabelSchema.from_dict(data)


FIXTURES: dict[str, Callable[[Mapping[str, str] | None], AnnotatorView]] = {
    "clinic": clinic_view,
    "inject": inject_view,
    "two_types": two_types_view,
    "bench": bench_view,
}
