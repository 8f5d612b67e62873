"""The bench scripts read a corpus as ``noteloop simulate`` does: what imports, with every
refused file listed, never stopped by one broken file."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench_encoder():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield importlib.import_module("bench_encoder")


def note(folder: Path, name: str, text: str, ann: str) -> None:
    (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")


def test_a_broken_file_is_left_out_listed_and_the_split_order_kept(bench_encoder, tmp_path,
                                                                   capsys):
    note(tmp_path, "b", "Chest pain.", "T1\tSign 0 10\tChest pain\n")
    note(tmp_path, "a", "No fever.", "T1\tSign 3 8\tfever\n")
    note(tmp_path, "c", "Cough.", "T1\tSign 0 5\tCough\n")
    note(tmp_path, "broken", "Rash.", "T1\tSign 0 99\tRash\n")  # offsets past the text
    (tmp_path / "splits.json").write_text(
        json.dumps({"train": ["b", "broken", "a"], "test": ["c"]}), encoding="utf-8"
    )
    train, test, schema = bench_encoder.load_corpus(tmp_path)
    assert [d.id for d in train] == ["b", "a"] and [d.id for d in test] == ["c"]
    assert list(schema.entity_names) == ["Sign"]
    err = capsys.readouterr().err
    assert "1 file(s) refused, left out" in err and "broken.ann:1" in err
