"""CoNLL-style BIO export: one token per line, for sequence-labelling tools.

Layout (UTF-8, ``\\n`` line ends)::

    # doc_id = note-001
    Aspirin<TAB>0<TAB>7<TAB>B-Drug
    for<TAB>8<TAB>11<TAB>O
    ...
    <blank line after each sentence>

Columns: the token, its start and end character offsets in the document text, its tag.
The offsets make the export lossless for contiguous, non-overlapping spans that sit on
token boundaries (:func:`read_conll` gives them back exactly).

Tokens are runs of word characters (``\\w+``, Unicode-aware) and single characters that are
neither word characters nor whitespace. A sentence ends at a line break, and after
``.``, ``!`` or ``?`` when whitespace and then a capital letter or a digit follow.

What BIO cannot express, and what this export does instead:

* Overlapping or nested spans: the longest span is kept (length = characters covered,
  summed over fragments; ties: earliest start, then label, then id) and every span sharing
  a token with an already kept span is dropped.
* Discontinuous spans: each fragment is tagged as its own ``B-``/``I-`` run (so it reads
  back as several spans). Fragments that fall on the same tokens are merged.
* Spans that do not sit on token boundaries are widened to the tokens they touch; spans
  covering no token at all (only whitespace) are dropped.

:class:`ConllReport` counts each of these, so an export can say what it lost.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from noteloop.core.errors import LineError
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, raise_if_errors, read_text_file
from noteloop.core.schema import Document, Span

__all__ = [
    "ConllReport",
    "bio_tags",
    "conll_lines",
    "read_conll",
    "sentence_breaks",
    "tokenize",
    "write_conll",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = frozenset(".!?")
_DOC_ID = "# doc_id = "

Token = tuple[int, int]  # start, end offsets into the document text
Run = tuple[int, int]  # first token index, one past the last
_Bounds = tuple[list[int], list[int]]  # every token's start, every token's end (for bisect)


@dataclass(frozen=True)
class ConllReport:
    """What an export wrote and what BIO made it leave out or change."""

    documents: int = 0
    tokens: int = 0
    spans_written: int = 0
    spans_dropped_overlap: int = 0  # shared a token with a longer span
    spans_dropped_no_token: int = 0  # covered only whitespace
    discontinuous_split: int = 0  # written, one B-/I- run per fragment
    spans_widened: int = 0  # written, stretched to whole tokens

    def __add__(self, other: ConllReport) -> ConllReport:
        return ConllReport(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))


def _values(report: ConllReport) -> tuple[int, ...]:
    return (
        report.documents,
        report.tokens,
        report.spans_written,
        report.spans_dropped_overlap,
        report.spans_dropped_no_token,
        report.discontinuous_split,
        report.spans_widened,
    )


# --------------------------------------------------------------------------- tokens


def tokenize(text: str) -> list[Token]:
    """Offsets of the word runs and single punctuation characters of ``text``."""
    return [m.span() for m in _TOKEN.finditer(text)]


def sentence_breaks(text: str, tokens: Sequence[Token]) -> set[int]:
    """Indexes of the tokens that begin a new sentence (the first token excluded)."""
    breaks = set()
    for i in range(1, len(tokens)):
        (p_start, p_end), (start, _) = tokens[i - 1], tokens[i]
        gap = text[p_end:start]
        after_stop = gap and text[p_start:p_end] in _SENTENCE_END
        if "\n" in gap or "\r" in gap or (after_stop and _opens_sentence(text[start])):
            breaks.add(i)
    return breaks


def _opens_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit()


# --------------------------------------------------------------------------- tagging


def _span_runs(span: Span, tokens: Sequence[Token], bounds: _Bounds) -> tuple[list[Run], bool]:
    """The token runs each fragment touches, and whether that widened the span."""
    starts, ends = bounds
    runs: list[Run] = []
    widened = False
    for a, b in span.fragments:
        first, stop = bisect_right(ends, a), bisect_left(starts, b)
        if first >= stop:
            continue
        widened = widened or tokens[first][0] != a or tokens[stop - 1][1] != b
        if runs and first < runs[-1][1]:  # two fragments inside the same tokens
            runs[-1] = (runs[-1][0], max(stop, runs[-1][1]))
        else:
            runs.append((first, stop))
    return runs, widened


def _priority(span: Span) -> tuple[int, int, str, str]:
    return (-sum(b - a for a, b in span.fragments), span.start, span.label, span.id)


def bio_tags(doc: Document, tokens: Sequence[Token]) -> tuple[list[str], ConllReport]:
    """One BIO tag per token, and the counts of what the module docstring's rules did."""
    tags = ["O"] * len(tokens)
    bounds = ([t[0] for t in tokens], [t[1] for t in tokens])
    taken: set[int] = set()
    counts = dict.fromkeys(("written", "overlap", "empty", "split", "widened"), 0)
    for span in sorted(doc.spans, key=_priority):
        runs, widened = _span_runs(span, tokens, bounds)
        cells = {k for i, j in runs for k in range(i, j)}
        outcome = "empty" if not runs else "overlap" if cells & taken else "written"
        counts[outcome] += 1
        if outcome == "written":
            taken |= cells
            _tag_runs(tags, runs, span.label)
            counts["split"] += span.discontinuous
            counts["widened"] += widened
    report = ConllReport(
        1, len(tokens), counts["written"], counts["overlap"], counts["empty"],
        counts["split"], counts["widened"],
    )  # fmt: skip
    return tags, report


