"""A tiny Streamlit app that mounts the annotator on a fixture note (browser tests, bench).

``?fixture=clinic|inject|bench`` picks the note (``bench`` takes ``words`` and
``suggestions``). Every submitted result is converted with ``result_to_annotation`` and
appended to the JSON list in ``$NOTELOOP_ANNOTATOR_OUT``, and shown with ``st.json``;
then the note is shown again as a page would after saving: the new gold, one version up.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

sys.path.insert(0, str(Path(__file__).parent))

from widget_fixtures import FIXTURES

from noteloop.components.annotator import (
    AnnotatorView,
    annotator,
    result_to_annotation,
)


def record(submitted: dict[str, Any], view: AnnotatorView) -> dict[str, Any]:
    try:
        spans, relations, decisions, seconds = result_to_annotation(submitted, view)
    except ValueError as exc:
        return {"document_id": view.document_id, "error": str(exc), "state": submitted}
    return {
        "document_id": view.document_id,
        "spans": [
            {
                "id": s.id,
                "label": s.label,
                "start": s.start,
                "end": s.end,
                "text": s.text_in(view.text),
                "source": s.source.value,
                "suggestion_id": s.suggestion_id,
                "attributes": dict(s.attributes),
            }
            for s in spans
        ],
        "relations": [
            {"id": r.id, "label": r.label, "head": r.head, "tail": r.tail} for r in relations
        ],
        "decisions": {str(k): v for k, v in decisions.items()},
        "seconds": seconds,
        "state": submitted,
    }


def append(path: str, entry: dict[str, Any]) -> None:
    out = Path(path)
    entries = json.loads(out.read_text()) if out.exists() and out.read_text().strip() else []
    entries.append(entry)
    out.write_text(json.dumps(entries, indent=1, ensure_ascii=False))


def saved_view(view: AnnotatorView, submitted: dict[str, Any]) -> AnnotatorView:
    """What a page shows after saving: the new gold at the next version, decided
    suggestions gone (the same as reloading from the database)."""
    spans, relations, decisions, _ = result_to_annotation(submitted, view)
    return replace(
        view,
        spans=tuple(spans),
        relations=tuple(relations),
        suggestions=tuple(s for s in view.suggestions if view.suggestion_id(s) not in decisions),
        version=view.version + 1,
        status="submitted",
    )


st.set_page_config(page_title="noteloop annotator test", layout="wide")
name = st.query_params.get("fixture", "clinic")
views = st.session_state.setdefault("views", {})
view = views.get(name) or FIXTURES[name](dict(st.query_params))
result = annotator(view, key=f"annotator-{name}-{view.version}")
if result is not None and result.submitted is not None:
    entry = record(result.submitted, view)
    if os.environ.get("NOTELOOP_ANNOTATOR_OUT"):
        append(os.environ["NOTELOOP_ANNOTATOR_OUT"], entry)
    st.session_state["last_submitted"] = entry
    if "error" not in entry:
        views[name] = saved_view(view, result.submitted)
        st.rerun()
if "last_submitted" in st.session_state:
    st.json(st.session_state["last_submitted"], expanded=False)
