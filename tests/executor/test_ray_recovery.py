"""Tests for pybt.executor.ray.recovery: RayExecutor's ledger of states and faults, without Ray.

Object references are stand-in strings here: what matters is which member's backup is which,
which actor made it, and what an actor's death or a lost state does to the members.
"""

from __future__ import annotations

from pybt.executor.base import StepResult
from pybt.executor.ray.recovery import LOST, MAX_DEATHS, Flight, Ledger
from pybt.executor.ray.scheduling import Scheduler


def ledger_with(actors: int, members: int) -> Ledger:
    scheduler = Scheduler()
    for key in range(actors):
        scheduler.add_actor(key)
        scheduler.actor_up(key)
    ledger = Ledger(scheduler)
    for member in range(members):
        ledger.place(member, seed=100 + member)
    return ledger


def send(ledger: Ledger, member: int, epochs: int = 1) -> tuple[str, Flight, bool, int | None]:
    """Submit and launch one step of ``member`` wherever the scheduler sends it."""
    ledger.scheduler.submit(member, {}, epochs)
    [(actor, job)] = ledger.scheduler.dispatch()
    flight, sync, previous = ledger.launch(actor, job)
    ref = f"result-{flight.sent}"
    flight.state = f"state-{flight.sent}"
    ledger.flights[ref] = flight
    return ref, flight, sync, previous


def succeed(ledger: Ledger, ref: str) -> StepResult | None:
    flight = ledger.finished(ref)
    return ledger.landed(flight, StepResult(member=flight.job.member, epochs=flight.job.epochs))


def test_a_member_is_rebuilt_only_where_its_copy_is_not_fresh() -> None:
    ledger = ledger_with(actors=1, members=1)
    ref, flight, sync, previous = send(ledger, 0, epochs=2)
    assert (flight.source, sync, previous) == (None, True, None)  # built from its seed
    assert succeed(ledger, ref) is not None
    record = ledger.members[0]
    assert (record.backup, record.origin, record.holder, record.fresh) == ("state-1", 0, 0, True)
    assert ledger.scheduler.epochs(0) == 2

    ref, flight, sync, _ = send(ledger, 0)
    assert (flight.source, sync) == (None, False)  # the actor's own copy is the backup
    succeed(ledger, ref)
    ledger.scheduler.add_actor(1)  # another actor runs it next: it rebuilds from the backup
    ledger.scheduler.actor_up(1)
    ledger.scheduler.replace_actor(0, 1)
    ref, flight, sync, previous = send(ledger, 0)
    assert (flight.source, sync, previous) == ("state-2", True, 0)


def test_a_copy_takes_every_donor_backup_before_overwriting() -> None:
    ledger = ledger_with(actors=1, members=2)
    for member in (0, 1):
        succeed(ledger, send(ledger, member, epochs=member + 1)[0])
    ledger.members[0].failed = True
    ledger.copy([(0, 1), (1, 0)])
    assert [ledger.members[m].backup for m in (0, 1)] == ["state-2", "state-1"]
    assert [ledger.scheduler.epochs(m) for m in (0, 1)] == [2, 1]
    assert not any(ledger.members[m].fresh or ledger.members[m].failed for m in (0, 1))
    ledger.restore(1, "from-disk")
    assert (ledger.members[1].backup, ledger.members[1].origin) == ("from-disk", None)


def test_a_step_that_kills_its_actor_runs_again_until_max_deaths_in_a_row() -> None:
    ledger = ledger_with(actors=1, members=2)
    for death in range(1, MAX_DEATHS + 1):
        ref, flight, _, _ = send(ledger, 0)
        running, waiting = ledger.grounded(0, ledger.finished(ref))
        assert running is flight and waiting == [] and ledger.flights == {}
        result = ledger.actor_died(running, waiting, "killed")
        if death < MAX_DEATHS:
            assert result is None
            assert ledger.scheduler.unqueue(0) is flight.job  # queued to run again
        else:
            assert result is not None and result.member == 0
            assert result.error is not None and f"died {MAX_DEATHS} times in a row" in result.error
            assert result.error.endswith(": killed") and ledger.members[0].failed
    assert ledger.members[0].deaths == 0  # counted afresh


def test_a_success_resets_the_death_count() -> None:
    ledger = ledger_with(actors=1, members=1)
    for _ in range(MAX_DEATHS - 1):
        ref, _, _, _ = send(ledger, 0)
        ledger.actor_died(*ledger.grounded(0, ledger.finished(ref)), "killed")
        ledger.scheduler.unqueue(0)
    succeed(ledger, send(ledger, 0)[0])
    assert ledger.members[0].deaths == 0


