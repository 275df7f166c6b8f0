"""Tests for pybt.executor.ray.scheduling: RayExecutor's queues, without Ray.

Which actor a member calls home, which queued step an actor runs next (fewest epochs first,
then the oldest), the step sent ahead, taking the steps of actors that are not up, stealing
from the longest queue, and members moving home with their steps.
"""

from __future__ import annotations

from pybt.executor.ray.scheduling import STEPS_SENT_AHEAD, Job, Scheduler


def scheduler_with(actors: int, members: int, up: bool = True) -> Scheduler:
    scheduler = Scheduler()
    for key in range(actors):
        scheduler.add_actor(key)
        if up:
            scheduler.actor_up(key)
    for member in range(members):
        scheduler.place(member)
    return scheduler


def members_of(sends: list[tuple[int, Job]]) -> list[tuple[int, int]]:
    return [(actor, job.member) for actor, job in sends]


def test_members_are_placed_on_the_actor_with_fewest_members_then_the_first() -> None:
    scheduler = scheduler_with(actors=3, members=7)
    assert [scheduler.home(member) for member in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    # Placing a member again (a new run of it) does not count its own old home.
    assert scheduler.place(0) == 0
    assert scheduler.place(6) == 0


def test_nothing_is_sent_to_an_actor_that_is_not_up() -> None:
    scheduler = scheduler_with(actors=1, members=2, up=False)
    scheduler.submit(0, {"lr": 0.1}, 1)
    assert scheduler.dispatch() == []
    assert scheduler.queued == 1
    scheduler.actor_up(0)
    assert members_of(scheduler.dispatch()) == [(0, 0)]


def test_an_actor_runs_one_step_and_holds_one_more_behind_it() -> None:
    scheduler = scheduler_with(actors=1, members=4)
    for member in range(4):
        job = scheduler.submit(member, {"lr": 0.1 * member}, 2)
        assert (job.member, job.hyperparameters, job.epochs, job.order) == (
            member,
            {"lr": 0.1 * member},
            2,
            member + 1,
        )
    sends = scheduler.dispatch()
    assert len(sends) == STEPS_SENT_AHEAD + 1 == 2
    assert members_of(sends) == [(0, 0), (0, 1)]
    assert scheduler.dispatch() == []  # full until one lands
    scheduler.landed(0)
    assert members_of(scheduler.dispatch()) == [(0, 2)]
    assert scheduler.queued == 1


def test_the_member_with_fewest_epochs_runs_first_then_the_oldest_step() -> None:
    scheduler = scheduler_with(actors=1, members=4)
    for member, epochs in ((0, 6), (1, 2), (2, 4), (3, 2)):
        scheduler.set_epochs(member, epochs)
    for member in (0, 2, 3, 1):  # submitted in this order
        scheduler.submit(member, {}, 1)
    order = []
    while scheduler.queued:
        order += [job.member for _, job in scheduler.dispatch()]
        scheduler.landed(0)
    assert order == [3, 1, 2, 0]


def test_an_actor_takes_the_steps_queued_for_an_actor_not_up_and_the_member_moves() -> None:
    scheduler = scheduler_with(actors=2, members=4, up=False)
    scheduler.actor_up(0)  # actor 1 is still starting (or its node is gone)
    for member in range(4):
        scheduler.submit(member, {}, 1)
    # Its own member 0 first, then member 1 (older than its own member 2), from actor 1's queue.
    assert members_of(scheduler.dispatch()) == [(0, 0), (0, 1)]
    assert scheduler.home(1) == 0  # moved home with its step
    assert scheduler.home(3) == 1  # still queued at its old home


def test_an_idle_actor_steals_from_the_longest_queue_and_the_member_moves_home() -> None:
    scheduler = scheduler_with(actors=3, members=6)  # two members at home on each actor
    for member in (0, 3, 1):
        scheduler.submit(member, {}, 1)
    # Actor 0 runs member 0 and holds member 3 behind it; actor 1 runs member 1; actor 2 has
    # nothing to take (no queue holds a step).
    assert members_of(scheduler.dispatch()) == [(0, 0), (0, 3), (1, 1)]

    for member in (0, 3):
        scheduler.submit(member, {}, 1)  # actor 0's queue grows behind its two steps
    scheduler.submit(4, {}, 1)  # actor 1's own queue
    scheduler.set_epochs(3, 1)
    # Actor 1 is busy: it holds one more of its own and does not steal. Actor 2 is idle: it
    # takes the longest queue's first due step (member 0: fewer epochs than member 3).
    assert members_of(scheduler.dispatch()) == [(1, 4), (2, 0)]
    assert scheduler.home(0) == 2 and scheduler.queued == 1

    # Member 0 lives on actor 2 now: its next step queues there.
    scheduler.landed(2)
    scheduler.submit(0, {}, 1)
    assert members_of(scheduler.dispatch()) == [(2, 0)]


def test_a_busy_actor_does_not_steal_until_it_is_idle() -> None:
    scheduler = scheduler_with(actors=2, members=4)
    for member in (0, 2, 1, 0):  # members 0 and 2 at home on actor 0, member 1 on actor 1
        scheduler.submit(member, {}, 1)
    assert members_of(scheduler.dispatch()) == [(0, 0), (0, 2), (1, 1)]
    # Actor 1 runs member 1 with nothing behind it; actor 0's queue holds member 0's next step.
    assert scheduler.dispatch() == []
    scheduler.landed(1)  # actor 1 is idle now: it steals
    assert members_of(scheduler.dispatch()) == [(1, 0)]


def test_a_replacement_takes_over_the_queue_and_members_and_requeued_steps_run_again() -> None:
    scheduler = scheduler_with(actors=1, members=2)
    first, second = (scheduler.submit(member, {}, 1) for member in (0, 1))
    assert members_of(scheduler.dispatch()) == [(0, 0), (0, 1)]

    # The actor died: a replacement takes over, and both steps are queued again.
    scheduler.add_actor(1)
    scheduler.replace_actor(0, 1)
    scheduler.requeue(second)
    scheduler.requeue(first)
    assert scheduler.actors == [1]
    assert scheduler.home(0) == scheduler.home(1) == 1 and scheduler.queued == 2
    assert scheduler.dispatch() == []  # the replacement is not up yet
    scheduler.actor_up(1)
    assert [job for _, job in scheduler.dispatch()] == [first, second]
    scheduler.landed(0)  # a step of the dead actor ending late changes nothing


def test_a_queued_step_can_be_taken_out() -> None:
    scheduler = scheduler_with(actors=2, members=3)
    scheduler.submit(1, {}, 3)
    job = scheduler.unqueue(1)
    assert job is not None and job.member == 1 and job.epochs == 3
    assert scheduler.unqueue(1) is None and scheduler.queued == 0


def test_copied_epochs_are_read_before_any_is_overwritten() -> None:
    scheduler = scheduler_with(actors=1, members=3)
    for member, epochs in ((0, 4), (1, 8), (2, 0)):
        scheduler.set_epochs(member, epochs)
    scheduler.copy_epochs([(0, 1), (1, 0), (1, 2)])  # a swap, and member 2 copies member 1
    assert [scheduler.epochs(member) for member in range(3)] == [8, 4, 8]
