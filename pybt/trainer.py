"""The Trainer: checks its arguments, wires the parts of a run together, and runs the loop.

One loop serves every executor. Each turn submits every idle live member, takes the steps the
executor reports finished (a whole round in process, whatever has finished on Ray), records
them through the run log, asks the population what each finished member does next, and
carries the decisions out through the executor. The parts each own one job:

- :mod:`pybt.population`: the members and the policies' decisions;
- :mod:`pybt.runlog`: numbering records, handing them to the history, journal and callbacks;
- :mod:`pybt.checkpoint`: checkpoint cuts of the run folder, and resuming from them;
- :mod:`pybt.history`: the records, and who is best.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pybt import _validate
from pybt.callbacks.base import Callback, CallbackList, TrainResult
from pybt.callbacks.progress import ProgressBar
from pybt.checkpoint import Checkpoints
from pybt.errors import TrainingError, invalid_argument
from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor
from pybt.history import ExploitRecord, FailureRecord, RunHistory, StepRecord
from pybt.lineage import ScheduleEntry, Segment
from pybt.model.base import ModelWrapper
from pybt.objective import infer_mode
from pybt.policy.done import DoneStrategy, StopAfter
from pybt.policy.exploit import ExploitStrategy, Truncation
from pybt.policy.explore import ExploreStrategy, Perturb
from pybt.policy.ready import ReadyAfter, ReadyStrategy
from pybt.population import Decision, Exploit, Policies, Population, Wait, starting_hyperparameters
from pybt.runlog import RunLog
from pybt.scoring import score_step
from pybt.settings import check_arguments, parse_step_args, run_description
from pybt.space import Domain, as_space
from pybt.store import RunStore

logger = logging.getLogger(__name__)

DEFAULT_STOP = StopAfter(20)
DEFAULT_READY = ReadyAfter(4)
DEFAULT_EXPLOIT = Truncation()
DEFAULT_EXPLORE = Perturb()
_PLOTS = ("scores", "hyperparameters", "lineage", "schedule")


class Trainer:
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
    ) -> None:
        callbacks = list(callbacks or [])
        check_arguments(
            model, population_size, stopping_criteria, ready_strategy, exploit_strategy, explore_strategy,
            metric, mode, executor, run_dir, seed, callbacks,
        )  # fmt: skip
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
        self.executor: Executor = executor if executor is not None else SerialExecutor()
        self._owns_executor = executor is None
        self.verbose = verbose
        # A metric named up front has its direction known up front (or refused now).
        self.run_history = RunHistory(metric=metric, mode=mode or (infer_mode(metric) if metric else None))

        # A resumed run continues with the seed it started with, drawn or given.
        store = RunStore(run_dir) if run_dir is not None else None
        if seed is None and store is not None and store.config is not None:
            seed = store.config["seed"]
        seed_sequence = np.random.SeedSequence(seed)
        self.seed: int = int(seed_sequence.entropy)  # type: ignore[arg-type]
        policy_seed, *member_seeds = seed_sequence.spawn(population_size + 1)
        rng = np.random.default_rng(policy_seed)
        given = model.given_hyperparameters(self.space)
        starting = starting_hyperparameters(self.space, population_size, given, initial_hyperparameters, rng)
        seeds = [int(s.generate_state(1)[0]) for s in member_seeds]
        policies = Policies(stopping_criteria, ready_strategy, exploit_strategy, explore_strategy)
        self._population = Population.create(population_size, seeds, starting, policies, self.space, rng)
        if store is not None:
            config = run_description(
                model, population_size, self.space, initial_hyperparameters, policies.as_tuple(),
                self.epochs_per_step, metric, mode, self.seed,
            )  # fmt: skip
            members = self._population.members.values()
            store.begin(config, [(m.id, m.seed, m.hyperparameters) for m in members])

        self.callbacks: list[Callback] = ([ProgressBar()] if verbose > 0 else []) + callbacks
        self._log = RunLog(self.run_history, store, CallbackList(self.callbacks, self))
        self._checkpoints = Checkpoints(store, self.executor, self._population, self._log) if store else None
        self._running: set[int] = set()  # members with a step submitted and not yet reported
        self._waiting: set[int] = set()  # failed members waiting for a healthy donor
        self._started = False
        self._last_exception: BaseException | None = None
        # How many epochs a member may be ahead of the slowest live member when it starts a step.
        self._max_lead = max(self.epochs_per_step, getattr(ready_strategy, "epochs", 0))

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> tuple[Any, float]:
        """Run PBT until every member is done; return ``(best_model, best_score)``.

        With a ``run_dir`` that holds an unfinished run, training continues from its newest
        checkpoint; a finished run returns its result without training.
        """
        callbacks = self._log.callbacks
        try:
            if not self._started:
                self._start()
            callbacks.train_begin()
            while self._turn():
                pass
            result = self._finish()
        except BaseException:
            callbacks.train_end(None)
            raise
        finally:
            if self._owns_executor:
                self.executor.close()
        callbacks.train_end(result)
        return result.model, result.score

    def _start(self) -> None:
        self.executor.start(self.model, self.fit_args, self.eval_args)
        for member in self._population.members.values():
            self.executor.place(member.id, member.seed)
        if self._checkpoints is not None:
            self._checkpoints.resume()
        self._started = True

    def _turn(self) -> bool:
        """Submit idle members, take the finished steps, decide for them; False when all are done."""
        if not (self._checkpoints is not None and self._checkpoints.draining):
            for member in self._population.due(self._running | self._waiting, self._max_lead):
                self.executor.submit(member.id, dict(member.hyperparameters), self._step_epochs(member.epoch))
                self._running.add(member.id)
        if not self._running:
            return False
        if self.executor.pending < len(self._running):
            # Steps the trainer waits for that the executor no longer holds (an earlier
            # train() was interrupted, and the executor was closed): waiting would never end.
            raise TrainingError(
                f"Members {sorted(self._running)} wait for steps the executor no longer runs "
                f"(an earlier train() was interrupted). Create a new Trainer; with run_dir= it "
                f"resumes from the last checkpoint."
            )
        finished = []
        for result in self.executor.completed():
            self._running.discard(result.member)
            self._record(result)
            finished.append(result.member)
        self._apply(self._population.decide(finished + sorted(self._waiting), self._running))
        if self._checkpoints is not None:
            self._checkpoints.after_turn(self._running)
        return True

    def _step_epochs(self, epoch: int) -> int:
        """``epochs_per_step``, or fewer for the last step, so no member trains past the stop."""
        limit = self.stopping_criteria.max_epochs
        if limit is not None and 0 < limit - epoch < self.epochs_per_step:
            return limit - epoch
        return self.epochs_per_step

    def _record(self, result: StepResult) -> None:
        member = self._population.members[result.member]
        metrics, score, error = score_step(result, self.model, self.run_history)
        self._changed(member.id)
        if error is not None or score is None:
            self._population.failed(member.id)
            self._last_exception = result.exception
            logger.warning("member %d failed at epoch %d: %s", member.id, member.epoch, error)
            self._log.failure(member.id, member.epoch, member.hyperparameters, str(error))
            return
        fitness = self.run_history.fitness(score)
        self._population.stepped(member.id, result.epochs, score, fitness, metrics)
        self._log.step(member.id, member.epoch, member.hyperparameters, metrics, score, result.seconds)

    def _apply(self, decisions: Sequence[Decision]) -> None:
        """Carry out the population's decisions: copy states, record exploits, update members."""
        copies = [decision for decision in decisions if isinstance(decision, Exploit)]
        if copies:
            # One call, so every copy reads its donor's state from before this decision.
            self.executor.copy_states([(decision.donor.id, decision.member) for decision in copies])
        for decision in decisions:
            if isinstance(decision, Wait):
                self._no_donor_for(decision.member)
                continue
            if isinstance(decision, Exploit):
                member, donor = self._population.members[decision.member], decision.donor
                self._waiting.discard(member.id)
                self._changed(member.id)
                logger.info(
                    "member %d copied member %d at epoch %d (%s)",
                    member.id,
                    donor.id,
                    donor.epoch,
                    decision.reason,
                )
                self._log.exploit(
                    member.id, donor.id, donor.epoch, member.epoch, member.hyperparameters,
                    decision.hyperparameters, decision.reason,
                )  # fmt: skip
            self._population.apply(decision)

    def _no_donor_for(self, member_id: int) -> None:
        """No healthy member to copy: wait for one still training, or give up if none is."""
        if self._running:
            self._waiting.add(member_id)
            return
        failures = self.run_history.failures
        last = failures[-1].error if failures else "unknown"
        raise TrainingError(
            f"Every member failed by epoch {self._population.members[member_id].epoch}, so no member is "
            f"left to copy. The last error was: {last.rstrip('.')}. Fix the training code or narrow the "
            f"hyperparameter space (trainer.failures lists every failed step)."
        ) from self._last_exception

    def _changed(self, member_id: int) -> None:
        if self._checkpoints is not None:
            self._checkpoints.changed.add(member_id)

    def _finish(self) -> TrainResult:
        best = self.run_history.best()
        if best is None:
            raise TrainingError("No member has a score: no step has completed.")
        if self._checkpoints is not None:
            self._checkpoints.finish(best.member)
        return TrainResult(self.executor.model(best.member), float(best.score), best.member, best.epoch)

    # ---- results ------------------------------------------------------------------------------
    @property
    def metric(self) -> str | None:
        """The scored metric (known once the first step is evaluated, unless named)."""
        return self.run_history.metric

    @property
    def mode(self) -> str | None:
        """``"max"`` or ``"min"``: which way the score is better."""
        return self.run_history.mode

    @property
    def history(self) -> list[StepRecord]:
        """One record per completed member-step, in the order they were made."""
        return list(self.run_history.steps)

    @property
    def exploits(self) -> list[ExploitRecord]:
        """One record per exploit (and per failed member replaced), in order."""
        return list(self.run_history.exploits)

    @property
    def failures(self) -> list[FailureRecord]:
        """One record per failed step, with the error."""
        return list(self.run_history.failures)

    @property
    def best_member(self) -> int:
        """The id of the member with the best score now (what ``train()`` returns)."""
        best = self.run_history.best()
        if best is None:
            raise TrainingError("No member has a score: train() has not completed a step yet.")
        return best.member

    def lineage(self, member_id: int | None = None) -> list[Segment]:
        """The members whose training made ``member_id``'s weights (default: the best), oldest first."""
        return self.run_history.lineage(self._member_id(member_id))

    def schedule(self, member_id: int | None = None) -> list[ScheduleEntry]:
        """The hyperparameters, epoch by epoch, that trained ``member_id`` (default: the best)."""
        return self.run_history.schedule(self._member_id(member_id))

    def history_frame(self) -> Any:
        """``history`` as a pandas DataFrame (hyperparameters as ``hp_*``, metrics as ``metric_*``)."""
        return self.run_history.frame()

    def plot(self, what: str = "scores", member: int | None = None) -> Any:
        """A matplotlib Figure of the run so far: ``"scores"`` of every member over epochs,
        ``"hyperparameters"`` over epochs, the ``"lineage"`` or the ``"schedule"`` of
        ``member`` (default: the best). Needs ``pip install 'pybt[plot]'``."""
        if what not in _PLOTS:
            raise invalid_argument("what", what, "'scores', 'hyperparameters', 'lineage' or 'schedule'")
        from pybt import report

        draw = getattr(report, f"plot_{what}")
        if what in ("lineage", "schedule"):
            return draw(self.run_history, self._member_id(member))
        return draw(self.run_history)

    def _member_id(self, member_id: int | None) -> int | None:
        if member_id is not None and member_id not in self._population.members:
            raise invalid_argument("member_id", member_id, f"a member id in 0..{self.population_size - 1}")
        return member_id
