"""Tests for pybt.space: sampling, perturbing and validating hyperparameter domains.

The central promise is that a perturbed (or sampled) value never leaves its domain; the
property tests check it over random bounds, values and factors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybt
from pybt.space import Choice, Domain, Fixed, IntUniform, LogUniform, Uniform, as_space

PROPERTY = settings(max_examples=150, deadline=None)

factors = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def uniform_bounds(draw: st.DrawFn) -> tuple[float, float]:
    low = draw(st.floats(min_value=-1e6, max_value=1e6))
    width = draw(st.floats(min_value=1e-3, max_value=1e6))
    return low, low + width


@st.composite
def log_bounds(draw: st.DrawFn) -> tuple[float, float]:
    low = draw(st.floats(min_value=1e-8, max_value=1e4))
    ratio = draw(st.floats(min_value=1.001, max_value=1e6))
    return low, low * ratio


@st.composite
def int_bounds(draw: st.DrawFn, positive: bool = False) -> tuple[int, int]:
    low = draw(st.integers(min_value=1 if positive else -1000, max_value=1000))
    return low, low + draw(st.integers(min_value=1, max_value=1000))


# ---- sampling ---------------------------------------------------------------------------------
@PROPERTY
@given(bounds=uniform_bounds(), seed=seeds)
def test_uniform_sample_and_resample_stay_in_bounds(bounds: tuple[float, float], seed: int) -> None:
    domain, rng = Uniform(*bounds), np.random.default_rng(seed)
    for value in (domain.sample(rng), domain.resample(rng)):
        assert bounds[0] <= value <= bounds[1]
        assert domain.contains(value)


@PROPERTY
@given(bounds=log_bounds(), seed=seeds)
def test_log_uniform_sample_stays_in_bounds(bounds: tuple[float, float], seed: int) -> None:
    domain, rng = LogUniform(*bounds), np.random.default_rng(seed)
    for value in (domain.sample(rng), domain.resample(rng)):
        assert bounds[0] <= value <= bounds[1]


@PROPERTY
@given(bounds=int_bounds(positive=True), log=st.booleans(), seed=seeds)
def test_int_uniform_sample_is_an_int_in_bounds(bounds: tuple[int, int], log: bool, seed: int) -> None:
    domain, rng = IntUniform(*bounds, log=log), np.random.default_rng(seed)
    value = domain.sample(rng)
    assert isinstance(value, int)
    assert bounds[0] <= value <= bounds[1]


def test_log_uniform_samples_are_uniform_in_log_space() -> None:
    rng = np.random.default_rng(0)
    values = np.array([LogUniform(1e-4, 1.0).sample(rng) for _ in range(4000)])
    # Half the log range lies below 1e-2; a plain uniform would put ~1 % there.
    assert 0.45 < np.mean(values < 1e-2) < 0.55


@pytest.mark.parametrize("log", [False, True])
def test_int_uniform_reaches_every_integer(log: bool) -> None:
    rng = np.random.default_rng(1)
    domain = IntUniform(1, 4, log=log)
    assert {domain.sample(rng) for _ in range(2000)} == {1, 2, 3, 4}


def test_choice_sample_reaches_every_option() -> None:
    rng = np.random.default_rng(2)
    assert {Choice(["a", "b", "c"]).sample(rng) for _ in range(300)} == {"a", "b", "c"}


# ---- perturbing -------------------------------------------------------------------------------
def test_uniform_and_log_uniform_perturb_multiply_by_the_factor() -> None:
    rng = np.random.default_rng(0)
    assert Uniform(0.0, 10.0).perturb(2.0, 1.5, rng) == pytest.approx(3.0)
    assert Uniform(0.0, 10.0).perturb(2.0, 0.5, rng) == pytest.approx(1.0)
    assert LogUniform(1e-4, 1.0).perturb(1e-2, 0.5, rng) == pytest.approx(5e-3)


def test_perturb_clips_at_the_bounds() -> None:
    rng = np.random.default_rng(0)
    assert Uniform(0.0, 10.0).perturb(8.0, 2.0, rng) == 10.0
    assert LogUniform(1e-3, 1.0).perturb(2e-3, 0.1, rng) == 1e-3
    assert IntUniform(0, 10).perturb(9, 3.0, rng) == 10


@PROPERTY
@given(bounds=uniform_bounds(), position=st.floats(0, 1), factor=factors, seed=seeds)
def test_uniform_perturb_never_leaves_bounds(
    bounds: tuple[float, float], position: float, factor: float, seed: int
) -> None:
    low, high = bounds
    domain = Uniform(low, high)
    value = min(high, max(low, low + position * (high - low)))
    moved = domain.perturb(value, factor, np.random.default_rng(seed))
    assert low <= moved <= high
    assert domain.contains(moved)
    assert moved == pytest.approx(min(high, max(low, value * factor)))


@PROPERTY
@given(bounds=log_bounds(), position=st.floats(0, 1), factor=factors, seed=seeds)
def test_log_uniform_perturb_never_leaves_bounds(
    bounds: tuple[float, float], position: float, factor: float, seed: int
) -> None:
    low, high = bounds
    domain = LogUniform(low, high)
    value = min(high, max(low, math.exp(math.log(low) + position * (math.log(high) - math.log(low)))))
    moved = domain.perturb(value, factor, np.random.default_rng(seed))
    assert low <= moved <= high
    assert domain.contains(moved)


@PROPERTY
@given(bounds=int_bounds(), data=st.data(), factor=factors, log=st.booleans(), seed=seeds)
def test_int_uniform_perturb_stays_in_bounds_and_moves(
    bounds: tuple[int, int], data: st.DataObject, factor: float, log: bool, seed: int
) -> None:
    low, high = bounds
    if log and low <= 0:
        low, high = 1, high - low + 1
    domain = IntUniform(low, high, log=log)
    value = data.draw(st.integers(low, high))
    moved = domain.perturb(value, factor, np.random.default_rng(seed))
    assert isinstance(moved, int)
    assert low <= moved <= high
    if factor != 1 and low < value < high:
        assert moved != value, "an interior integer must move by at least one"
    if factor > 1 and 0 <= value < high:
        assert moved > value
    if factor < 1 and value > max(low, 0):
        assert moved < value


@pytest.mark.parametrize(
    ("value", "factor", "expected"), [(1, 1.2, 2), (1, 0.8, 0), (0, 1.01, 1), (5, 0.99, 4)]
)
def test_int_uniform_moves_at_least_one(value: int, factor: float, expected: int) -> None:
    assert IntUniform(0, 10).perturb(value, factor, np.random.default_rng(0)) == expected


@PROPERTY
@given(size=st.integers(1, 8), data=st.data(), factor=factors, seed=seeds)
def test_ordered_choice_perturb_moves_to_a_neighbour(
    size: int, data: st.DataObject, factor: float, seed: int
) -> None:
    options = [f"option{i}" for i in range(size)]
    index = data.draw(st.integers(0, size - 1))
    moved = Choice(options, ordered=True).perturb(options[index], factor, np.random.default_rng(seed))
    step = 1 if factor > 1 else -1 if factor < 1 else 0
    assert moved == options[min(size - 1, max(0, index + step))]


@PROPERTY
@given(options=st.lists(st.integers(), min_size=1, max_size=8, unique=True), factor=factors, seed=seeds)
def test_unordered_choice_perturb_stays_an_option(options: list[int], factor: float, seed: int) -> None:
    domain = Choice(options)
    moved = domain.perturb(options[0], factor, np.random.default_rng(seed))
    assert moved in options
    assert domain.contains(moved)


def test_unordered_choice_perturb_resamples_any_option() -> None:
    rng = np.random.default_rng(3)
    domain = Choice(["a", "b", "c", "d"])
    assert {domain.perturb("a", 1.2, rng) for _ in range(200)} == {"a", "b", "c", "d"}


@PROPERTY
@given(value=st.one_of(st.integers(), st.text(), st.floats(allow_nan=False)), factor=factors, seed=seeds)
def test_fixed_never_changes(value: object, factor: float, seed: int) -> None:
    domain, rng = Fixed(value), np.random.default_rng(seed)
    assert domain.perturb(value, factor, rng) == value
    assert domain.sample(rng) == value
    assert domain.resample(rng) == value
    assert domain.contains(value)


# ---- validating -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "argument", "received"),
    [
        (lambda: Uniform(1.0, 1.0), "Uniform(low, high)", "(1.0, 1.0)"),
        (lambda: Uniform(2.0, 1.0), "Uniform(low, high)", "(2.0, 1.0)"),
        (lambda: LogUniform(0.0, 1.0), "LogUniform(low=...)", "0.0"),
        (lambda: LogUniform(-1.0, 1.0), "LogUniform(low=...)", "-1.0"),
        (lambda: LogUniform(1.0, 0.5), "LogUniform(low, high)", "(1.0, 0.5)"),
        (lambda: IntUniform(5, 5), "IntUniform(low, high)", "(5, 5)"),
        (lambda: IntUniform(0.5, 3), "IntUniform(low=...)", "0.5"),
        (lambda: IntUniform(0, 10, log=True), "IntUniform(low=..., log=True)", "0"),
        (lambda: Uniform("0", 1.0), "Uniform(low=...)", "'0'"),
        (lambda: Uniform(0.0, float("nan")), "Uniform(high=...)", "nan"),
        (lambda: Uniform(True, 2.0), "Uniform(low=...)", "True"),
        (lambda: Choice([]), "Choice(options=...)", "[]"),
        (lambda: Choice("abc"), "Choice(options=...)", "'abc'"),
        (lambda: Choice([1, 2, 1]), "Choice(options=...)", "[1, 2, 1]"),
    ],
)
def test_invalid_domains_raise_at_construction(build: object, argument: str, received: str) -> None:
    with pytest.raises(pybt.PyBTError) as caught:
        build()  # type: ignore[operator]
    assert argument in str(caught.value)
    assert f"received {received}" in str(caught.value)


def test_check_returns_a_value_inside_and_names_a_value_outside() -> None:
    domain = Uniform(0.0, 1.0)
    assert domain.check("lr", 0.5) == 0.5
    with pytest.raises(pybt.PyBTError, match=r"lr: .*received 2\.0"):
        domain.check("lr", 2.0)


def test_contains_rejects_wrong_types() -> None:
    assert not Uniform(0.0, 1.0).contains("0.5")
    assert not Uniform(0.0, 1.0).contains(True)
    assert not IntUniform(0, 3).contains(1.5)
    assert IntUniform(0, 3).contains(2)
    assert not Choice(["a"]).contains("b")


def test_as_space_turns_plain_values_into_fixed() -> None:
    space = as_space({"lr": LogUniform(1e-3, 1.0), "layers": 3})
    assert isinstance(space["lr"], LogUniform)
    assert isinstance(space["layers"], Fixed) and space["layers"].value == 3
    assert all(isinstance(domain, Domain) for domain in space.values())


@pytest.mark.parametrize("bad", [{}, [("lr", Uniform(0.0, 1.0))], {"": Uniform(0.0, 1.0)}])
def test_as_space_rejects_bad_spaces(bad: object) -> None:
    with pytest.raises(pybt.PyBTError, match="hyperparameters"):
        as_space(bad)  # type: ignore[arg-type]
