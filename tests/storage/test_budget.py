"""ByteBudget: the process-wide cap on buffered part bytes."""

from __future__ import annotations

import anyio
import pytest

from storage_backends.budget import ByteBudget


@pytest.mark.anyio
async def test_acquire_within_budget_does_not_wait() -> None:
    budget = ByteBudget(100)
    assert await budget.acquire(60) == 60
    assert await budget.acquire(40) == 40
    assert budget.used == 100


@pytest.mark.anyio
async def test_acquire_waits_until_enough_is_released() -> None:
    budget = ByteBudget(100)
    held = await budget.acquire(80)
    got: list[int] = []

    async def second() -> None:
        got.append(await budget.acquire(50))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # 80 + 50 > 100: it waits
        budget.release(held)
    assert got == [50]
    assert budget.used == 50


@pytest.mark.anyio
async def test_reservation_larger_than_budget_runs_alone() -> None:
    budget = ByteBudget(100)
    assert await budget.acquire(1000) == 100
    budget.release(100)
    assert budget.used == 0


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_no_trace() -> None:
    budget = ByteBudget(10)
    await budget.acquire(10)
    with anyio.move_on_after(0.01):
        await budget.acquire(5)
    budget.release(10)
    assert budget.used == 0
    assert await budget.acquire(10) == 10


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ByteBudget(0)
