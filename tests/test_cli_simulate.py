"""`noteloop simulate` and `simulate-report` from the command line, on the sample notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import MEMORY_BACKEND
from typer.testing import CliRunner

from noteloop import modeling
from noteloop.cli import app

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
