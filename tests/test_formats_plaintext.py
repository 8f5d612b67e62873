"""Plain-text folders and CSV: texts arrive exactly, bad CSV records are named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError, InvalidDocumentError
from noteloop.core.formats.plaintext import read_csv, read_txt, txt_units, write_txt
from noteloop.core.schema import Document


def write(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8", newline="")
    return path


def csv_problems(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(ImportFileError) as info:
        read_csv(path)
    return [(e.line, e.reason) for e in info.value.errors]


# --------------------------------------------------------------------------- text files


def test_units_are_every_txt_below_a_folder_sorted(tmp_path):
    write(tmp_path / "b.txt", "b")
    write(tmp_path / "sub" / "a.txt", "a")
    write(tmp_path / "notes.md", "not a note")
    assert txt_units(tmp_path) == [tmp_path / "b.txt", tmp_path / "sub" / "a.txt"]
    assert txt_units(tmp_path / "b.txt") == [tmp_path / "b.txt"]


def test_units_refuse_missing_paths_and_folders_without_notes(tmp_path):
    with pytest.raises(ImportFileError, match="no such file or folder"):
        txt_units(tmp_path / "missing")
    with pytest.raises(ImportFileError, match=r"folder holds no \.txt files"):
        txt_units(tmp_path)


@pytest.mark.parametrize(
    ("name", "format_named"),
    [
        ("a.ann", "a BRAT annotation file, not a plain-text note: import the folder with"),
        ("annotation.conf", "brat's annotation.conf"),
        ("rows.jsonl", "import it with --format jsonl"),
        ("rows.JSON", "import it with --format jsonl"),
        ("docs.xml", "import it with --format bioc"),
        ("notes.csv", "import it with --format csv"),
    ],
)
def test_a_file_of_another_format_is_refused_naming_the_format_to_use(tmp_path, name, format_named):
    path = write(tmp_path / "notes" / name, "T1\tDrug 0 7\taspirin\n")
    with pytest.raises(ImportFileError) as info:
        read_txt(path)
    [error] = info.value.errors
    assert (error.path, error.line) == (str(path), 0)
    assert format_named in error.reason and "not a plain-text note" in error.reason


def test_a_folder_yields_files_of_other_formats_to_refuse_but_leaves_brat_pairs_alone(tmp_path):
    write(tmp_path / "n1.txt", "aspirin")
    write(tmp_path / "n1.ann", "T1\tDrug 0 7\taspirin\n")  # a pair: the .txt is a note
    write(tmp_path / "annotation.conf", "[entities]\nDrug\n")  # beside a pair
    write(tmp_path / "lone.ann", "T1\tDrug 0 7\taspirin\n")
    write(tmp_path / "sub" / "rows.jsonl", "{}\n")
    assert txt_units(tmp_path) == [
        tmp_path / "lone.ann", tmp_path / "n1.txt", tmp_path / "sub" / "rows.jsonl",
    ]  # fmt: skip
    assert txt_units(tmp_path / "n1.ann") == [tmp_path / "n1.ann"]  # named alone: refused on read
    with pytest.raises(ImportFileError, match="BRAT annotation file"):
        read_txt(tmp_path / "n1.ann")


def test_text_is_read_exactly(tmp_path):
    text = "\ufeffPatient: 😀 e\u0301\r\nline two\r\n"
    [parsed] = read_txt(write(tmp_path / "note-7.txt", text))
    assert parsed.doc == Document("note-7", text)
    assert parsed.path == str(tmp_path / "note-7.txt")


def test_write_txt_round_trips_bytes_and_refuses_unsafe_ids(tmp_path):
    docs = [Document("a", "one\r\ntwo"), Document("b", "ü\n")]
    write_txt(docs, tmp_path / "out")
    assert [p.doc for u in txt_units(tmp_path / "out") for p in read_txt(u)] == docs
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"one\r\ntwo"
    with pytest.raises(InvalidDocumentError, match=r"'\.\.' cannot be used as a file name"):
        write_txt([Document("..", "x")], tmp_path / "bad")
    with pytest.raises(InvalidDocumentError, match="appears twice"):
        write_txt([Document("a", "x"), Document("a", "y")], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- CSV


def test_csv_reads_quoted_multiline_text_and_metadata(tmp_path):
    content = (
        "\ufeffward, ID ,text\r\n"
        'ICU,n1,"first line\r\nsecond, with ""quotes"""\r\n'
        "\r\n"
        "ER,n2,plain\r\n"
    )
    parsed = read_csv(write(tmp_path / "notes.csv", content))
    assert [p.doc for p in parsed] == [
        Document("n1", 'first line\r\nsecond, with "quotes"', metadata={"ward": "ICU"}),
        Document("n2", "plain", metadata={"ward": "ER"}),
    ]
    # each document points at the physical line its record starts on
    assert [p.line for p in parsed] == [2, 5]


def test_csv_reports_every_bad_record_by_its_first_line(tmp_path):
    content = (
        "id,text,source\n"
        'n1,"a note\nover two lines",x\n'  # 2-3 fine
        ",no id,x\n"  # 4
        "n3,   ,x\n"  # 5
        "n1,again,x\n"  # 6
        "n4,too,many,fields\n"  # 7
        "n5,short\n"  # 8
    )
    assert csv_problems(write(tmp_path / "in.csv", content)) == [
        (4, "empty id"),
        (5, "document n3: empty text"),
        (6, "duplicate id 'n1' (first on line 2)"),
        (7, "row has 4 fields, the header has 3"),
        (8, "row has 2 fields, the header has 3"),
    ]


def test_csv_header_needs_id_and_text(tmp_path):
    [(line, reason)] = csv_problems(write(tmp_path / "in.csv", "id,body\nn1,hello\n"))
    assert line == 1 and "exactly one 'id' and one 'text' column; check 'text'" in reason


def test_csv_unbalanced_quote_is_named(tmp_path):
    content = 'id,text\nn1,fine\nn2,"never closed\nn3,more\n'
    [(line, reason)] = csv_problems(write(tmp_path / "in.csv", content))
    assert line == 3 and reason.startswith("malformed CSV")
