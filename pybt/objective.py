"""Which way is better: the one place that decides whether a metric is maximized or minimized.

A score is turned into a *fitness* (higher is always better) here and nowhere else; ranking,
"who is best now", "best ever" and the figures all compare fitness.

With ``mode=None`` the direction is read off the metric's name, from the explicit word lists
below (the name is split at anything that is not a letter or digit, so ``val_accuracy`` reads
as ``val`` + ``accuracy``). A name neither list classifies — ``latency``, ``wer`` — is
refused with an error asking for ``mode="min"`` or ``mode="max"``, as Keras's monitoring
callbacks do, instead of being maximized in silence.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pybt.errors import invalid_argument

MODES = ("max", "min")

#: Words in a metric name that mean lower is better.
LOWER_IS_BETTER = frozenset(
    {
        "loss", "error", "err", "mse", "mae", "mape", "msle", "rmse", "crossentropy", "hinge",
        "divergence", "kld", "perplexity", "regret", "cost", "wer", "cer", "nll", "distance",
    }
)  # fmt: skip
#: Words in a metric name that mean higher is better.
HIGHER_IS_BETTER = frozenset(
    {
        "accuracy", "acc", "auc", "score", "return", "returns", "reward", "rewards", "precision",
        "recall", "f1", "fbeta", "r2", "iou", "dice", "bleu", "rouge", "map", "ndcg", "fitness",
        "q", "top1", "top5", "likelihood", "psnr", "ssim",
    }
)  # fmt: skip
# Compound words: "categorical_crossentropy" splits fine, "logloss" or "topkaccuracy" does not.
_LOWER_SUFFIXES = ("loss", "error", "crossentropy")
_HIGHER_SUFFIXES = ("accuracy", "reward", "return")


def _direction(word: str) -> str | None:
    if word in LOWER_IS_BETTER or word.endswith(_LOWER_SUFFIXES):
        return "min"
    if word in HIGHER_IS_BETTER or word.endswith(_HIGHER_SUFFIXES):
        return "max"
    return None


def classify(metric: str) -> str | None:
    """``"min"`` or ``"max"`` as the metric's name reads, or None when it cannot tell.

    The last word that says something decides: ``accuracy_error`` is an error,
    ``neg_loss_reward`` a reward.
    """
    words = [word for word in re.split(r"[^a-z0-9]+", metric.lower()) if word]
    directions = [d for d in (_direction(word) for word in words) if d is not None]
    return directions[-1] if directions else None


def infer_mode(metric: str) -> str:
    """The mode for ``metric`` read off its name; a PyBTError when the name does not tell."""
    mode = classify(metric)
    if mode is None:
        raise invalid_argument(
            "mode",
            None,
            f"'min' or 'max' for the metric {metric!r}, whose name does not say which way is better",
            f"Pass mode='min' if a lower {metric} is better, or mode='max' if higher is. (PyBT reads "
            f"loss/error-like names as 'min' and accuracy/score/return-like names as 'max'.)",
        )
    return mode


def check_mode(mode: Any, argument: str = "mode") -> str | None:
    """``mode`` if it is ``"max"``, ``"min"`` or None."""
    if mode is not None and mode not in MODES:
        raise invalid_argument(argument, mode, "'max', 'min' or None (read off the metric's name)")
    return mode


def fitness(score: float | None, mode: str | None) -> float:
    """The score turned so that higher is better (``-inf`` for no score); ``None`` mode is max."""
    if score is None or not math.isfinite(score):
        return -math.inf
    return -score if mode == "min" else score
