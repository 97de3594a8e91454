"""voxcast.wire over real UCX on loopback: tcp and shared memory, thread and eventfd modes."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from vxhelpers import import_wire, wire_child_env, wire_module_dir

ROOT = Path(__file__).resolve().parents[2]
wire = import_wire()  # the module of the tree under test, or fail
WIRE_PATH = str(wire_module_dir())


pytestmark = pytest.mark.asyncio

PARAMS = [("tcp", "thread"), ("tcp", "eventfd"), ("shm", "thread"), ("shm", "eventfd")]
IDS = [f"{t}-{m}" for t, m in PARAMS]


@pytest_asyncio.fixture(params=PARAMS, ids=IDS)
async def pair(request):
    tls, mode = request.param
    server = wire.Server("127.0.0.1", 0, tls=tls, mode=mode)
    server.start()
    client = wire.Client(tls=tls, mode=mode)
    await client.aconnect("127.0.0.1", server.port)
    ep = await server.aaccept(10)
    yield server, client, ep
    await client.aclose(force=True)
    await server.aclose(force=True)


async def test_connect_agrees_on_ids_and_names_peers(pair):
    server, client, ep = pair
    assert client.id == ep.id != 0
    assert ep.peer.startswith("127.0.0.1:")
    assert [e.id for e in server.endpoints] == [ep.id]
    assert "tcp" in server.transports


async def test_both_directions_at_once(pair):
    server, client, ep = pair
    a = np.arange(1 << 18, dtype=np.float32)
    b = np.arange(1 << 18, dtype=np.float32)[::-1].copy()
    at_server, at_client = np.empty_like(a), np.empty_like(b)
    results = await asyncio.gather(
        server.arecv(at_server, 10, ~0), client.arecv(at_client, 20, ~0),
        client.asend(a, 10), ep.asend(b, 20))
    assert results[0] == (10, a.nbytes) and results[1] == (20, b.nbytes)
    assert np.array_equal(at_server, a) and np.array_equal(at_client, b)


async def test_tags_masks_and_out_of_order(pair):
    server, client, _ = pair
    msgs = {0x0300: b"three", 0x0101: b"one-one", 0x0202: b"two-two-two", 0x0999: b"nine"}
    for tag, data in msgs.items():
        await client.asend(data, tag)
    buf = bytearray(64)
    assert await server.arecv(buf, 0x0202, ~0) == (0x0202, 11)
    assert bytes(buf[:11]) == b"two-two-two"
    assert await server.arecv(buf, 0x0100, 0xFF00) == (0x0101, 7)
    assert await server.arecv(buf, 0, 0) == (0x0300, 5)  # mask 0: the oldest left
    assert await server.arecv(buf, 0x0999, ~0) == (0x0999, 4)


async def test_64_mib_lands_in_the_very_buffer(pair):
    server, client, _ = pair
    n = (64 << 20) + 4096
    src = np.random.default_rng(1).integers(0, 255, n, dtype=np.uint8)
    # Receive into a view at an offset of a larger array: if the bytes show up in the
    # parent at that offset, the receive wrote into the memory it was given.
    parent = np.zeros(n + 8192, np.uint8)
    view = parent[4096:4096 + n]
    address = wire.address_of(view)
    assert address == wire.address_of(parent) + 4096
    recv = asyncio.ensure_future(server.arecv(view, 5, ~0))
    assert await client.asend(src, 5) == (5, n)
    assert await recv == (5, n)
    assert np.array_equal(parent[4096:4096 + n], src)
    assert not parent[:4096].any() and not parent[4096 + n:].any()


async def test_several_clients_tell_senders_apart_by_id(pair):
    server, first, _ = pair
    tls, mode = server.transports.split(",")[0], server.mode
    others = [wire.Client(tls=tls, mode=mode) for _ in range(3)]
    for c in others:
        await c.aconnect("127.0.0.1", server.port)
    clients = [first] + others
    for c in clients:
        await c.asend(np.array([c.id], np.uint32), (c.id << 32) | 1)
    buf = np.zeros(1, np.uint32)
    seen = set()
    for _ in clients:
        tag, n = await server.arecv(buf, 1, 0xFFFFFFFF)
        assert tag >> 32 == int(buf[0]) and n == 4
        seen.add(int(buf[0]))
    assert seen == {c.id for c in clients}
    # Reply to each through its own endpoint.
    by_id = {e.id: e for e in server.endpoints}
    for c in clients:
        await by_id[c.id].asend(np.array([c.id * 10], np.uint32), 2)
        out = np.zeros(1, np.uint32)
        assert await c.arecv(out, 2, ~0) == (2, 4) and out[0] == c.id * 10
    for c in others:
        await c.aclose()


async def test_larger_message_than_buffer_is_an_error(pair):
    server, client, _ = pair
    await client.asend(bytes(1024), 1)
    with pytest.raises(wire.TruncatedError, match="512-byte"):
        await server.arecv(bytearray(512), 1, ~0)


async def test_receive_buffers_must_be_writable(pair):
    server, _, _ = pair
    with pytest.raises(TypeError, match="writable"):
        await server.arecv(b"read-only bytes", 1, ~0)


async def test_cancelling_the_task_cancels_the_request(pair):
    server, client, _ = pair
    buf = np.zeros(16, np.uint8)
    task = asyncio.ensure_future(client.arecv(buf, 77, ~0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled request no longer matches: the next message goes to the next receive.
    await server.endpoints[0].asend(np.full(16, 3, np.uint8), 77)
    out = np.zeros(16, np.uint8)
    assert await asyncio.wait_for(client.arecv(out, 77, ~0), 10) == (77, 16)
    assert (out == 3).all() and not buf.any()


async def test_close_with_queued_completions(pair):
    server, client, ep = pair
    data = np.arange(10, dtype=np.int64)
    got = np.zeros_like(data)
    recv = asyncio.ensure_future(server.arecv(got, 4, ~0))
    await client.asend(data, 4)
    await recv
    client.send(data, 5)  # completes; a server receive of it is never posted
    await client.aclose()
    await server.aclose()
    assert server.closed and client.closed


async def test_sync_forms(pair):
    server, client, ep = pair
    loop = asyncio.get_running_loop()
    data = np.arange(100, dtype=np.int64)
    got = np.zeros_like(data)
    recv = loop.run_in_executor(None, server.recv, got, 9, ~0)
    assert client.send(data, 9) == (9, data.nbytes)
    assert await recv == (9, data.nbytes)
    # A sync call progresses only its own node (eventfd mode has no thread): with both ends
    # in this process, the other end's progress comes from this loop, so wait off-loop.
    await loop.run_in_executor(None, client.flush)
    await loop.run_in_executor(None, ep.flush)
    assert np.array_equal(got, data)


async def test_completions_are_batched(pair):
    server, client, _ = pair
    bufs = [np.zeros(8, np.uint8) for _ in range(200)]
    recvs = [asyncio.ensure_future(server.arecv(b, 3, ~0)) for b in bufs]
    await asyncio.sleep(0.01)
    one = np.ones(8, np.uint8)
    await asyncio.gather(*(client.asend(one, 3) for _ in bufs))
    await asyncio.gather(*recvs)
    stats = server.stats()
    assert stats["completions"] >= 200
    # One loop wake-up per batch, never more than one per completion.
    assert stats["wakes"] <= stats["completions"]


async def test_closing_twice_and_using_closed_objects(pair):
    server, client, ep = pair
    await client.aclose()
    await client.aclose()
    client.close()
    with pytest.raises(wire.ClosedError):
        await client.asend(b"x", 1)
    deadline = time.monotonic() + 10
    while server.endpoints and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert server.endpoints == []
    await server.aclose()
    await server.aclose()


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_a_listed_endpoint_can_be_used_at_once(tls):
    # Server.endpoints (and so aaccept) must list an endpoint only once operations on it
    # work: a thread watches the list as fast as it can and sends on every new endpoint the
    # moment it appears. Listing it before the module could reach it was a race that failed
    # the soak test in CI ("endpoint 1 is not connected to this server") under load.
    import threading
    server = wire.Server("127.0.0.1", 0, tls=tls, mode="thread")
    server.start()
    clients, errors, sent = [], [], []
    stop = threading.Event()

    def watch():
        seen = set()
        while not stop.is_set():
            for ep in server.endpoints:
                if ep.id not in seen:
                    seen.add(ep.id)
                    try:
                        ep.send(b"hello", 77)
                        sent.append(ep.id)
                    except wire.WireError as exc:
                        errors.append(f"endpoint {ep.id}: {exc!r}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(24):
            client = wire.Client(tls=tls, mode="thread")
            clients.append(client)
            await client.aconnect("127.0.0.1", server.port)
            got = bytearray(8)
            # The greeting arrives: the endpoint was listed and usable (bounded, not timed).
            try:
                assert await asyncio.wait_for(client.arecv(got, 77, ~0), 10) == (77, 5)
            except asyncio.TimeoutError:
                pytest.fail(f"client {len(clients)}: no greeting within 10 s; {errors}")
    finally:
        stop.set()
        watcher.join(30)
        for client in clients:
            await client.aclose(force=True)
        await server.aclose(force=True)
    assert errors == []
    assert len(sent) == 24


async def test_connecting_to_a_closed_port_is_refused():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    client = wire.Client()
    with pytest.raises(wire.RefusedError, match=f"127.0.0.1:{port}"):
        await asyncio.wait_for(client.aconnect("127.0.0.1", port), 60)  # a guard, not a timing
    await client.aclose()


async def test_bad_arguments_are_clear_errors():
    with pytest.raises(wire.AddressError, match="no-such-host.invalid"):
        wire.Client().connect("no-such-host.invalid", 1)
    with pytest.raises(wire.WireError, match="thread, eventfd, polling"):
        wire.Client(mode="spin")
    with pytest.raises(wire.AddressError):
        wire.Server("203.0.113.7", 0)
    with pytest.raises(wire.WireError, match="polling"):
        wire.Server("127.0.0.1", 0, mode="polling")
    with pytest.raises(wire.WireError, match="before the client is connected"):
        await wire.Client().arecv(bytearray(8), 0, 0)


# The child progresses only until its client's hello arrives, then never again: sends to it
# stay pending (large messages go eagerly over shared memory and would otherwise complete
# into its unexpected queue).
CHILD_SERVER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {wire!r}]
    from voxcast import wire
    s = wire.Server("127.0.0.1", 0, tls={tls!r}, mode="eventfd")
    print(s.port, flush=True)
    s.recv(bytearray(8), 7, ~0)  # progresses until the client's hello has arrived
    print("hello received", flush=True)  # and never again
    time.sleep(600)
""")


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_killed_peer_fails_pending_operations_quickly(tls):
    code = CHILD_SERVER.format(root=str(ROOT / "python"), wire=WIRE_PATH, tls=tls)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env=wire_child_env())
    try:
        port = int(child.stdout.readline())
        client = wire.Client(tls=tls)
        await client.aconnect("127.0.0.1", port)
        await client.asend(b"hello", 7)
        # The child stops progressing once it has the hello: wait for it to say so.
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        assert line.strip() == "hello received", line
        big = np.ones(64 << 20, np.uint8)
        send = asyncio.ensure_future(client.asend(big, 1))  # the child never progresses
        recv = asyncio.ensure_future(client.arecv(np.zeros(16, np.uint8), 2, ~0))
        await asyncio.sleep(0.1)
        assert not send.done() and not recv.done()
        child.send_signal(signal.SIGKILL)
        for fut in (send, recv):  # 30 s: a guard against a hang, not a timing
            with pytest.raises(wire.PeerFailure, match="127.0.0.1"):
                await asyncio.wait_for(fut, 30)
        await client.aclose()
    finally:
        child.kill()
        child.wait()


