"""The Trainer: checks its arguments, wires the parts of a run together, and runs the loop.

One loop serves every executor; the parts each own one job:

- :mod:`pybt.turns`: one turn of the loop (submit, record, decide, apply), and its state;
- :mod:`pybt.population`: the members and the policies' decisions;
- :mod:`pybt.runlog`: numbering records, handing them to the history, journal and callbacks;
- :mod:`pybt.checkpoint`: checkpoint cuts of the run folder, and resuming from them;
- :mod:`pybt.history`: the records, and who is best.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pybt import _validate
from pybt.callbacks.base import Callback, CallbackList, TrainResult
from pybt.callbacks.progress import ProgressBar
from pybt.checkpoint import Checkpoints
from pybt.errors import TrainingError
from pybt.executor.base import Executor
from pybt.executor.serial import SerialExecutor
from pybt.history import HistoryView, RunHistory
from pybt.model.base import ModelWrapper, member_with_state
from pybt.objective import infer_mode
from pybt.policy.done import DoneStrategy, RunStatus, StopAfter
from pybt.policy.exploit import ExploitStrategy, Truncation
from pybt.policy.explore import ExploreStrategy, Perturb
from pybt.policy.ready import ReadyAfter, ReadyStrategy
from pybt.population import Policies, Population
from pybt.results import RunResults
from pybt.runlog import RunLog
from pybt.settings import (
    check_arguments,
    check_metric,
    check_population_fits,
    check_space,
    parse_step_args,
    run_description,
)
from pybt.space import Domain, as_space
from pybt.store import RunStore
from pybt.turns import Turns
from pybt.winner import BestKeeper, check_result, choose_winner

DEFAULT_STOP = StopAfter(20)
DEFAULT_READY = ReadyAfter(4)
DEFAULT_EXPLOIT = Truncation()
DEFAULT_EXPLORE = Perturb()


class Trainer(RunResults):
    """Trains a population of members of ``model`` with Population Based Training.

    ``train()`` returns ``(best_model, best_score)``: the best member's model as the user's own
    type (``keras.Model`` for Keras) and its score. ``history``, ``lineage()`` and
    ``schedule()`` tell how it got there; ``run_history`` answers everything else.
    """

    def __init__(
        self,
        model: ModelWrapper,
        population_size: int = 10,
        hyperparameters: Mapping[str, Domain | Any] | None = None,
        initial_hyperparameters: Sequence[Mapping[str, Any]] | None = None,
        stopping_criteria: DoneStrategy = DEFAULT_STOP,
        ready_strategy: ReadyStrategy = DEFAULT_READY,
        exploit_strategy: ExploitStrategy | None = DEFAULT_EXPLOIT,
        explore_strategy: ExploreStrategy | None = DEFAULT_EXPLORE,
        step_args: Mapping[str, Any] | None = None,
        eval_args: Mapping[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        executor: Executor | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        verbose: int = 1,
        callbacks: Sequence[Callback] | None = None,
        result: str = "final",
    ) -> None:
        callbacks = list(callbacks or [])
        check_arguments(
            model, population_size, stopping_criteria, ready_strategy, exploit_strategy, explore_strategy,
            metric, mode, executor, run_dir, seed, callbacks,
        )  # fmt: skip
        self.result = check_result(result)
        self.model = model
        self.population_size = population_size
        self.stopping_criteria = stopping_criteria
        self.ready_strategy = ready_strategy
        self.exploit_strategy = exploit_strategy
        self.explore_strategy = explore_strategy
        self.epochs_per_step, self.fit_args = parse_step_args(step_args)
        self.eval_args = _validate.check_mapping("eval_args", eval_args, "{'x': x_val, 'y': y_val}")
        self.space: dict[str, Domain] = (
            model.default_space() if hyperparameters is None else as_space(hyperparameters)
        )
        model.prepare(self.space, self.fit_args, self.eval_args)
        resolved_metric = check_metric(model, metric)
        check_space(self.space, initial_hyperparameters, journaled=run_dir is not None)
        self.executor: Executor = executor if executor is not None else SerialExecutor()
        check_population_fits(population_size, model, self.executor.members_in_process)
        self._owns_executor = executor is None
        self.verbose = verbose
        # A metric named up front has its direction known up front (or refused now).
        self.run_history = RunHistory(
            metric=resolved_metric, mode=mode or (infer_mode(resolved_metric) if resolved_metric else None)
        )

        # A resumed run continues with the seed it started with, drawn or given.
        store = RunStore(run_dir) if run_dir is not None else None
        self.run_dir = None if store is None else store.path
        if seed is None and store is not None:
            seed = store.seed()
        policies = Policies(stopping_criteria, ready_strategy, exploit_strategy, explore_strategy)
        given = model.given_hyperparameters(self.space)
        self._population, self.seed = Population.seeded(
            seed,
            population_size,
            self.space,
            given,
            initial_hyperparameters,
            policies,
            HistoryView(self.run_history),
        )
        if store is not None:
            config = run_description(
                model, population_size, self.space, initial_hyperparameters, policies.as_tuple(),
                self.epochs_per_step, metric, mode, self.seed, result,
            )  # fmt: skip
            members = self._population.members.values()
            store.begin(config, [(m.id, m.seed, m.hyperparameters) for m in members])

        progress = [ProgressBar(per_member=verbose > 1)] if verbose > 0 else []
        self.callbacks: list[Callback] = progress + callbacks
        self._log = RunLog(self.run_history, store, CallbackList(self.callbacks, self))
        self._keeper = BestKeeper(self.run_history, self.executor) if self.result == "best_ever" else None
        self._checkpoints = (
            Checkpoints(store, self.executor, self._population, self._log, self._keeper) if store else None
        )
        self._seconds = 0.0  # wall time of earlier train() calls
        self._since = time.perf_counter()  # when this train() call started
        #: "not started", "running" (inside train()), "interrupted" or "finished" (what reports show)
        self.status = "not started"
        self._started = False
        # How many epochs a member may be ahead of the slowest live member when it starts a step.
        max_lead = max(self.epochs_per_step, getattr(ready_strategy, "epochs", 0))
        self._turns = Turns(
            model, self.executor, self._population, self._log, self._checkpoints, self._keeper,
            self.epochs_per_step, max_lead, self._run_is_done,
        )  # fmt: skip

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> tuple[Any, float]:
        """Run PBT until every member is done; return ``(best_model, best_score)``.

        With a ``run_dir`` that holds an unfinished run, training continues from its newest
        checkpoint; a finished run returns its result without training. After an interrupt (or
        any exception), calling ``train()`` again goes on exactly where this one stopped.
        """
        callbacks = self._log.callbacks
        result = None
        self.status = "running"
        try:
            with self._writing():
                if not self._started:
                    self._start()
                callbacks.train_begin()
                self._since = time.perf_counter()
                try:
                    while self._turns.turn():
                        pass
                finally:
                    self._seconds += time.perf_counter() - self._since  # a Budget counts every call
                result = self._finish()
        except BaseException as error:
            self.status = "interrupted"
            if isinstance(error, KeyboardInterrupt):
                print(self._how_to_go_on(), file=sys.stderr, flush=True)
            callbacks.train_end(None)
            raise  # an executor of the trainer's own stays open, for train() to go on
        self.status = "finished"
        try:
            callbacks.train_end(result)  # before closing: a callback may still export the winner
        finally:
            # The user's executor stays open for their next trainer, holding no actors meanwhile.
            if self._owns_executor:
                self.executor.close()
            else:
                self.executor.release()
        return result.model, result.score

    def _run_is_done(self) -> bool:
        """The stopping rule's word on the whole run (a target score, a time budget)."""
        seconds = self._seconds + time.perf_counter() - self._since
        return self.stopping_criteria.run_is_done(RunStatus(HistoryView(self.run_history), seconds))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The run folder's lock and writer for this train() (a finished run only reads).

        Between two train() calls the lock is free: if another trainer wrote to the folder
        meanwhile, this one's records are no longer the journal's, and it refuses to go on."""
        store = self._log.store
        if store is None:
            yield
            return
        with contextlib.nullcontext() if store.is_complete() else store.writing():
            cut_at = self._checkpoints._cut_at if self._checkpoints is not None else None
            journal = (store.last_sequence(), store.newest_cut_sequence())
            if self._started and journal != (self._log.sequence, cut_at):
                raise TrainingError(
                    f"run_dir: {store.path} was written by another trainer since this one stopped (its "
                    f"journal ends at record {journal[0]}, this trainer's at {self._log.sequence}). Create "
                    f"a new Trainer on the same run_dir: it resumes from the folder."
                )
            yield

    def _how_to_go_on(self) -> str:
        store = self._log.store
        again = f"; or, in a new process, the same run_dir={str(store.path)!r} resumes" if store else ""
        return f"pybt: interrupted. Call trainer.train() again to go on where it stopped{again}."

    def _start(self) -> None:
        self.executor.start(self.model, self.fit_args, self.eval_args)
        for member in self._population.members.values():
            self.executor.place(member.id, member.seed)
        if self._checkpoints is not None:
            self._checkpoints.resume()
        self._started = True

    def export(self, path: str | os.PathLike[str], member: int | None = None) -> Path:
        """Save ``member`` (default: the best now) in its framework's format at ``path`` (the
        suffix is the framework's: ``.keras``, ``.pt``, ``.npz``); the path written."""
        best = self.run_history.resolve(self._member_id(member))
        if best is None:
            raise TrainingError("No member has a score: train() has not completed a step yet.")
        seed = self._population.members[best.member].seed
        wrapper = member_with_state(self.model, seed, self.executor.get_state(best.member))
        return wrapper.export(path)

    def _finish(self) -> TrainResult:
        """The winner (see :mod:`pybt.winner`), written to the run folder with its export."""
        seeds = {member.id: member.seed for member in self._population.members.values()}
        winner = choose_winner(self.run_history, self._keeper, self.executor, self.model, seeds)
        if self._checkpoints is not None and not self._checkpoints.store.finished:
            state, member = winner.weights(self.executor, self.model, seeds)
            self._checkpoints.finish(winner.standing, state, member, winner.sequence)
        best = winner.standing
        return TrainResult(winner.model, float(best.score), best.member, best.epoch)
