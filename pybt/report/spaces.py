"""Reading a run's hyperparameter space for the report: which axis a hyperparameter gets, the
order of its columns and panels, and a domain in words.

A space reaches the report in one of two forms: the Trainer's domains
(``{"lr": LogUniform(1e-4, 1.0)}``), or a run folder's configuration, where
:func:`pybt.store.describe` recorded each domain as a dict
(``{"lr": {"type": "pybt.space.LogUniform", "high": 1.0, "low": 0.0001}}``). Anything else (a
repr, None) is no space: the report then falls back on the values the records hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pybt.errors import invalid_argument
from pybt.space import Choice, Domain, Fixed, IntUniform, LogUniform, Uniform

# The recorded ``type`` of PyBT's own domains (a user's subclass records its own type, and is
# read by its values like an unknown domain).
_RECORDED = {f"pybt.space.{kind.__name__}": kind for kind in (Choice, Fixed, IntUniform, LogUniform, Uniform)}
# Arguments shown first, in the order the domains take them; the rest follow by name.
_FIRST_ARGUMENTS = ("low", "high", "options", "value")


def space_of(value: Any) -> dict[str, Any] | None:
    """``value`` as ``{name: domain or its description}``, or None when it is not a space."""
    if isinstance(value, Mapping) and all(isinstance(name, str) for name in value):
        return dict(value)
    return None


def check_space(space: Any) -> dict[str, Any] | None:
    """``space`` as :func:`space_of` reads it; a PyBTError when it is given and not a space."""
    if space is None:
        return None
    found = space_of(space)
    if found is None:
        raise invalid_argument(
            "space",
            space,
            "a dict {name: Domain}, or the 'space' of a run's recorded configuration",
            "Pass the Trainer's hyperparameters or pybt.load_run(run_dir).config['space'].",
        )
    return found


def _kind(domain: Any) -> type | None:
    """The PyBT domain class ``domain`` is (an instance or a recorded description), or None."""
    if isinstance(domain, Domain):
        # Subclasses count as their PyBT base: a LogUniform subclass still samples in log space.
        return next((kind for kind in _RECORDED.values() if isinstance(domain, kind)), None)
    if isinstance(domain, Mapping):
        return _RECORDED.get(str(domain.get("type")))
    return None


def _argument(domain: Any, name: str, default: Any = None) -> Any:
    if isinstance(domain, Mapping):
        return domain.get(name, default)
    return getattr(domain, name, default)


def domain_scale(domain: Any) -> str | None:
    """``"log"``, ``"linear"`` or ``"category"`` as ``domain`` samples; None when it cannot tell.

    :class:`~pybt.space.LogUniform` and ``IntUniform(log=True)`` are log-scaled, ``Uniform`` and
    ``IntUniform`` linear, ``Choice`` a category; a ``Fixed`` value or an unknown domain says
    nothing, so its values decide.
    """
    kind = _kind(domain)
    if kind is LogUniform:  # before Uniform: LogUniform subclasses it
        return "log"
    if kind is IntUniform:
        return "log" if _argument(domain, "log", False) else "linear"
    if kind is Uniform:
        return "linear"
    if kind is Choice:
        return "category"
    return None


def domain_options(domain: Any) -> list[Any] | None:
    """A ``Choice``'s options in the order it was given, or None for any other domain."""
    if _kind(domain) is not Choice:
        return None
    options = _argument(domain, "options")
    return list(options) if isinstance(options, (list, tuple)) else None


def domain_of(space: Mapping[str, Any] | None, name: str) -> Any:
    """``name``'s domain (or description) in ``space``, or None."""
    return None if space is None else space.get(name)


def ordered_names(names: Iterable[str], space: Mapping[str, Any] | None) -> list[str]:
    """``names`` in the space's order; names the space lacks follow in the order given.

    Records read from a run folder written before the journal kept key order have their
    hyperparameters sorted by name, while records made since keep the space's order: ordering
    by the space keeps a schedule's columns where they were across a resume.
    """
    given = list(dict.fromkeys(names))
    if not space:
        return given
    present = set(given)
    return [name for name in space if name in present] + [name for name in given if name not in space]


def domain_text(domain: Any) -> str:
    """A domain in words: ``LogUniform(0.0001, 0.1)``, as the Trainer was given it."""
    if isinstance(domain, Domain):
        return repr(domain)
    if not isinstance(domain, Mapping) or "type" not in domain:
        return value_text(domain)
    kind = _kind(domain)
    name = str(domain["type"]).rsplit(".", 1)[-1]
    arguments = {key: value for key, value in domain.items() if key != "type"}
    positional = [key for key in _FIRST_ARGUMENTS if key in arguments] if kind is not None else []
    words = [value_text(arguments[key], nested=True) for key in positional]
    for key in sorted(set(arguments) - set(positional)):
        if kind is not None and arguments[key] is False:  # log=False, ordered=False: the defaults
            continue
        words.append(f"{key}={value_text(arguments[key], nested=True)}")
    return f"{name}({', '.join(words)})"


def value_text(value: Any, nested: bool = False) -> str:
    """A configuration value in words: recorded objects as ``Name(arg=...)``, numbers to 6
    digits, text as it is (quoted inside a list or an object's arguments, as Python shows it)."""
    if value is None:
        return "None" if nested else "none"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value) if nested else value
    if isinstance(value, Mapping):
        if "type" in value and isinstance(value["type"], str):
            return domain_text(value)
        items = (f"{value_text(key, True)}: {value_text(item, True)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(item, True) for item in value) + "]"
    return str(value)


def space_text(space: Mapping[str, Any]) -> str:
    """One line per hyperparameter: ``name: Domain(...)``."""
    return "\n".join(f"{name}: {domain_text(domain)}" for name, domain in space.items())
