"""The turns of the training loop: submit idle members, record finished steps, decide, apply.

A turn submits every idle live member, takes the steps the executor reports finished (a whole
round in process, whatever has finished on Ray), records them through the run log, asks the
population what each finished member does next, and carries the decisions out through the
executor. Everything a turn has taken and not yet carried out is kept here, so an interrupted
turn is finished, not skipped, by the next ``train()``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from pybt.checkpoint import Checkpoints
from pybt.errors import TrainingError
from pybt.executor.base import Executor, StepResult
from pybt.history import Record, RunHistory
from pybt.model.base import ModelWrapper
from pybt.population import Decision, Exploit, Population, Wait
from pybt.runlog import RunLog
from pybt.scoring import score_step
from pybt.winner import BestKeeper

logger = logging.getLogger(__name__)


class Turns:
    """The loop's state between turns, and one turn at a time (:meth:`turn`)."""

    def __init__(
        self,
        model: ModelWrapper,
        executor: Executor,
        population: Population,
        log: RunLog,
        checkpoints: Checkpoints | None,
        keeper: BestKeeper | None,
        epochs_per_step: int,
        max_lead: int,
        run_is_done: Callable[[], bool],
    ) -> None:
        self.model = model
        self.executor = executor
        self.population = population
        self.log = log
        self.checkpoints = checkpoints
        self.keeper = keeper
        self.epochs_per_step = epochs_per_step
        self.max_lead = max_lead  # how many epochs a member may lead the slowest live one
        self.run_is_done = run_is_done
        self.running: set[int] = set()  # members with a step submitted and not yet reported
        self.waiting: set[int] = set()  # failed members waiting for a healthy donor
        self.results: deque[StepResult] = deque()  # reported by the executor, not yet recorded
        self.undecided: list[int] = []  # recorded, not yet decided for
        self.decisions: deque[Decision] = deque()  # decided, not yet carried out
        self.copied = False  # whether the pending decisions' states were copied
        self.head_recorded = False  # whether the first pending decision's exploit is kept already
        self.ending = False  # a turn whose end (keeping the best, a cut) did not finish
        self.last_exception: BaseException | None = None

    @property
    def run_history(self) -> RunHistory:
        return self.log.history

    def turn(self) -> bool:
        """Submit idle members, take the finished steps, decide for them; False when all are done."""
        if self.decisions:  # an interrupted turn: finish it first
            self.apply_decisions()
        if self.ending:
            self.end_turn()
        if not (self.checkpoints is not None and self.checkpoints.draining):
            self.submit_idle()
        if not (self.running or self.results or self.undecided):
            return False
        if self.executor.pending < len(self.running):
            # Steps the trainer waits for that the executor no longer holds (it was closed).
            raise TrainingError(
                f"Members {sorted(self.running)} wait for steps the executor no longer runs (it was "
                f"closed). Create a new Trainer; with run_dir= it resumes from the last checkpoint."
            )
        while self.results:  # reported before an interrupt, not yet recorded
            self.record(self.results[0])
        if self.running:
            for result in self.executor.completed():
                self.running.discard(result.member)
                self.results.append(result)
                self.record(result)
        if self.run_is_done():
            self.population.stop_all()  # decided before anyone copies; running steps finish
        self.decisions = deque(self.population.decide(self.undecided + sorted(self.waiting), self.running))
        self.undecided, self.copied = [], False
        self.apply_decisions()
        self.end_turn()
        return True

    def submit_idle(self) -> None:
        busy = self.running | self.waiting | set(self.undecided) | {r.member for r in self.results}
        for member in self.population.due(busy, self.max_lead):
            # Running before it is submitted: an interrupt between the two must not submit the
            # step twice (if submit() fails, the executor's count tells).
            pending = self.executor.pending
            self.running.add(member.id)
            try:
                self.executor.submit(member.id, dict(member.hyperparameters), self.step_epochs(member.epoch))
            except BaseException:
                if self.executor.pending == pending:
                    self.running.discard(member.id)
                raise

    def end_turn(self) -> None:
        """What ends a turn: the best state kept, a checkpoint cut taken when due. Redone by
        the next turn if it did not finish (an interrupt, a full disk)."""
        self.ending = True
        if self.keeper is not None:
            self.keeper.note()
        if self.checkpoints is not None:
            self.checkpoints.after_turn(self.running)
        self.ending = False

    def step_epochs(self, epoch: int) -> int:
        """``epochs_per_step``, or fewer for the last step, so no member trains past the stop."""
        limit = self.population.policies.stop.max_epochs
        if limit is not None and 0 < limit - epoch < self.epochs_per_step:
            return limit - epoch
        return self.epochs_per_step

    def record(self, result: StepResult) -> None:
        """Score, keep and announce the next result (it leaves the queue once it is kept)."""
        member = self.population.members[result.member]
        metrics, score, error = score_step(result, self.model, self.run_history)
        if error is not None or score is None:
            record: Record = self.log.failure(member.id, member.epoch, member.hyperparameters, str(error))
            self.population.failed(member.id)
            self.last_exception = result.exception
            logger.warning("member %d failed at epoch %d: %s", member.id, member.epoch, error)
        else:
            epoch = member.epoch + result.epochs
            record = self.log.step(member.id, epoch, member.hyperparameters, metrics, score, result.seconds)
            fitness = self.run_history.fitness(score)
            self.population.stepped(member.id, result.epochs, score, fitness, metrics, result.seconds)
        self.results.popleft()
        self.undecided.append(member.id)
        self.changed(member.id)
        self.log.announce(record)

    def apply_decisions(self) -> None:
        """Carry out the pending decisions: copy states, record exploits, update members."""
        if self.decisions and not self.copied:
            # One call, so every copy reads its donor's state from before this decision.
            copies = [(d.donor.id, d.member) for d in self.decisions if isinstance(d, Exploit)]
            if copies:
                self.executor.copy_states(copies)
            self.copied = True
        while self.decisions:
            decision, record = self.decisions[0], None
            if isinstance(decision, Wait):
                self.no_donor_for(decision.member)
            elif isinstance(decision, Exploit) and not self.head_recorded:
                member, donor = self.population.members[decision.member], decision.donor
                logger.info("member %d copied member %d at epoch %d", member.id, donor.id, donor.epoch)
                record = self.log.exploit(
                    member.id, donor.id, donor.epoch, member.epoch, member.hyperparameters,
                    decision.hyperparameters, decision.reason,
                )  # fmt: skip
                self.head_recorded = True  # kept: a retry after an interrupt must not keep it twice
                self.waiting.discard(member.id)
                self.changed(member.id)
            if not isinstance(decision, Wait):
                self.population.apply(decision)  # plain assignments: nothing in it can fail
            self.decisions.popleft()
            self.head_recorded = False
            if record is not None:
                self.log.announce(record)

    def no_donor_for(self, member_id: int) -> None:
        """No healthy member to copy: wait for one still training, or give up if none is."""
        if self.running:
            self.waiting.add(member_id)
            return
        failures = self.run_history.failures
        last = failures[-1].error if failures else "unknown"
        raise TrainingError(
            f"Every member failed by epoch {self.population.members[member_id].epoch}, so no member is "
            f"left to copy. The last error was: {last.rstrip('.')}. Fix the training code or narrow the "
            f"hyperparameter space (trainer.failures lists every failed step)."
        ) from self.last_exception

    def changed(self, member_id: int) -> None:
        if self.checkpoints is not None:
            self.checkpoints.changed.add(member_id)
