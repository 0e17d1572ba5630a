"""Stopping background tasks: cancel, and cancel again, but never wait forever."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None], rounds: int = 5) -> None:
    """Cancel tasks and wait until they end, re-cancelling the ones still running each second.

    Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited
    operation completes (fixed in 3.12), and background loops use it around their waits and database
    calls: such a task loops on as if never cancelled, and a plain ``cancel(); await task`` hangs the
    shutdown. A task that survives every round is logged with its stack (a bug to fix) and left behind.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    for _ in range(rounds):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in pending:
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.error("task ignored its cancellation", task=task.get_name(), stack=stack.getvalue())
