"""The writer lock of SQLite's threads (pie/writer_lock.py): mutual exclusion, admitted work
(a job's start, its completion) ahead of new work, and new work never starved; and, through
the HTTP API on a real SQLite database, a completion that waits beside a new version goes
first."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pie.db import database
from pie.writer_lock import WriterLock, admitted, admitted_work, is_admitted
from tests.conftest import POSTGRES_URL
from tests.helpers import Client, register_active, wait_for
from tests.services.conftest import RecorderPlugin


def waiter(lock: WriterLock, first: bool, order: list[str], name: str) -> threading.Thread:
    def run() -> None:
        lock.acquire(first)
        order.append(name)
        lock.release()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_one_holder_at_a_time_whatever_the_class() -> None:
    lock, inside, most, count = WriterLock(), [0], [0], [0]

    def work(first: bool) -> None:
        for _ in range(300):
            lock.acquire(first)
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            value = count[0]
            time.sleep(0)  # let another thread run while holding it
            count[0] = value + 1
            inside[0] -= 1
            lock.release()

    threads = [threading.Thread(target=work, args=(n % 2 == 0,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert count[0] == 8 * 300 and most[0] == 1
    assert not lock.locked()


def test_admitted_work_goes_before_new_work_that_waited_longer() -> None:
    lock, order = WriterLock(), []
    lock.acquire(False)
    rest = waiter(lock, False, order, "new")
    wait_for(lambda: lock._rest_waiting == 1, 5, 0.001)
    first = waiter(lock, True, order, "admitted")
    wait_for(lambda: lock._first_waiting == 1, 5, 0.001)
    lock.release()
    rest.join(5), first.join(5)
    assert order == ["admitted", "new"]


def test_new_work_is_next_after_a_streak_of_admitted_work() -> None:
    """While new work waits, admitted work goes ahead of it `streak` times in a row, then it
    is its turn, however much admitted work is waiting."""
    lock, order = WriterLock(streak=2), []
    lock.acquire(True)
    rest = waiter(lock, False, order, "new")
    wait_for(lambda: lock._rest_waiting == 1, 5, 0.001)
    gate = threading.Event()

    def admitted_writer(name: str) -> None:
        lock.acquire(True)
        order.append(name)
        gate.wait(5)  # hold it until all the admitted writers queue
        lock.release()

    firsts = [threading.Thread(target=admitted_writer, args=(f"a{n}",)) for n in range(4)]
    for thread in firsts:
        thread.start()
    wait_for(lambda: lock._first_waiting == 4, 5, 0.001)
    gate.set()
    lock.release()
    for thread in [rest, *firsts]:
        thread.join(5)
    assert order.index("new") == 2, order  # two admitted writers, then the new work
    assert sorted(order) == ["a0", "a1", "a2", "a3", "new"]


def test_without_new_work_waiting_admitted_work_has_no_streak_limit() -> None:
    lock, order = WriterLock(streak=1), []
    lock.acquire(True)
    threads = [waiter(lock, True, order, f"a{n}") for n in range(3)]
    wait_for(lambda: lock._first_waiting == 3, 5, 0.001)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert sorted(order) == ["a0", "a1", "a2"]


def test_a_waiter_interrupted_after_its_wake_up_passes_it_on() -> None:
    """An exception (KeyboardInterrupt in a main thread) reaching a waiter that was just
    woken must not take the only wake-up with it: the next waiter gets the free lock."""
    import ctypes

    lock, got = WriterLock(), []

    def wait(name: str) -> None:
        try:
            lock.acquire(False)
        except SystemExit:
            got.append(f"{name} interrupted")
            return
        got.append(name)
        lock.release()

    lock.acquire(False)
    first = threading.Thread(target=wait, args=("r1",), daemon=True)
    first.start()
    wait_for(lambda: lock._rest_waiting == 1, 5, 0.001)
    second = threading.Thread(target=wait, args=("r2",), daemon=True)
    second.start()
    wait_for(lambda: lock._rest_waiting == 2, 5, 0.001)
    with lock._first:  # the lock's mutex: r1 cannot run before its exception is set
        lock._held = False
        lock._rest.notify()  # what release does: wake one waiter, r1 (the first)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(first.ident), ctypes.py_object(SystemExit)
        )
    first.join(5), second.join(5)
    assert got == ["r1 interrupted", "r2"] and not lock.locked()


def test_releasing_an_unheld_lock_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        WriterLock().release()


def test_admitted_marks_the_thread_and_nests() -> None:
    assert not is_admitted()
    with admitted():
        assert is_admitted()
        with admitted():
            assert is_admitted()
        assert is_admitted()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(is_admitted()))
        thread.start(), thread.join()
        assert seen == [False]  # per thread
    assert not is_admitted()
    assert admitted_work(is_admitted)() is True


@pytest.mark.skipif(bool(POSTGRES_URL), reason="Postgres has no writer lock: rows lock")
def test_a_waiting_completion_commits_before_a_new_version_that_waited_first(make_app) -> None:
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 5}, plugins=[RecorderPlugin()])
    client = Client(app.test_client())
    register_active(client, "rec", {"type": "recorder"})
    r = client.post("/v2/models/rec/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    wait_for(lambda: client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "started", 10)

    lock = database.obj._writer
    granted: list[str] = []
    real_acquire = lock.acquire

    def recording_acquire(first: bool | None = None) -> None:
        real_acquire(first)
        granted.append(threading.current_thread().name)

    lock.acquire = recording_acquire
    results: dict[str, Any] = {}

    def post(name: str, path: str, json: dict[str, Any]) -> threading.Thread:
        def run() -> None:
            results[name] = Client(app.test_client()).post(path, json=json)

        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    real_acquire(False)  # the test holds the writer: both requests queue behind it
    try:
        version = post("version", "/v2/models/rec/new_version", {})
        wait_for(lambda: lock._rest_waiting == 1, 10, 0.001)
        completion = post(
            "completion",
            f"/v2/models/rec/versions/1/jobs/{job_id}/complete",
            {"status": "success", "output": {"ok": True}},
        )
        wait_for(lambda: lock._first_waiting == 1, 10, 0.001)
    finally:
        lock.release()
    version.join(10), completion.join(10)
    del lock.acquire
    assert results["version"].status_code == 201, results["version"].get_json()
    assert results["completion"].status_code == 200, results["completion"].get_json()
    assert granted[:2] == ["completion", "version"], granted
