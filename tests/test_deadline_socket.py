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


@pytest.fixture
def tcp() -> Iterator[tuple[DeadlineSocket, socket.socket]]:
    """A loopback TCP connection, as a server's client socket (the kernel's send buffer and
    its acknowledgements are TCP's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 512 * 1024)  # a tail of ~1 MB
    wrapped = DeadlineSocket(server, 0.5)
    wrapped.begin_request()
    yield wrapped, client
    server.close()
    client.close()


def paced_reader(
    client: socket.socket, total: int, rate: float
) -> tuple[threading.Thread, bytearray]:
    received = bytearray()

    def read() -> None:
        started = time.monotonic()
        while len(received) < total:
            chunk = client.recv(16384)
            if not chunk:
                return
            received.extend(chunk)
            time.sleep(max(0.0, started + len(received) / rate - time.monotonic()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader, received


def test_a_pipelined_response_counts_the_tail_of_the_one_before_as_progress(tcp):
    """The second response of a pipelined pair starts while the kernel still holds the end
    of the first; a client reading steadily (10 x the minimum rate) gets both whole. It was
    cut off, and the first response truncated, when that backlog counted against it."""
    wrapped, client = tcp
    first, second = b"a" * 2_000_000, b"b" * 2_000_000
    reader, received = paced_reader(client, len(first) + len(second), 1_000_000)
    wrapped.sendall(first)
    wrapped.begin_request()  # the next pipelined request, read at once
    wrapped.sendall(second)
    reader.join(timeout=15)
    assert bytes(received) == first + second


def test_a_client_that_stops_reading_is_still_cut_off_after_a_pipelined_response(tcp):
    wrapped, client = tcp
    reader, _ = paced_reader(client, 1_000_000, 2_000_000)  # takes the first, then stops
    wrapped.sendall(b"a" * 1_000_000)
    reader.join(timeout=10)
    wrapped.begin_request()
    started = time.monotonic()
    with pytest.raises(ClientTimeout):
        wrapped.sendall(b"b" * 20_000_000)
    assert time.monotonic() - started < 5


def test_sendfile_goes_through_the_deadlines(tcp, tmp_path):
    wrapped, client = tcp
    wrapped._sock.setblocking(False)  # as gunicorn leaves a connection before PIE wraps it
    wrapped = DeadlineSocket(wrapped._sock, 0.5)
    path = tmp_path / "page"
    path.write_bytes(bytes(range(256)) * 4000)
    reader, received = paced_reader(client, 4000 * 256 - 1000, 50_000_000)
    wrapped.setblocking(True)  # recorded only: the real socket may be in any mode
    with open(path, "rb") as file:
        assert wrapped.sendfile(file, offset=1000) == 4000 * 256 - 1000
    reader.join(timeout=10)
    assert bytes(received) == path.read_bytes()[1000:]
