"""Benchmark of the active-learning strategies on MACCROBAT2020's fixed split.

``run`` replays the loop with ``noteloop simulate`` for every strategy and seed (one
results file each under ``--out-dir``; a file already there is kept, so an interrupted
benchmark resumes) plus one full-pool run (round 0 on all 150 training notes, the same
model settings), with ``--jobs`` simulations side by side. ``table`` prints, per
strategy: the area under the entity-F1 curve (mean and sd over seeds; also as the mean
paired difference with random, seed by seed: the same seed draws the same first notes and
the same model initialisation), and the notes needed to reach 90% of the full-pool F1;
then the area under strict F1 against words read over the reading budget every run
covers, also paired with random (annotators are paid for reading, not per note); and,
for runs that recorded it, the annotator's estimated time on the test notes with each
round's suggestions as a share of from scratch. Without a full-pool run the notes to 90%
are left out. Examples::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_active.py run --seeds 0,1,2 --jobs 2 \
        --out-dir /tmp/noteloop-al
    .venv/bin/python bench/bench_active.py table --out-dir /tmp/noteloop-al
    .venv/bin/noteloop simulate-report /tmp/noteloop-al/maccrobat-*.json --out curves.html
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from noteloop.core.active import STRATEGIES
from noteloop.core.simulate import (
    SimulationPoint,
    area_under_curve,
    area_under_reading_curve,
    common_reading,
    docs_to_reach,
)

DATA = Path("/work/shared/data/maccrobat2020")
NOTELOOP = str(Path(sys.executable).with_name("noteloop"))
FULL = "full-pool.json"


def simulate_command(args: argparse.Namespace, strategy: str, seed: int, out: Path,
                     *, initial: int, rounds: int) -> list[str]:
    command = [NOTELOOP, "simulate", str(args.data), "--format", "brat", "--split-file",
               str(args.data / "splits.json"), "--strategy", strategy, "--seed", str(seed),
               "--initial", str(initial), "--batch", str(args.batch), "--rounds", str(rounds),
               "--threads", str(args.threads)]
    return command + (["--epochs", str(args.epochs)] if args.epochs else []) + ["--out", str(out)]


def run_one(command: list[str], out: Path) -> str:
    if out.exists():
        return f"kept {out.name}"
    tmp = out.with_suffix(".part")
    done = subprocess.run([*command[:-1], str(tmp)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        return f"FAILED {out.name}: {done.stderr.strip().splitlines()[-1:]}"
    tmp.rename(out)  # a results file is complete or absent
    return f"wrote {out.name}"


def cmd_run(args: argparse.Namespace) -> None:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = [(simulate_command(args, "random", 0, args.out_dir / FULL, initial=150, rounds=1),
             args.out_dir / FULL)]
    for seed in args.seeds:
        for strategy in args.strategies:
            out = args.out_dir / f"maccrobat-{strategy}-{seed}.json"
            work.append((simulate_command(args, strategy, seed, out, initial=args.initial,
                                          rounds=args.rounds), out))
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda w: run_one(*w), work):
            print(message, flush=True)


def cmd_table(args: argparse.Namespace) -> None:
    full_path = args.out_dir / FULL
    full = (json.loads(full_path.read_text())["points"][0]["entity"]["strict"]["f1"]
            if full_path.exists() else None)
    runs: dict[str, dict[int, list]] = {}
    for path in sorted(args.out_dir.glob("maccrobat-*.json")):
        result = json.loads(path.read_text())
        runs.setdefault(result["strategy"], {})[result["seed"]] = result["points"]
    random_auc = {s: area_under_curve(p) for s, p in runs.get("random", {}).items()}
    if full is None:
        print(f"No {FULL} in {args.out_dir}: no notes to 90% of the full pool.\n")
    else:
        print(f"Full pool (150 notes): entity strict F1 {full:.3f}; 90% of it: {0.9 * full:.3f}\n")
    print("| strategy | seeds | AUC entity strict F1, mean (sd) | AUC - random, paired mean "
          "(min, max) | notes to 90% of full-pool F1, per seed | lenient AUC |")
    print("|---|---|---|---|---|---|")
    for strategy in sorted(runs, key=lambda s: STRATEGIES.index(s)):
        seeds = sorted(runs[strategy])
        aucs = [area_under_curve(runs[strategy][s]) for s in seeds]
        diffs = [area_under_curve(runs[strategy][s]) - random_auc[s] for s in seeds
                 if s in random_auc]
        reach = ", ".join(reach_text(runs[strategy][s], full) for s in seeds) if full else "-"
        lenient = [area_under_curve(runs[strategy][s], "entity_lenient") for s in seeds]
        sd = statistics.pstdev(aucs) if len(aucs) > 1 else 0.0
        diff = (f"{statistics.mean(diffs):+.4f} ({min(diffs):+.4f}, {max(diffs):+.4f})"
                if diffs else "")
        print(f"| {strategy} | {len(seeds)} | {statistics.mean(aucs):.4f} ({sd:.4f}) | {diff} "
              f"| {reach} | {statistics.mean(lenient):.4f} |")
    print_rounds(runs)
    print_reading(runs)
    print_effort(runs)


def print_effort(runs: dict[str, dict[int, list]]) -> None:
    """Mean estimated time per test note with each round's suggestions, as a share of
    annotating from scratch (``noteloop.core.effort``), for runs that recorded it."""
    rounds = sorted({p["round"] for seeds in runs.values() for ps in seeds.values() for p in ps
                     if "effort" in p})
    if not rounds:
        return
    print("\nAnnotator effort on the test notes, time with the suggestions / from scratch:\n")
    print("| strategy | " + " | ".join(f"round {r}" for r in rounds) + " |")
    print("|---|" + "---|" * len(rounds))
    for strategy in sorted(runs, key=lambda s: STRATEGIES.index(s)):
        cells = []
        for r in rounds:
            at = [p["effort"] for ps in runs[strategy].values() for p in ps
                  if p["round"] == r and "effort" in p]
            share = [e["seconds"] / e["scratch_seconds"] for e in at if e["scratch_seconds"]]
            cells.append(f"{statistics.mean(share):.1%}" if share else "-")
        print(f"| {strategy} | " + " | ".join(cells) + " |")


def print_reading(runs: dict[str, dict[int, list]]) -> None:
    """The area under strict F1 against words read, over the reading budget every run
    covers, and its paired difference with random: what an hour of reading buys."""
    parsed = {s: {seed: [SimulationPoint.from_dict(p) for p in points]
                  for seed, points in seeds.items()} for s, seeds in runs.items()}
    budget = common_reading([points for seeds in parsed.values() for points in seeds.values()])
    if budget is None:
        print("\nThe runs share no reading budget: no areas per word.")
        return
    lo, hi = budget
    print(f"\nPer word read: area under entity strict F1 over {lo:,}-{hi:,} words (the "
          "budget every run covers):\n")
    print("| strategy | seeds | AUC per word, mean (sd) | AUC per word - random, paired mean "
          "(min, max) |\n|---|---|---|---|")
    auc = {s: {seed: area_under_reading_curve(points, "entity_strict", lo, hi)
               for seed, points in seeds.items()} for s, seeds in parsed.items()}
    for strategy in sorted(auc, key=lambda s: STRATEGIES.index(s)):
        values = list(auc[strategy].values())
        diffs = [v - auc["random"][seed] for seed, v in auc[strategy].items()
                 if seed in auc.get("random", {})]
        sd = statistics.pstdev(values) if len(values) > 1 else 0.0
        diff = (f"{statistics.mean(diffs):+.4f} ({min(diffs):+.4f}, {max(diffs):+.4f})"
                if diffs else "")
        print(f"| {strategy} | {len(values)} | {statistics.mean(values):.4f} ({sd:.4f}) "
              f"| {diff} |")


def print_rounds(runs: dict[str, dict[int, list]]) -> None:
    """Mean strict F1 and mean tokens annotated per round: a strategy that picks short
    notes (cost-aware) buys less text per round, which the AUC over notes hides."""
    rounds = sorted({p["round"] for seeds in runs.values() for ps in seeds.values() for p in ps})
    print("\nMean entity strict F1 / thousands of tokens annotated, per round (notes):\n")
    first = next(iter(next(iter(runs.values())).values()))
    notes = {p["round"]: p["n_docs"] for p in first}
    print("| strategy | " + " | ".join(f"{notes.get(r, '?')}" for r in rounds) + " |")
    print("|---|" + "---|" * len(rounds))
    for strategy in sorted(runs, key=lambda s: STRATEGIES.index(s)):
        cells = []
        for r in rounds:
            at = [p for ps in runs[strategy].values() for p in ps if p["round"] == r]
            f1 = statistics.mean(p["entity"]["strict"]["f1"] for p in at)
            tokens = statistics.mean(p["n_tokens"] for p in at) / 1000
            cells.append(f"{f1:.3f} / {tokens:.1f}k")
        print(f"| {strategy} | " + " | ".join(cells) + " |")


def reach_text(points: list, full: float) -> str:
    """Notes to 90% of the full-pool F1, or "> N" when the run never got there."""
    reached = docs_to_reach(points, 0.9, full)
    return f"> {max(p['n_docs'] for p in points)}" if reached is None else str(reached)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["run", "table"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/noteloop-al"))
    parser.add_argument("--strategies", type=lambda s: s.split(","), default=list(STRATEGIES))
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")],
                        default=[0, 1, 2])
    parser.add_argument("--initial", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6, help="rounds, round 0 included")
    parser.add_argument("--epochs", type=int, default=0, help="0: the default rule")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="simulations side by side")
    args = parser.parse_args()
    {"run": cmd_run, "table": cmd_table}[args.what](args)


if __name__ == "__main__":
    main()