def test_of_a_dead_actors_steps_the_running_one_goes_first_and_the_one_ahead_again() -> None:
    ledger = ledger_with(actors=1, members=2)
    for member in (0, 1):
        ledger.scheduler.submit(member, {}, 1)
    refs = []
    for actor, job in ledger.scheduler.dispatch():
        flight, _, _ = ledger.launch(actor, job)
        refs.append(f"result-{job.member}")
        ledger.flights[refs[-1]] = flight
    # The step sent ahead is reported first (Ray answers both refs with the actor's death).
    running, waiting = ledger.grounded(0, ledger.finished(refs[1]))
    assert running.job.member == 0 and [f.job.member for f in waiting] == [1]
    assert ledger.flights == {}
    assert ledger.actor_died(running, waiting, "gone") is None
    ledger.scheduler.add_actor(1)
    ledger.scheduler.replace_actor(0, 1)
    ledger.scheduler.actor_up(1)
    assert [job.member for _, job in ledger.scheduler.dispatch()] == [0, 1]


def test_a_replaced_actor_hands_its_members_on_and_names_the_states_it_made() -> None:
    ledger = ledger_with(actors=1, members=4)
    for member in (0, 2):
        succeed(ledger, send(ledger, member)[0])  # state-1 and state-2, made by actor 0
    ledger.scheduler.add_actor(1)
    assert ledger.actor_replaced(0, 1) == ["state-1", "state-2"]
    assert all(ledger.members[m].holder is None and not ledger.members[m].fresh for m in (0, 2))
    ledger.scheduler.actor_up(1)
    for member in (1, 3):
        succeed(ledger, send(ledger, member)[0])  # state-3 and state-4, made by actor 1
    ledger.copy([(1, 3)])  # member 3 shares member 1's state

    ledger.scheduler.add_actor(2)
    assert ledger.actor_replaced(1, 2) == ["state-3"]  # one probe for a state two members share
    assert [ledger.scheduler.home(m) for m in range(4)] == [2, 2, 2, 2]
    assert ledger.members[1].holder is None


def test_a_lost_state_fails_every_member_holding_it_at_once() -> None:
    ledger = ledger_with(actors=1, members=5)
    for member in range(5):
        succeed(ledger, send(ledger, member)[0])
    ledger.copy([(0, 1), (0, 2), (0, 3)])  # members 0..3 hold "state-1"; 4 its own
    ledger.members[3].failed = True  # reported failed already: not reported again
    ref2, flight2, _, _ = send(ledger, 2)  # sent, from the lost state
    assert flight2.source == "state-1"
    ledger.scheduler.submit(1, {}, 2)  # queued, not sent

    ledger.lost("state-1")
    news = ledger.take_news()
    assert ledger.take_news() == []
    reported = {result.member: (result.epochs, submitted) for result, submitted in news}
    # 0: idle; 1: its queued step fails; 2: its step in flight is dropped when it ends.
    assert reported == {0: (0, False), 1: (2, True), 2: (1, True)}
    assert all(result.error == LOST for result, _ in news)
    assert ledger.scheduler.queued == 0 and flight2.abandoned
    assert all(ledger.members[m].failed for m in range(4)) and not ledger.members[4].failed
    assert succeed(ledger, ref2) is None  # the abandoned step's outcome is dropped


def test_a_member_running_on_its_own_copy_keeps_going_when_its_backup_is_lost() -> None:
    ledger = ledger_with(actors=1, members=1)
    succeed(ledger, send(ledger, 0)[0])
    ref, flight, sync, _ = send(ledger, 0)
    assert not sync and flight.source is None
    ledger.lost("state-1")
    assert ledger.take_news() == [] and not flight.abandoned
    assert succeed(ledger, ref) is not None and ledger.members[0].backup == "state-2"


def test_a_step_ray_could_not_run_fails_its_member_and_a_lost_source_fails_the_others() -> None:
    ledger = ledger_with(actors=1, members=3)
    succeed(ledger, send(ledger, 0)[0])
    ledger.copy([(0, 1), (0, 2)])
    ref, flight, _, _ = send(ledger, 1)
    result = ledger.not_run(ledger.finished(ref), state_lost=True, error="unused")
    assert result is not None and result.error == LOST and result.member == 1
    assert sorted(r.member for r, _ in ledger.take_news()) == [0, 2]

    ref, flight, _, _ = send(ledger, 0)
    result = ledger.not_run(ledger.finished(ref), state_lost=False, error="Ray could not run the step")
    assert result is not None and result.error == "Ray could not run the step"
    flight.abandoned = True
    assert ledger.not_run(flight, state_lost=False, error="dropped") is None
