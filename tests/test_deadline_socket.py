"""pie.slow_clients.DeadlineSocket on a real socket pair: what has arrived is read, and what
the send buffer takes is written, in one system call with no timeout armed (the common case
of every request); a wait still gets the deadline, and a deadline that has passed is
enforced even when the bytes are there. The server-level behaviour (slowloris, slow
readers) is tests/test_slow_clients.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pie.slow_clients import ClientTimeout, DeadlineSocket


@pytest.fixture
def pair() -> Iterator[tuple[DeadlineSocket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(True)
    wrapped = DeadlineSocket(server, 0.5)
    wrapped.begin_request()
    yield wrapped, client
    server.close()
    client.close()


def test_what_has_arrived_is_read_without_arming_a_timeout(pair):
    wrapped, client = pair
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert wrapped.recv(8192) == b"GET / HTTP/1.1\r\n\r\n"
    buffer = bytearray(16)
    client.sendall(b"body")
    assert wrapped.recv_into(buffer, 16) == 4 and bytes(buffer[:4]) == b"body"
    assert wrapped._sock.gettimeout() is None  # never armed: no mode change, no poll


def test_a_read_that_must_wait_waits_within_the_deadline(pair):
    wrapped, client = pair
    threading.Timer(0.1, client.sendall, (b"late",)).start()
    assert wrapped.recv(16) == b"late"
    client.sendall(b"more")
    started = time.monotonic()
    assert wrapped.recv(16) == b"more"  # there already: no wait, though a timeout was armed
    assert time.monotonic() - started < 0.05
    with pytest.raises(ClientTimeout):
        wrapped.recv(16)  # nothing more comes: the deadline ends the wait


def test_a_passed_deadline_is_enforced_even_when_bytes_are_there(pair):
    wrapped, client = pair
    client.sendall(b"G")
    assert wrapped.recv(1) == b"G"  # the request's first read starts its deadline
    time.sleep(0.6)
    client.sendall(b"ET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ClientTimeout):
        wrapped.recv(8192)
    wrapped.begin_request()  # the next request on the connection starts afresh
    assert wrapped.recv(8192).startswith(b"ET /")


def test_a_response_the_buffer_takes_is_written_at_once(pair):
    wrapped, client = pair
    wrapped.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    wrapped.sendall(memoryview(b'{"ok":true}'))
    assert wrapped._sock.gettimeout() is None
    assert wrapped.written == 19 + 11
    assert client.recv(64) == b'HTTP/1.1 200 OK\r\n\r\n{"ok":true}'


def test_a_response_larger_than_the_buffer_goes_out_whole_to_a_reading_client(pair):
    wrapped, client = pair
    page = bytes(range(256)) * 40_000  # 10 MB: far more than a socket pair's buffer
    received = bytearray()

    def read() -> None:
        while len(received) < len(page):
            received.extend(client.recv(1 << 20))

    reader = threading.Thread(target=read)
    reader.start()
    wrapped.sendall(page)
    reader.join(timeout=10)
    assert bytes(received) == page and wrapped.written == len(page)


def test_a_response_nobody_reads_is_cut_off(pair):
    wrapped, _ = pair
    with pytest.raises(ClientTimeout):
        wrapped.sendall(b"x" * 20_000_000)


def test_the_servers_mode_switches_reach_the_socket_only_when_a_call_needs_them(pair):
    wrapped, client = pair
    for _ in range(3):  # what gunicorn does around each request of a kept-alive connection
        wrapped.setblocking(False)
        wrapped.settimeout(5.0)
        wrapped.settimeout(None)
        wrapped.setblocking(True)
    assert wrapped._sock.gettimeout() is None  # no system call for any of them
    wrapped.setblocking(False)
    assert wrapped.gettimeout() == 0.0 and not wrapped.getblocking()
    with pytest.raises(BlockingIOError):  # non-blocking, as the server asked
        wrapped.recv(16)
    client.sendall(b"x")
    assert wrapped.recv(16) == b"x"
    wrapped.settimeout(0.2)
    wrapped.begin_request()
    started = time.monotonic()
    with pytest.raises(ClientTimeout):  # the server's own timeout, within the deadline
        wrapped.recv(16)
    assert 0.15 < time.monotonic() - started < 0.45