def _tag_runs(tags: list[str], runs: list[Run], label: str) -> None:
    for first, stop in runs:
        tags[first] = f"B-{label}"
        for k in range(first + 1, stop):
            tags[k] = f"I-{label}"


# --------------------------------------------------------------------------- writing


def write_conll(docs: Iterable[Document], path: Path) -> ConllReport:
    """Write ``docs`` as BIO-tagged tokens to ``path``; returns what was kept and lost."""
    total = ConllReport()
    with path.open("w", encoding="utf-8", newline="") as handle:
        for doc in docs:
            lines, report = conll_lines(doc)
            handle.write("".join(f"{line}\n" for line in lines))
            total += report
    return total


def conll_lines(doc: Document) -> tuple[list[str], ConllReport]:
    """The lines of one document (ending with the blank line after its last sentence)."""
    tokens = tokenize(doc.text)
    tags, report = bio_tags(doc, tokens)
    breaks = sentence_breaks(doc.text, tokens)
    lines = [f"{_DOC_ID}{doc.id}"]
    for i, ((start, end), tag) in enumerate(zip(tokens, tags, strict=True)):
        if i in breaks:
            lines.append("")
        lines.append(f"{doc.text[start:end]}\t{start}\t{end}\t{tag}")
    lines.append("")
    return lines, report


# --------------------------------------------------------------------------- reading


def read_conll(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """The spans of a file :func:`write_conll` wrote: ``(doc id, [(start, end, label)])``.

    Raises:
        ImportFileError: with every line that is not a comment, blank or a 4-column row.
    """
    name = str(path)
    docs: list[tuple[str, list[tuple[int, int, str]]]] = []
    errors: list[LineError] = []
    open_span: list[tuple[int, int, str]] = []  # the span the last I- may continue
    for no, line in enumerate(read_text_file(path, max_bytes=max_bytes).split("\n"), 1):
        if line.startswith(_DOC_ID):
            docs.append((line[len(_DOC_ID) :], []))
            open_span.clear()
        elif not line.strip() or line.startswith("#"):
            open_span.clear()
        elif not docs:
            errors.append(LineError(name, no, f"token line before any '{_DOC_ID}X' line"))
        else:
            _read_row(line, (name, no), docs[-1][1], open_span, errors)
    raise_if_errors(errors)
    return docs


def _read_row(
    line: str,
    where: tuple[str, int],
    spans: list[tuple[int, int, str]],
    open_span: list[tuple[int, int, str]],
    errors: list[LineError],
) -> None:
    cols = line.split("\t")
    if len(cols) != 4 or not cols[1].isdigit() or not cols[2].isdigit():
        errors.append(LineError(*where, "expected 'token<TAB>start<TAB>end<TAB>tag'"))
        return
    start, end, tag = int(cols[1]), int(cols[2]), cols[3]
    continues = tag.startswith("I-") and open_span and open_span[0][2] == tag[2:]
    if continues:
        spans[-1] = (spans[-1][0], end, tag[2:])
    elif tag.startswith(("B-", "I-")):
        spans.append((start, end, tag[2:]))
    open_span[:] = [spans[-1]] if tag.startswith(("B-", "I-")) else []