CHILD_SENDER = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {wire!r}]
    import numpy as np
    from voxcast import wire
    import asyncio

    async def main():
        c = wire.Client(tls={tls!r})
        await c.aconnect("127.0.0.1", {port})
        data = np.arange({n}, dtype=np.uint8)
        send = asyncio.ensure_future(c.asend(data, 42))  # not awaited before the flush
        await c.aflush()
        await send
        await c.aclose()

    asyncio.run(main())
""")


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_flush_then_close_delivers_a_large_message(tls):
    server = wire.Server("127.0.0.1", 0, tls=tls)
    server.start()
    n = 16 << 20
    code = CHILD_SENDER.format(root=str(ROOT / "python"), wire=WIRE_PATH, tls=tls,
                               port=server.port, n=n)
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=wire_child_env())
    buf = np.zeros(n, np.uint8)
    got = await asyncio.wait_for(server.arecv(buf, 42, ~0), 60)
    assert got == (42, n)
    assert np.array_equal(buf, np.arange(n, dtype=np.uint8))
    assert await asyncio.wait_for(child.wait(), 60) == 0
    await server.aclose()


CHILD_MISMATCHED = textwrap.dedent("""
    import sys, asyncio
    sys.path[:0] = [{root!r}, {wire!r}]
    from voxcast import wire

    async def main():
        c = wire.Client(tls={tls!r}, connect_timeout=10)
        try:
            await c.aconnect("127.0.0.1", {port})
            print("connected")
        except wire.RefusedError as e:
            print("refused:", e.message)
        await c.aclose(force=True)

    asyncio.run(main())
