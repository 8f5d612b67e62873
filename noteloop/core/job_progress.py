"""Where each phase of a job sits on its progress bar (0 to 1), in one table.

A training job trains (the steps, then evaluating, then publishing the version) and, when
the new version serves, predicts the pool in chunks and ranks the queue; a predict job only
predicts and ranks. The worker writes these shares with the job's phase; the Model page
draws them.
"""

from __future__ import annotations

# Training: its steps' "progress" events (0 to 1) are drawn from the first to the second.
TRAIN_STEPS = (0.0, 0.56)
EVALUATING = 0.56
PUBLISHING = 0.63
# After a round whose version serves, the pool's suggestions; a predict job starts at 0.
PREDICT_AFTER_TRAINING = 0.75
PREDICT_ONLY = 0.0
PREDICT_END = 0.95
RANKING = 0.97
DONE = 1.0


def training_step(fraction: float) -> float:
    """The bar's position ``fraction`` (0 to 1) of the way through the training steps."""
    start, end = TRAIN_STEPS
    return start + (end - start) * fraction


def predicting(start: float, fraction: float) -> float:
    """The bar's position ``fraction`` of the way through predicting the pool, which
    began at ``start``."""
    return start + (PREDICT_END - start) * fraction
