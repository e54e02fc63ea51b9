"""Work ahead on a window of upcoming items in a few threads, hand results back in order.

:func:`ahead` is how the run loop generates the programs of upcoming samples while earlier
samples run: ``window`` items are submitted ahead, ``workers`` at a time; the caller takes
each item's future in input order and waits only for that one. The threads are daemons, so
an interrupted run (Ctrl-C) exits at once instead of waiting for requests still in flight;
closing the iterator cancels whatever has not started.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _work(tasks: queue.Queue) -> None:
    while True:
        task = tasks.get()
        if task is None:
            return
        fn, item, fut = task
        if not fut.set_running_or_notify_cancel():
            continue
        try:
            fut.set_result(fn(item))
        except BaseException as e:  # handed to whoever waits on the future
            fut.set_exception(e)


def ahead(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int
) -> Generator[tuple[T, Future[R]], None, None]:
    """``(item, future of fn(item))`` in input order, with up to ``window`` items being worked on ahead."""
    tasks: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_work, args=(tasks,), daemon=True, name=f"ahead-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    pending: deque[tuple[T, Future[R]]] = deque()
    upcoming = iter(items)

    def submit_next() -> None:
        for item in upcoming:
            fut: Future[R] = Future()
            tasks.put((fn, item, fut))
            pending.append((item, fut))
            return

    try:
        for _ in range(max(1, window)):
            submit_next()
        while pending:
            item, fut = pending.popleft()
            submit_next()
            yield item, fut
    finally:
        for _, fut in pending:
            fut.cancel()
        for _ in threads:
            tasks.put(None)
