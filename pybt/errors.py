"""The errors PyBT raises at its users, and the helpers that word them alike.

Every user-facing error derives from :class:`PyBTError`, and each also derives from the
builtin a Python programmer would catch for it (``ValueError`` for a bad argument,
``ImportError`` for a missing extra, ``RuntimeError`` for a run that cannot go on).
"""

from __future__ import annotations

import traceback
from typing import Any


class PyBTError(Exception):
    """Base class of every error PyBT raises on purpose."""


class InvalidArgumentError(PyBTError, ValueError):
    """An argument has a value PyBT cannot use."""


class MissingDependencyError(PyBTError, ImportError):
    """An optional dependency (a pip extra) is not installed."""


class TrainingError(PyBTError, RuntimeError):
    """The run cannot go on (for instance every member failed)."""


class CallbackError(PyBTError, RuntimeError):
    """A callback raised, which stops the run (the callback's error is the cause)."""


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid_argument(name: str, received: Any, expected: str, fix: str | None = None) -> InvalidArgumentError:
    """An error that names the argument, the value received, what was expected and the fix."""
    message = f"{name}: expected {expected}, received {_short(received)}."
    if fix:
        message += f" {fix}"
    return InvalidArgumentError(message)


def missing_extra(module: str, extra: str) -> MissingDependencyError:
    """The error for an optional framework that is not installed."""
    return MissingDependencyError(
        f"{module} is not installed, and this part of PyBT needs it. "
        f"Install it with: pip install 'pybt[{extra}]'"
    )


def describe_exception(error: BaseException) -> str:
    """``"KindOfError: message"`` as Python prints an exception's last line (notes included)."""
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