""")


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_a_client_with_other_ucx_settings_is_refused_not_fatal(tls):
    # Peers that disagree on UCX's rendezvous lanes make UCX 1.13 abort in wire-up; the
    # server must refuse such a client before that, stay up, and the client must be told
    # what to check.
    server = wire.Server("127.0.0.1", 0, tls=tls)
    server.start()
    code = CHILD_MISMATCHED.format(root=str(ROOT / "python"), wire=WIRE_PATH, tls=tls,
                                   port=server.port)
    env = wire_child_env()
    env["UCX_MAX_RNDV_LANES"] = "2"
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env,
                                                 stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(child.communicate(), 60)
    text = out.decode()
    assert child.returncode == 0, text
    assert text.startswith("refused:") and "UCX_MAX_RNDV_LANES" in text, text
    assert "127.0.0.1:" in text, text
    # The server is still there for a client that agrees.
    client = wire.Client(tls=tls)
    await client.aconnect("127.0.0.1", server.port)
    ep = await server.aaccept(10)
    buf = bytearray(5)
    recv = asyncio.ensure_future(server.arecv(buf, 9, ~0))
    await client.asend(b"still", 9)
    assert await asyncio.wait_for(recv, 10) == (9, 5) and bytes(buf) == b"still"
    assert ep.id == client.id
    await client.aclose(force=True)
    await server.aclose(force=True)


async def test_operations_and_receivers_refuse_bad_arguments(pair):
    server, client, ep = pair
    with pytest.raises(TypeError, match="writable"):
        server.post_recv(b"read-only bytes", 1, ~0)
    with pytest.raises(wire.WireError, match="size .* and depth .* must be positive"):
        server.receiver(1, ~0, size=0)
    with pytest.raises(wire.WireError, match="depth"):
        server.receiver(1, ~0, size=16, depth=0)
    with pytest.raises(wire.WireError, match="buffers is empty"):
        server.receiver(1, ~0, buffers=[])
    # A receive cancelled before anything matched ends Cancelled, names itself, and its
    # buffer stays untouched; the next message goes to the next receive.
    buf = bytearray(b"\xa5" * 16)
    op = server.post_recv(buf, 5, ~0)
    op.cancel()
    with pytest.raises(wire.Cancelled) as info:
        await asyncio.wait_for(op, 10)
    assert info.value.message and bytes(buf) == b"\xa5" * 16
    got = bytearray(4)
    nxt = server.post_recv(got, 5, ~0)
    await client.post_send(b"next", 5)
    assert await asyncio.wait_for(nxt, 10) == (5, 4) and bytes(got) == b"next"
    assert bytes(buf) == b"\xa5" * 16


@pytest.mark.parametrize("tls", ["tcp", "shm"])
async def test_eventfd_mode_arms_about_once_per_message(tls):
    """Each arm of the worker's event fd is system calls (an eventfd read, a drain of each
    transport's wake-up socket) and asks the peers to signal their next message. Arming in a
    loop while a stream kept UCX busy (and on every turn of spin_us) armed 13 to 38 times per
    message and cost 64 KiB shm streams two thirds of their speed (docs/benchmarks.md,
    "Arming once"); now each progress arms once: about two per message here."""
    import collections
    n, size = 2000, 64 << 10
    server = wire.Server("127.0.0.1", 0, tls=tls, mode="eventfd", spin_us=50)
    server.start()
    client = wire.Client(tls=tls, mode="eventfd", spin_us=50)
    await client.aconnect("127.0.0.1", server.port)
    await server.aaccept(10)
    data = np.random.default_rng(13).integers(0, 256, size, dtype=np.uint8)
    rx = server.receiver(3, ~0, size=size, depth=16)

    async def send():
        ops = collections.deque()
        for _ in range(n):
            ops.append(client.post_send(data, 3))
            if len(ops) >= 16:
                await ops.popleft()
        for op in ops:
            await op

    sending = asyncio.ensure_future(send())
    got = 0
    async for m in rx:
        assert m.nbytes == size and bytes(m.data) == data.tobytes()
        got += 1
        if got == n:
            break
    await rx.aclose()
    await sending
    arms = {"server": server.stats()["arms"], "client": client.stats()["arms"]}
    await client.aclose()
    await server.aclose()
    for who, count in arms.items():
        assert 0 < count <= 5 * n, f"the {who} armed {count} times for {n} messages"
