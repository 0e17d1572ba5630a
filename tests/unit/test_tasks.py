"""cancel_and_wait: shutdown never hangs on a task whose cancellation was swallowed."""

from __future__ import annotations

import asyncio

from kernel.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def loop() -> None:  # what 3.11's wait_for does when the cancel meets a completion
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task, None]), 5)
    assert task.cancelled() and swallowed == 1


async def test_a_task_that_never_ends_is_left_behind_after_the_last_round() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], rounds=2), 5)  # returns after ~2 s instead of hanging
    assert not task.done()
    task.get_coro().close()  # type: ignore[union-attr]
