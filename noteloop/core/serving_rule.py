"""Whether a newly trained model version serves, by the project's ``model_rule``.

Pure: it reads the two versions' stored metrics (``metrics["evaluation"]`` as
:meth:`noteloop.core.metrics.Evaluation.to_dict` writes it, ``metrics["tested_on"]`` the
sorted test note ids) and returns the decision with a sentence saying why, which the
version keeps as its verdict. The database glue (:mod:`noteloop.usecases.modeling`) does the rest.

The rules:

- ``newest``: the new version always serves;
- ``manual``: it never does (a lead chooses), unless nothing serves yet;
- ``ci``: it serves unless its entity strict F1 is below the lower end of the serving
  version's 95% bootstrap interval on the same test notes: worse beyond the test set's
  noise. Scores on other test notes, or none, cannot be compared: the new version serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noteloop.core.settings import MODEL_RULES

WHERE_TO_SERVE = "a lead can serve it on the Model page"


@dataclass(frozen=True)
class Scores:
    """What the rule reads of a version: its name, entity strict F1 and its 95% interval
    (None when not evaluated, or evaluated without a bootstrap), and its test note ids."""

    name: str
    f1: float | None
    ci: tuple[float, float] | None
    tested_on: tuple[str, ...]

    @classmethod
    def from_metrics(cls, name: str, metrics: Mapping[str, Any] | None) -> Scores:
        """The scores stored in a model version's ``metrics``."""
        metrics = metrics or {}
        ev = metrics.get("evaluation") or {}
        f1 = ev.get("entity", {}).get("strict", {}).get("f1")
        ci = ev.get("ci", {}).get("entity_strict")
        return cls(
            name,
            None if f1 is None else float(f1),
            None if not ci else (float(ci[0]), float(ci[1])),
            tuple(metrics.get("tested_on") or ()),
        )


@dataclass(frozen=True)
class Decision:
    """Whether the new version serves, and why (its verdict, shown beside it)."""

    serves: bool
    verdict: str


def decide(rule: str, new: Scores, serving: Scores | None) -> Decision:
    """Whether ``new`` replaces ``serving`` (None: nothing serves yet) under ``rule``.

    Raises:
        ValueError: ``rule`` is not one of ``MODEL_RULES``.
    """
    if rule not in MODEL_RULES:
        raise ValueError(f"`model_rule` must be one of {', '.join(MODEL_RULES)}, got {rule!r}")
    if serving is None:
        return Decision(True, "serves: the project's first trained version")
    if rule == "newest":
        return Decision(
            True, f"serves: the project's rule is 'newest' (it replaced {serving.name})"
        )
    if rule == "manual":
        return Decision(
            False,
            f"candidate: the project's rule is 'manual' and {serving.name} serves; "
            f"{WHERE_TO_SERVE}",
        )
    return _by_interval(new, serving)


def _by_interval(new: Scores, serving: Scores) -> Decision:
    old = serving.name
    if new.f1 is None:
        return Decision(True, f"serves: it has no test score to compare with {old}'s")
    if serving.f1 is None or serving.ci is None:
        return Decision(True, f"serves: {old} has no test score with an interval to compare with")
    if new.tested_on != serving.tested_on:
        return Decision(
            True,
            f"serves: it was tested on other test notes than {old} ({len(new.tested_on)} "
            f"against {len(serving.tested_on)}), so their scores do not compare",
        )
    low, high = serving.ci
    n = len(new.tested_on)
    where = f"{old}'s 95% interval [{low:.3f}, {high:.3f}] on the same {n} test notes"
    if new.f1 < low:
        return Decision(
            False, f"candidate: entity strict F1 {new.f1:.3f} is below {where}; {WHERE_TO_SERVE}"
        )
    return Decision(True, f"serves: entity strict F1 {new.f1:.3f} is not below {where}")
