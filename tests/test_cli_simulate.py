"""`noteloop simulate` and `simulate-report` from the command line, on the sample notes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fakes import MEMORY_BACKEND
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.usecases import modeling

SAMPLE = Path(__file__).resolve().parents[1] / "sample_notes"
runner = CliRunner()


@pytest.fixture(autouse=True)
def memory_backend():
    modeling.register_backend("memory", MEMORY_BACKEND)
    yield
    modeling.BACKENDS.pop("memory", None)


def simulate(tmp_path: Path, strategy: str, seed: int) -> dict:
    out = tmp_path / f"{strategy}-{seed}.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            str(SAMPLE / "notes"),
            "--format",
            "brat",
            "--split-file",
            str(SAMPLE / "splits.json"),
            "--strategy",
            strategy,
            "--seed",
            str(seed),
            "--initial",
            "3",
            "--batch",
            "4",
            "--rounds",
            "4",
            "--backend",
            "memory",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_simulate_writes_the_exact_json_and_a_rising_curve(tmp_path):
    data = simulate(tmp_path, "breaking-ties", 0)
    assert set(data) == {"corpus", "strategy", "seed", "backend", "points"}
    assert (data["corpus"], data["strategy"], data["seed"], data["backend"]) == (
        "notes",
        "breaking-ties",
        0,
        "memory",
    )
    assert [p["round"] for p in data["points"]] == [0, 1, 2, 3]
    assert [p["n_docs"] for p in data["points"]] == [3, 7, 11, 15]
    for point in data["points"]:
        assert set(point) == {
            "round", "n_docs", "n_tokens", "train_seconds", "entity", "relation", "effort"
        }
        assert point["effort"]["scratch_seconds"] > 0
        assert set(point["entity"]) == {"strict", "lenient"}
        for prf in (point["entity"]["strict"], point["entity"]["lenient"], point["relation"]):
            assert set(prf) == {"p", "r", "f1"} and all(isinstance(v, float) for v in prf.values())
        assert isinstance(point["n_tokens"], int) and isinstance(point["train_seconds"], float)
    f1 = [p["entity"]["lenient"]["f1"] for p in data["points"]]
    assert f1[-1] > f1[0]


def test_simulate_report_draws_every_strategy(tmp_path):
    runs = [tmp_path / f"{s}-{seed}.json" for s in ("random", "breaking-ties") for seed in (0, 1)]
    for path in runs:
        strategy, seed = path.stem.rsplit("-", 1)
        simulate(tmp_path, strategy, int(seed))
    out = tmp_path / "curves.html"
    result = runner.invoke(app, ["simulate-report", *map(str, runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "breaking-ties" in html and "random" in html and len(html) > 100_000  # plotly inline
    assert "annotator effort on the test notes" in result.output
    assert "share" in result.output and "random" in result.output


def test_simulate_refuses_an_unknown_strategy_clearly(tmp_path):
    result = runner.invoke(
        app,
        [
            "simulate",
            str(SAMPLE / "notes"),
            "--format",
            "brat",
            "--strategy",
            "magic",
            "--backend",
            "memory",
            "--out",
            str(tmp_path / "x.json"),
        ],
    )
    assert result.exit_code == 1 and "magic" in result.output


def _flat(text: str) -> str:
    """Output without whitespace: rich wraps long lines wherever the terminal ends."""
    return "".join(text.split())


def _damaged_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """The sample notes plus four notes as real corpora bring them: fragments listed out of
    text order, a span whose offsets cover a trailing \\r its text column lacks (and a
    relation to it), an empty text, and a truly broken file."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE / "notes", corpus)
    extra = {
        "x_order": ("Pain in the left arm.\n", "T1\tProblem 12 20;0 4\tleft arm Pain\n"),
        "x_repair": ("Chest pain\r\nnoted on exam.\n",
                     "T1\tProblem 0 11\tChest pain\nT2\tTest 21 25\texam\n"
                     "R1\treveals Arg1:T2 Arg2:T1\n"),
        "x_empty": ("", ""),
        "x_broken": ("Fever.\n", "T1\tProblem 0 60\tFever.\n"),
    }
    for name, (text, ann) in extra.items():
        (corpus / f"{name}.txt").write_text(text, encoding="utf-8", newline="")
        (corpus / f"{name}.ann").write_text(ann, encoding="utf-8", newline="")
    split = json.loads((SAMPLE / "splits.json").read_text())
    split["train"] += list(extra)
    split_file = tmp_path / "splits.json"
    split_file.write_text(json.dumps(split))
    return corpus, split_file


def _simulate_damaged(tmp_path: Path, *flags: str):
    corpus, split_file = _damaged_corpus(tmp_path)
    out = tmp_path / "run.json"
    args = ["simulate", str(corpus), "--format", "brat", "--split-file", str(split_file),
            "--strategy", "random", "--initial", "3", "--batch", "4", "--rounds", "2",
            "--backend", "memory", "--out", str(out), *flags]
    return runner.invoke(app, args, catch_exceptions=False), out


def test_simulate_leaves_out_a_refused_file_and_says_which_and_why(tmp_path):
    result, out = _simulate_damaged(tmp_path)
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert _flat("x_empty.txt: skipped: the text is empty") in text
    assert _flat("2 file(s) refused, left out") in text
    assert _flat("x_broken.ann:1: T1: offsets end at 60, beyond the text (7 characters)") in text
    assert _flat("x_repair.ann:1: T1: text 'Chest pain' does not match the offsets") in text
    assert _flat("x_repair.ann:3: R1: T1 was refused on line 1 (see there)") in text
    read = json.loads(out.read_text())["corpus_read"]
    assert sorted(Path(f).name for f in read["refused_files"]) == ["x_broken.txt", "x_repair.txt"]
    assert len(read["refused"]) == 3 and len(read["notes"]) == 1


def test_simulate_repairs_whitespace_only_mismatches_when_asked(tmp_path):
    result, out = _simulate_damaged(tmp_path, "--repair")
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert _flat("x_repair.ann:1: repaired: T1: text 'Chest pain' differs from the 'Chest "
                 "pain\\r' its offsets cover only in whitespace; the offsets are kept") in text
    assert _flat("1 file(s) refused") in text and "x_broken" in text
    read = json.loads(out.read_text())["corpus_read"]
    assert [Path(f).name for f in read["refused_files"]] == ["x_broken.txt"]


def test_simulate_strict_refuses_the_corpus_with_every_problem_of_every_file(tmp_path):
    result, out = _simulate_damaged(tmp_path, "--strict")
    assert result.exit_code == 1
    text = _flat(result.output)
    assert _flat("3 problem(s), nothing imported") in text
    assert _flat("x_broken.ann:1") in text and "x_repair.ann:1" in text and "x_repair.ann:3" in text
    assert not out.exists()
