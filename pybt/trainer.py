"""The PBT loop: step members through an executor, record, ask the policies, copy state.

One loop serves both executors. Each turn submits every idle live member, takes the steps
the executor reports finished (a whole round in process, whatever has finished on Ray),
records them, and then decides for those members: a done member stops, a failed member
is replaced by exploiting a healthy one, a ready member may exploit and explore.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pybt.errors import PyBTError, TrainingError, invalid_argument
from pybt.executor.base import Executor, StepResult
from pybt.executor.serial import SerialExecutor
from pybt.lineage import ScheduleEntry, Segment, lineage, schedule
from pybt.member import Member
from pybt.model.base import ModelWrapper, infer_mode
from pybt.policy.done import DoneStrategy, StopAfter
from pybt.policy.exploit import ExploitStrategy, Truncation
from pybt.policy.explore import ExploreStrategy, Perturb
from pybt.policy.ready import ReadyAfter, ReadyStrategy
from pybt.policy.snapshot import Population
from pybt.progress import Progress
from pybt.space import Domain, as_space
from pybt.store import RunStore, describe

logger = logging.getLogger(__name__)

DEFAULT_STOP = StopAfter(20)
DEFAULT_READY = ReadyAfter(4)
DEFAULT_EXPLOIT = Truncation()
DEFAULT_EXPLORE = Perturb()

_STEP_ARG_KEYS = ("epochs_per_step", "fit_args")


def _check_instance(name: str, value: Any, kind: type, example: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, kind):
        expected = f"a {kind.__name__}" + (" or None" if optional else "")
        raise invalid_argument(name, value, expected, f"e.g. {name}={example}.")


def _mapping_or_empty(name: str, value: Any, example: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid_argument(name, value, "a dict", f"e.g. {name}={example}.")
    return dict(value)


def _parse_step_args(step_args: Any) -> tuple[int, dict[str, Any]]:
    args = _mapping_or_empty("step_args", step_args, "{'epochs_per_step': 2, 'fit_args': {'x': x, 'y': y}}")
    unknown = sorted(set(args) - set(_STEP_ARG_KEYS))
    if unknown:
        raise invalid_argument(
            "step_args",
            unknown,
            f"only the keys {list(_STEP_ARG_KEYS)}",
            "Put arguments for fit() in 'fit_args'.",
        )
    epochs = args.get("epochs_per_step", 1)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise invalid_argument("step_args['epochs_per_step']", epochs, "an integer >= 1")
    fit_args = _mapping_or_empty(
        "step_args['fit_args']", args.get("fit_args"), "{'x': x_train, 'y': y_train}"
    )
    return epochs, fit_args


class Trainer:
    """Trains a population of members of ``model`` with Population Based Training.

    ``train()`` returns ``(best_model, best_score)``: the best member's model as the user's own
    type (``keras.Model`` for Keras) and its score. ``history``, ``lineage()`` and
    ``schedule()`` tell how it got there.
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
        run_dir: str | None = None,
        seed: int | None = None,
        verbose: int = 1,
    ) -> None:
        _check_instance("model", model, ModelWrapper, "KerasModelWrapper(model, optimizer=..., loss=...)")
        if not isinstance(population_size, int) or isinstance(population_size, bool) or population_size < 2:
            raise invalid_argument(
                "population_size", population_size, "an integer >= 2", "PBT needs members to compare."
            )
        _check_instance("stopping_criteria", stopping_criteria, DoneStrategy, "StopAfter(20)")
        _check_instance("ready_strategy", ready_strategy, ReadyStrategy, "ReadyAfter(4)")
        _check_instance("exploit_strategy", exploit_strategy, ExploitStrategy, "Truncation()", optional=True)
        _check_instance("explore_strategy", explore_strategy, ExploreStrategy, "Perturb()", optional=True)
        _check_instance("executor", executor, Executor, "RayExecutor()", optional=True)
        if metric is not None and not isinstance(metric, str):
            raise invalid_argument("metric", metric, "the name of an evaluated metric, or None")
        if mode not in (None, "max", "min"):
            raise invalid_argument("mode", mode, "'max', 'min' or None (inferred from the metric's name)")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise invalid_argument("seed", seed, "a non-negative integer or None")
        if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
            raise invalid_argument("run_dir", run_dir, "a folder path or None")

        self.model = model
        self.population_size = population_size
        self.stopping_criteria = stopping_criteria
        self.ready_strategy = ready_strategy
        self.exploit_strategy = exploit_strategy
        self.explore_strategy = explore_strategy
        self.epochs_per_step, self.fit_args = _parse_step_args(step_args)
        self.eval_args = _mapping_or_empty("eval_args", eval_args, "{'x': x_val, 'y': y_val}")
        self.space: dict[str, Domain] = (
            model.default_space() if hyperparameters is None else as_space(hyperparameters)
        )
        model.check_hyperparameters(self.space)
        model.check_args(self.fit_args, self.eval_args)
        self.metric, self.mode = metric, mode
        self.executor: Executor = executor if executor is not None else SerialExecutor()
        self.verbose = verbose

        # A resumed run continues with the seed it started with, drawn or given.
        self._store = RunStore(run_dir) if run_dir is not None else None
        stored_config = self._store.config if self._store is not None else None
        if seed is None and stored_config is not None:
            seed = stored_config["seed"]
        seed_sequence = np.random.SeedSequence(seed)
        self.seed: int = int(seed_sequence.entropy)  # type: ignore[arg-type]
        policy_seed, *member_seeds = seed_sequence.spawn(population_size + 1)
        self._rng = np.random.default_rng(policy_seed)
        starting = self._starting_hyperparameters(initial_hyperparameters)
        self._members = {
            i: Member(id=i, seed=int(member_seeds[i].generate_state(1)[0]), hyperparameters=starting[i])
            for i in range(population_size)
        }

        if self._store is not None:
            self._store.begin(
                self._config(initial_hyperparameters),
                [(m.id, m.seed, m.hyperparameters) for m in self._members.values()],
            )

        self._steps: list[dict[str, Any]] = []
        self._exploits: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._sequence = 0
        self._started = False
        self._in_flight: set[int] = set()
        self._waiting_for_donor: set[int] = set()
        self._last_exception: BaseException | None = None
        self._best_fitness_seen, self._best_score_seen = -math.inf, None
        # Run folder bookkeeping: members whose state changed since the last checkpoint cut, the
        # ready epoch every live member had passed at that cut, and whether a cut waits for steps.
        self._dirty: set[int] = set(self._members)
        self._cut_mark = 0
        self._draining = False
        # How many epochs a member may be ahead of the slowest live member when it starts a step.
        self._max_lead = max(self.epochs_per_step, getattr(ready_strategy, "epochs", 0))

    # ---- set-up -----------------------------------------------------------------------------
    def _starting_hyperparameters(self, initial: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        """Member 0 keeps what the user gave (where it lies in the space); the rest are sampled."""
        if initial is not None:
            if isinstance(initial, (str, bytes, Mapping)) or not isinstance(initial, Sequence):
                raise invalid_argument("initial_hyperparameters", initial, "a list of dicts, one per member")
            if len(initial) != self.population_size:
                raise invalid_argument(
                    "initial_hyperparameters",
                    f"a list of {len(initial)}",
                    f"one dict per member ({self.population_size})",
                    "Give one dict per member, or None to sample them.",
                )
        given = {
            name: value
            for name, value in self.model.given_hyperparameters(self.space).items()
            if name in self.space and self.space[name].contains(value)
        }
        starting = []
        for i in range(self.population_size):
            values = {name: domain.sample(self._rng) for name, domain in self.space.items()}
            if i == 0:
                values.update(given)
            if initial is not None:
                values.update(self._checked_initial(i, initial[i]))
            starting.append(values)
        return starting

    def _checked_initial(self, index: int, values: Any) -> dict[str, Any]:
        argument = f"initial_hyperparameters[{index}]"
        if not isinstance(values, Mapping):
            raise invalid_argument(argument, values, "a dict {name: value}")
        unknown = sorted(set(values) - set(self.space))
        if unknown:
            raise invalid_argument(argument, unknown, f"names from the space {sorted(self.space)}")
        return {
            name: self.space[name].check(f"{argument}[{name!r}]", value) for name, value in values.items()
        }

    def _config(self, initial_hyperparameters: Any) -> dict[str, Any]:
        """What makes a run this run: a run folder written by another configuration is refused."""
        return {
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "population_size": self.population_size,
            "space": describe(self.space),
            "initial_hyperparameters": describe(initial_hyperparameters),
            "stopping_criteria": describe(self.stopping_criteria),
            "ready_strategy": describe(self.ready_strategy),
            "exploit_strategy": describe(self.exploit_strategy),
            "explore_strategy": describe(self.explore_strategy),
            "epochs_per_step": self.epochs_per_step,
            "metric": self.metric,
            "mode": self.mode,
            "seed": self.seed,
        }

    def _start(self) -> None:
        self.executor.start(self.model, self.fit_args, self.eval_args)
        for member in self._members.values():
            self.executor.place(member.id, member.seed)
        if self._store is not None:
            self._resume(self._store)
        self._started = True

    # ---- run folder ---------------------------------------------------------------------------
    def _resume(self, store: RunStore) -> None:
        """Continue from the newest intact checkpoint cut; rows recorded after it are redone."""
        cut = store.latest_cut()
        if cut is None:
            store.truncate_after(0)
            return
        sequence, state, member_states = cut
        if not (store.finished and store.final_sequence == sequence):
            store.truncate_after(sequence)
        self._steps, self._exploits, self._failures = (
            store.rows(kind) for kind in ("steps", "exploits", "failures")
        )
        self._rng.bit_generator.state = state["rng"]
        self._members = {m["id"]: Member(**m) for m in state["members"]}
        self._sequence, self.metric, self.mode = sequence, state["metric"], state["mode"]
        self._best_fitness_seen, self._best_score_seen = state["best_seen"]
        self._cut_mark = state["cut_mark"]
        for member_id, member_state in member_states.items():
            try:
                self.executor.set_state(member_id, member_state)
            except Exception as error:  # the wrapper's or the framework's: the state does not fit
                raise invalid_argument(
                    "run_dir",
                    str(store.path),
                    "checkpoints this model can load",
                    f"Member {member_id}'s checkpoint does not fit the model "
                    f"({type(error).__name__}: {error}). The run folder was written by another "
                    f"model (architecture or state layout); use a new run_dir, or the old model.",
                ) from error
        self._dirty.clear()
        logger.info("resumed %s at sequence %d", store.path, sequence)

    def _ready_mark(self) -> int | None:
        """The ready point every live member has passed (None when all are done)."""
        return min((m.last_ready_epoch for m in self._members.values() if not m.done), default=None)

    def _cut_due(self) -> bool:
        mark = self._ready_mark()
        return mark is not None and mark > self._cut_mark

    def _cut(self, store: RunStore) -> None:
        """Checkpoint every member whose state changed, with the bookkeeping to resume from here."""
        mark = self._ready_mark()
        self._cut_mark = self._cut_mark if mark is None else mark
        state = {
            "rng": self._rng.bit_generator.state,
            "members": [dataclasses.asdict(member) for member in self._members.values()],
            "metric": self.metric,
            "mode": self.mode,
            "best_seen": [self._best_fitness_seen, self._best_score_seen],
            "cut_mark": self._cut_mark,
        }
        states = {member: self.executor.get_state(member) for member in sorted(self._dirty)}
        epochs = {member.id: member.epoch for member in self._members.values()}
        store.save_cut(self._sequence, state, states, epochs)
        self._dirty.clear()
        self._draining = False

    def _append(self, kind: str, row: dict[str, Any]) -> None:
        """Add a row to the in-memory record and, with a run folder, commit it to the journal."""
        {"steps": self._steps, "exploits": self._exploits, "failures": self._failures}[kind].append(row)
        if self._store is not None:
            self._store.record(kind, row)

    # ---- the loop -----------------------------------------------------------------------------
    def train(self) -> tuple[Any, float]:
        """Run PBT until every member is done; return ``(best_model, best_score)``.

        With a ``run_dir`` that holds an unfinished run, training continues from its newest
        checkpoint; a finished run returns its result without training.
        """
        progress = Progress(self._total_member_epochs(), enabled=self.verbose > 0)
        try:
            if not self._started:
                self._start()
            progress.done = sum(member.epoch for member in self._members.values())
            while self._turn(progress):
                pass
            best = self._best()
            if self._store is not None and not self._store.finished:
                self._cut(self._store)
                self._store.mark_finished(best.id, self._sequence)
            model = self.executor.model(best.id)
        finally:
            progress.close()
            self.executor.shutdown()
        return model, float(best.score)  # type: ignore[arg-type]

    def _total_member_epochs(self) -> int | None:
        epochs = self.stopping_criteria.max_epochs
        return None if epochs is None else epochs * self.population_size

    def _turn(self, progress: Progress) -> bool:
        """Submit idle members, take the finished steps, decide for them; False when all are done."""
        if not self._draining:
            self._submit_idle()
        if not self._in_flight:
            return False
        finished = []
        if self.executor.pending < len(self._in_flight):
            # Steps the trainer waits for that the executor no longer holds (an earlier
            # train() was interrupted, and the executor shut down): waiting would never end.
            raise TrainingError(
                f"Members {sorted(self._in_flight)} wait for steps the executor no longer runs "
                f"(an earlier train() was interrupted). Create a new Trainer; with run_dir= it "
                f"resumes from the last checkpoint."
            )
        for result in self.executor.completed():
            self._in_flight.discard(result.member)
            self._record(result)
            finished.append(result.member)
            if not self._members[result.member].failed:
                progress.update(result.epochs, self._best_score_seen, self.metric)
        self._decide(finished + sorted(self._waiting_for_donor))
        if self._store is not None and (self._draining or self._cut_due()):
            # A cut is a picture of every member at once: on an asynchronous executor, steps
            # still running are let finish (and nothing new starts) before it is taken.
            if self._in_flight:
                self._draining = True
            else:
                self._cut(self._store)
        return True

    def _submit_idle(self) -> None:
        live = [member for member in self._members.values() if not member.done]
        slowest = min((member.epoch for member in live), default=0)
        for member in live:
            if member.id in self._in_flight or member.id in self._waiting_for_donor:
                continue
            # On an asynchronous executor a fast member would otherwise race ahead and be
            # compared with members many epochs behind; it waits for the slowest instead.
            if member.epoch - slowest < self._max_lead:
                self.executor.submit(member.id, dict(member.hyperparameters), self._step_epochs(member))
                self._in_flight.add(member.id)

    def _step_epochs(self, member: Member) -> int:
        """``epochs_per_step``, or fewer for the last step, so no member trains past the stop."""
        limit = self.stopping_criteria.max_epochs
        if limit is not None and 0 < limit - member.epoch < self.epochs_per_step:
            return limit - member.epoch
        return self.epochs_per_step

    # ---- recording --------------------------------------------------------------------------
    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _record(self, result: StepResult) -> None:
        member = self._members[result.member]
        metrics = {**result.eval_metrics, **{f"train_{k}": v for k, v in result.train_metrics.items()}}
        error = result.error
        if error is None:
            score = metrics[self._resolve_metric(result.eval_metrics, metrics)]
            if not math.isfinite(score):
                error = f"non-finite score {self.metric}={score}"
            else:
                bad_losses = {k: v for k, v in metrics.items() if "loss" in k and not math.isfinite(v)}
                if bad_losses:
                    error = f"non-finite loss {bad_losses}"
        if error is not None:
            member.failed = True
            self._dirty.add(member.id)
            self._append(
                "failures",
                {
                    "member": member.id,
                    "epoch": member.epoch,
                    "hyperparameters": dict(member.hyperparameters),
                    "error": error,
                    "sequence": self._next_sequence(),
                },
            )
            self._last_exception = result.exception
            logger.warning("member %d failed at epoch %d: %s", member.id, member.epoch, error)
            return
        member.failed = False
        member.epoch += result.epochs
        member.steps += 1
        member.score = score
        member.fitness = score if self.mode == "max" else -score
        member.metrics = metrics
        if self._best_fitness_seen < member.fitness:
            self._best_fitness_seen, self._best_score_seen = member.fitness, score
        self._dirty.add(member.id)
        self._append(
            "steps",
            {
                "member": member.id,
                "epoch": member.epoch,
                "hyperparameters": dict(member.hyperparameters),
                "metrics": metrics,
                "score": score,
                "seconds": result.seconds,
                "sequence": self._next_sequence(),
            },
        )

    def _resolve_metric(self, evaluated: Mapping[str, float], metrics: Mapping[str, float]) -> str:
        """The scored metric: the user's choice (any metric, ``train_*`` ones included), or the
        model's default among the evaluated ones, checked once it is known."""
        if self.metric is None:
            self.metric = self.model.default_metric(dict(evaluated))
        if self.metric not in metrics:
            raise invalid_argument(
                "metric",
                self.metric,
                f"one of the evaluated metrics {sorted(metrics)}",
                "Pass one of those names.",
            )
        if self.mode is None:
            self.mode = infer_mode(self.metric)
        return self.metric

    # ---- deciding -----------------------------------------------------------------------------
    def _decide(self, member_ids: Sequence[int]) -> None:
        """Done, replace, or exploit-and-explore, for members whose step just ended."""
        healthy = [member for member in self._members.values() if member.healthy]
        failed = [self._members[i] for i in member_ids if self._members[i].failed]
        population = Population([m.snapshot() for m in healthy + failed], self._rng)
        pairs: list[tuple[int, int, str]] = []
        for member_id in dict.fromkeys(member_ids):
            member = self._members[member_id]
            snapshot = population.get(member_id)
            if member.failed:
                donor = self._replacement(snapshot, population)
                if donor is None:
                    self._no_donor_for(member)
                    continue
                self._waiting_for_donor.discard(member_id)
                pairs.append((donor, member_id, "failure"))
            elif self.stopping_criteria.is_done(snapshot):
                member.done = True
            elif self.ready_strategy.is_ready(snapshot):
                if self.exploit_strategy is None:
                    # Explore without exploit (the paper's ablation): a ready member perturbs
                    # its own hyperparameters; with explore off too, this is random search.
                    member.last_ready_epoch = member.epoch
                    member.hyperparameters = self._explored(member.hyperparameters)
                    continue
                donor = self.exploit_strategy.donor(snapshot, population, self._rng)
                if donor is not None and donor != member_id:
                    self._check_donor(donor, population)
                    if population.get(donor).epoch < member.epoch and donor in self._in_flight:
                        # Asynchronous runs only: the donor's score is from fewer epochs and it is
                        # still training. Copying it now would step this member back (and redo
                        # epochs); it stays ready and decides again after its next step.
                        continue
                    pairs.append((donor, member_id, "exploit"))
                member.last_ready_epoch = member.epoch
        if pairs:
            self._exploit(pairs, population)

    def _replacement(self, failed: Any, population: Population) -> int | None:
        """A healthy donor for a failed member: the exploit strategy's pick, else the best."""
        healthy_ids = [m.id for m in population.ranked if not m.failed]
        if not healthy_ids:
            return None
        if self.exploit_strategy is not None:
            donor = self.exploit_strategy.donor(failed, population, self._rng)
            if donor in healthy_ids:
                return donor
        return healthy_ids[-1]

    def _no_donor_for(self, member: Member) -> None:
        """No healthy member to copy: wait for one still training, or give up if none is."""
        if self._in_flight:
            self._waiting_for_donor.add(member.id)
            return
        last = self._failures[-1]["error"] if self._failures else "unknown"
        raise TrainingError(
            f"Every member failed by epoch {member.epoch}, so no member is left to copy. "
            f"The last error was: {last.rstrip('.')}. Fix the training code or narrow the "
            f"hyperparameter space (trainer.failures lists every failed step)."
        ) from self._last_exception

    def _check_donor(self, donor: Any, population: Population) -> None:
        if donor not in population or population.get(donor).failed:
            raise PyBTError(
                f"exploit_strategy {self.exploit_strategy!r} returned donor {donor!r}, "
                f"which is not a healthy member of the population; return one of "
                f"{[m.id for m in population.ranked if not m.failed]} or None."
            )

    def _exploit(self, pairs: list[tuple[int, int, str]], population: Population) -> None:
        self.executor.copy_states([(donor, member) for donor, member, _ in pairs])
        # Every copy read its donor's state from before this decision. Recording the worst
        # members first puts a member's copy of a donor before the donor's own exploit (a donor
        # ranks above the member copying it), so lineage() and schedule(), which follow the
        # exploits recorded before a copy, do not credit the donor's new weights to the member.
        for donor_id, member_id, reason in sorted(pairs, key=lambda pair: population.rank(pair[1])):
            donor, member = population.get(donor_id), self._members[member_id]
            new = self._explored(donor.hyperparameters)
            self._dirty.add(member_id)
            self._append(
                "exploits",
                {
                    "member": member_id,
                    "donor": donor_id,
                    "epoch": donor.epoch,
                    "member_epoch": member.epoch,
                    "old_hyperparameters": dict(member.hyperparameters),
                    "new_hyperparameters": dict(new),
                    "reason": reason,
                    "sequence": self._next_sequence(),
                },
            )
            logger.info(
                "member %d copied member %d at epoch %d (%s)", member_id, donor_id, donor.epoch, reason
            )
            member.hyperparameters = new
            member.epoch = member.last_ready_epoch = donor.epoch
            member.score, member.fitness, member.failed = donor.score, donor.fitness, False
            member.parent = donor_id
            member.done = self.stopping_criteria.is_done(member.snapshot())

    def _explored(self, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        if self.explore_strategy is None:
            return dict(hyperparameters)
        explored = self.explore_strategy.explore(hyperparameters, self.space, self._rng)
        for name, domain in self.space.items():
            if name not in explored or not domain.contains(explored[name]):
                raise PyBTError(
                    f"explore_strategy {self.explore_strategy!r} returned {name}={explored.get(name)!r}, "
                    f"outside its domain {domain!r}; an explore strategy must return a value in the domain "
                    f"(Domain.perturb and Domain.sample do) for every hyperparameter."
                )
        return explored

    def _best(self) -> Member:
        healthy = [member for member in self._members.values() if member.healthy]
        if not healthy:
            raise TrainingError("No member has a score: train() has not completed a step yet.")
        return max(healthy, key=lambda m: (m.fitness, -m.id))

    # ---- results ------------------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per completed member-step, in the order they were recorded."""
        return list(self._steps)

    @property
    def exploits(self) -> list[dict[str, Any]]:
        """One dict per exploit (and per failed member replaced), in order."""
        return list(self._exploits)

    @property
    def failures(self) -> list[dict[str, Any]]:
        """One dict per failed step, with the error."""
        return list(self._failures)

    @property
    def best_member(self) -> int:
        """The id of the member with the best score."""
        return self._best().id

    def lineage(self, member_id: int | None = None) -> list[Segment]:
        """The members whose training made ``member_id``'s weights (default: the best), oldest first."""
        member = self._member(member_id)
        return lineage(member.id, member.epoch, self._exploits)

    def schedule(self, member_id: int | None = None) -> list[ScheduleEntry]:
        """The hyperparameters, epoch by epoch, that trained ``member_id`` (default: the best)."""
        member = self._member(member_id)
        return schedule(member.id, member.epoch, self._steps, self._exploits)

    def history_frame(self) -> Any:
        """``history`` as a pandas DataFrame (hyperparameters as ``hp_*``, metrics as ``metric_*``)."""
        from pybt.report import history_frame

        return history_frame(self._steps)

    def plot(self, what: str = "scores", member: int | None = None) -> Any:
        """A matplotlib Figure of the run so far: ``"scores"`` of every member over epochs,
        ``"hyperparameters"`` over epochs, the ``"lineage"`` or the ``"schedule"`` of
        ``member`` (default: the best). Needs ``pip install 'pybt[plot]'``."""
        from pybt import report

        rows = {"failures": self._failures}
        scored = {**rows, "mode": self.mode, "metric": self.metric}
        if what == "scores":
            return report.plot_scores(self._steps, self._exploits, **scored)
        if what == "hyperparameters":
            return report.plot_hyperparameters(self._steps, self._exploits, **rows)
        if what in ("lineage", "schedule"):
            draw = report.plot_lineage if what == "lineage" else report.plot_schedule
            return draw(self._steps, self._exploits, member, **scored)
        raise invalid_argument("what", what, "'scores', 'hyperparameters', 'lineage' or 'schedule'")

    def _member(self, member_id: int | None) -> Member:
        if member_id is None:
            return self._best()
        if member_id not in self._members:
            raise invalid_argument("member_id", member_id, f"a member id in 0..{self.population_size - 1}")
        return self._members[member_id]
