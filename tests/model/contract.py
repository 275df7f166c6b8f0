"""The ModelWrapper contract: what the trainer and every executor rely on from a wrapper.

Each wrapper's tests subclass :class:`ModelWrapperContract` and say how to build a small
template, its space and its data; every test here then runs against that wrapper. A new
wrapper passes these before it is tried in a trainer.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from pybt.model.base import ModelWrapper
from pybt.space import Domain


def states_equal(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray]) -> bool:
    return set(first) == set(second) and all(np.array_equal(first[k], second[k]) for k in first)


class ModelWrapperContract:
    """Subclass, implement the four builders, and set the flags that describe the wrapper."""

    #: Members spawned with different seeds start from different states.
    seeds_differ = True

    def make_template(self) -> ModelWrapper:
        raise NotImplementedError

    def space(self) -> dict[str, Domain]:
        raise NotImplementedError

    def fit_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def eval_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, Any]:
        """Values to train with: the first sample of the space, by default."""
        rng = np.random.default_rng(0)
        return {name: domain.sample(rng) for name, domain in self.space().items()}

    @pytest.fixture
    def template(self) -> ModelWrapper:
        template = self.make_template()
        template.prepare(self.space(), self.fit_args(), self.eval_args())
        return template

    def trained(self, template: ModelWrapper, seed: int = 1, epochs: int = 1) -> ModelWrapper:
        member = template.spawn(seed)
        member.fit(self.hyperparameters(), epochs, self.fit_args())
        return member

    # ---- the contract ----------------------------------------------------------------------------
    def test_checks_change_nothing(self) -> None:
        template = self.make_template()
        before = dict(vars(template))
        template.check_hyperparameters(self.space())
        template.check_args(self.fit_args(), self.eval_args())
        after = vars(template)
        assert set(after) == set(before)
        assert all(after[key] is before[key] for key in before), "check_* hooks must be pure"

    def test_fit_and_evaluate_return_float_metrics(self, template: ModelWrapper) -> None:
        member = template.spawn(0)
        train_metrics = member.fit(self.hyperparameters(), 1, self.fit_args())
        metrics = member.evaluate(self.eval_args())
        assert metrics, "evaluate returns at least one metric"
        for values in (train_metrics, metrics):
            assert all(isinstance(name, str) and type(value) is float for name, value in values.items())
        assert template.default_metric(metrics) in metrics

    def test_same_seed_same_member(self, template: ModelWrapper) -> None:
        assert states_equal(template.spawn(3).get_state(), template.spawn(3).get_state())
        if self.seeds_differ:
            assert not states_equal(template.spawn(3).get_state(), template.spawn(4).get_state())

    def test_state_is_a_dict_of_copied_arrays(self, template: ModelWrapper) -> None:
        member = self.trained(template)
        state = member.get_state()
        assert state and all(isinstance(key, str) for key in state)
        assert all(isinstance(value, np.ndarray) for value in state.values())
        kept = {key: value.copy() for key, value in state.items()}
        member.fit(self.hyperparameters(), 1, self.fit_args())
        assert states_equal(state, kept), "get_state hands out copies, not views of live weights"

    def test_a_state_moves_a_member_to_where_another_stands(self, template: ModelWrapper) -> None:
        donor, member = self.trained(template, seed=1, epochs=2), template.spawn(2)
        member.set_state(donor.get_state())
        assert states_equal(member.get_state(), donor.get_state())
        assert member.evaluate(self.eval_args()) == donor.evaluate(self.eval_args())

    def test_a_copy_trains_on_like_its_donor(self, template: ModelWrapper) -> None:
        # Weights, optimizer slots and counters all travel in the state. (Each member keeps its
        # own random stream, so a copy shuffles differently from its donor: subclasses give
        # fit_args that draw nothing random, so this compares what the state carries.)
        donor, member = self.trained(template, seed=1), template.spawn(2)
        member.set_state(donor.get_state())
        for trainee in (donor, member):
            trainee.fit(self.hyperparameters(), 1, self.fit_args())
        assert states_equal(member.get_state(), donor.get_state())

    def test_states_save_and_load_without_pickle(self, template: ModelWrapper) -> None:
        member = self.trained(template)
        buffer = io.BytesIO()
        np.savez(buffer, **member.get_state())
        buffer.seek(0)
        with np.load(buffer, allow_pickle=False) as archive:
            loaded = {key: archive[key] for key in archive.files}
        other = template.spawn(5)
        other.set_state(loaded)
        assert states_equal(other.get_state(), member.get_state())

    def test_the_template_and_members_travel_to_another_process(self, template: ModelWrapper) -> None:
        # Ray sends them with cloudpickle; the standard pickle is the stricter test.
        copy = pickle.loads(pickle.dumps(template))
        assert states_equal(copy.spawn(3).get_state(), template.spawn(3).get_state())
        member = self.trained(template)
        moved = pickle.loads(pickle.dumps(member))
        assert states_equal(moved.get_state(), member.get_state())

    def test_unwrap_gives_the_users_model(self, template: ModelWrapper) -> None:
        assert template.spawn(0).unwrap() is not None
