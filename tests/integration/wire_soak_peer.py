"""One side of the voxcast.wire soak test (tests/integration/test_wire_soak.py).

    wire_soak_peer.py server|client --tls shm --mode thread --count 100000 [--port P]
                      [--exit-after K] [--seed S] [--lead N]

Both sides send ``count`` messages and receive ``count`` messages at the same time. Every
message's size, tag and bytes follow from its sequence number, so the receiver checks
each one byte for byte without any side channel:

- class S (90 %): 1 B to 4 KiB, received by a ``Receiver`` stream (tag mask on the class);
- class M (9 %): 4 KiB to 256 KiB, received by ``post_recv`` operations (class mask),
  a random third of which are cancelled: each then either delivers its message or ends
  ``Cancelled`` with its buffer untouched (checked then and again at the end);
- class L (1 %): 256 KiB to 4 MiB, received by plain ``arecv`` on the exact tag (full mask);
- class X: a tag nobody sends, posted and cancelled at random (always ``Cancelled``).

``--lead N`` (default 512): a side sends message ``seq`` only once it has received
``seq - N`` messages itself. Both sides send alike, so neither gets more than about 2N
messages ahead of the other's receives. Without the bound the sender runs far ahead over
shm, the receiver's UCX unexpected queue grows to thousands of messages, and every receive
posted on a mask (classes S, M and X) walks it: UCX matches masked receives by a linear
search, so the run measured that search (8x the time; docs/wire.md, "A receiver that falls
behind") rather than voxcast's paths. ``--lead 0`` lifts the bound.

``--exit-after K``: the process dies (``os._exit``) after receiving K messages, without
closing anything. The side that stays reports the error it got, which must name the peer.

Prints one JSON object: received counts per class, cancellations, errors, elapsed time.
Exit code 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time

import numpy as np

from voxcast import wire

CLS_S, CLS_M, CLS_L, CLS_X, CLS_DONE = 1, 2, 3, 7, 9
CLASS_SHIFT = 56
DIR_SHIFT = 48  # which side sent it: 0 server, 1 client
SEQ_MASK = (1 << 40) - 1
CLASS_MASK = 0xFF << CLASS_SHIFT
REF_BYTES = 8 << 20
S_MAX, M_MAX, L_MAX = 4 << 10, 256 << 10, 4 << 20
SENTINEL = 0xA5
SENTINELS = memoryview(bytes([SENTINEL]) * M_MAX)  # refills a used class M buffer


def mix(i: int, salt: int) -> int:
    """A cheap deterministic hash (splitmix64) of (i, salt)."""
    z = (i * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return z ^ (z >> 31)


_EQUAL = np.empty(L_MAX, bool)  # np.equal's output: no array allocated per message


def same(a: memoryview, b: memoryview) -> bool:
    if len(a) != len(b):
        return False
    if len(a) < (64 << 10):
        return a == b  # memoryview's compare: fast for small ones
    eq = _EQUAL[:len(a)]
    np.equal(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8), out=eq)
    return bool(eq.all())


def klass(seq: int) -> int:
    if seq % 100 == 0:
        return CLS_L
    if seq % 10 == 0:
        return CLS_M
    return CLS_S


def size_of(seq: int, direction: int) -> int:
    h = mix(seq, 17 + direction)
    c = klass(seq)
    if c == CLS_S:
        return 1 + h % S_MAX
    if c == CLS_M:
        return S_MAX + 1 + h % (M_MAX - S_MAX)
    return M_MAX + 1 + h % (L_MAX - M_MAX)


def offset_of(seq: int, direction: int, size: int) -> int:
    return mix(seq, 91 + direction) % (REF_BYTES - size + 1)


def tag_of(seq: int, direction: int) -> int:
    return (klass(seq) << CLASS_SHIFT) | (direction << DIR_SHIFT) | seq


class Checker:
    """What one side has received from the other, checked byte for byte."""

    def __init__(self, ref: memoryview, direction: int, count: int):
        self.ref = ref
        self.direction = direction  # the sender's direction bit
        self.count = count
        self.seen = bytearray(count)
        self.received = {CLS_S: 0, CLS_M: 0, CLS_L: 0}
        self.errors: list[str] = []

    def check(self, expect_class: int, tag: int, nbytes: int, data) -> None:
        seq = tag & SEQ_MASK
        c = tag >> CLASS_SHIFT
        d = (tag >> DIR_SHIFT) & 0xFF
        if c != expect_class or d != self.direction or seq >= self.count or klass(seq) != c:
            self.fail(f"tag {tag:#x} reached the class {expect_class} receive")
            return
        if self.seen[seq]:
            self.fail(f"message {seq} received twice")
            return
        self.seen[seq] = 1
        size = size_of(seq, d)
        if nbytes != size:
            self.fail(f"message {seq}: {nbytes} bytes, expected {size}")
            return
        off = offset_of(seq, d, size)
        if not same(memoryview(data)[:nbytes], self.ref[off:off + size]):
            self.fail(f"message {seq} ({size} B): bytes differ")
            return
        self.received[c] += 1

    def fail(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    def total(self) -> int:
        return sum(self.received.values())


async def run(args) -> dict:
    rng = random.Random(args.seed * 2 + (args.role == "client"))
    ref = np.random.default_rng(args.seed).integers(0, 256, REF_BYTES, dtype=np.uint8)
    refv = memoryview(ref).cast("B")
    me = 0 if args.role == "server" else 1
    peer_dir = 1 - me
    count = args.count
    out: dict = {"role": args.role, "tls": args.tls, "mode": args.mode}

    if args.role == "server":
        node = wire.Server("127.0.0.1", 0, tls=args.tls, mode=args.mode)
        node.start()
        print(json.dumps({"port": node.port}), flush=True)
        ep = await node.aaccept(30)
        gone = asyncio.get_running_loop().create_future()
        node.on_disconnect = lambda e, err: gone.done() or gone.set_result(err)
    else:
        node = wire.Client(tls=args.tls, mode=args.mode)
        await node.aconnect("127.0.0.1", args.port)
        ep = node.endpoint
        gone = None

    checker = Checker(refv, peer_dir, count)
    expected = {c: sum(1 for s in range(count) if klass(s) == c) for c in (CLS_S, CLS_M, CLS_L)}
    stats = {"cancel_requested": 0, "cancelled": 0, "delivered_after_cancel": 0,
             "x_cancelled": 0}
    kept: list[bytearray] = []  # cancelled buffers, checked again at the end
    t0 = time.monotonic()
    progress = asyncio.Event()

    def received_one():
        progress.set()
        if args.exit_after and checker.total() >= args.exit_after:
            os._exit(3)  # dies mid-way: nothing closed, nothing flushed

    async def recv_small():
        rx = node.receiver(CLS_S << CLASS_SHIFT, CLASS_MASK, size=S_MAX, depth=16)
        got = 0
        async for msg in rx:
            checker.check(CLS_S, msg.tag, msg.nbytes, msg.data)
            got += 1
            received_one()
            if got == expected[CLS_S]:
                break
        await rx.aclose()

    def untouched(buf: bytearray) -> bool:
        return buf.count(SENTINEL) == len(buf)

    async def recv_medium():
        window = 8
        free = [bytearray([SENTINEL]) * M_MAX for _ in range(window)]
        pending: list[tuple[wire.Operation, bytearray, bool]] = []
        got = 0
        while got < expected[CLS_M]:
            while free:
                buf = free.pop()
                op = node.post_recv(buf, CLS_M << CLASS_SHIFT, CLASS_MASK)
                cancel = requested = rng.random() < 0.33
                if cancel:
                    stats["cancel_requested"] += 1
                    if rng.random() < 0.5:
                        op.cancel()  # at once
                        cancel = False
                pending.append((op, buf, cancel, requested))
            op, buf, cancel_later, requested = pending.pop(0)
            if cancel_later:
                await asyncio.sleep(0)
                op.cancel()
            try:
                tag, nbytes = await op
            except wire.Cancelled:
                stats["cancelled"] += 1
                if not untouched(buf):
                    checker.fail("a cancelled receive wrote its buffer")
                if len(kept) < 16:
                    kept.append(buf)  # never reused: checked again at the end
                    buf = bytearray([SENTINEL]) * M_MAX
                free.append(buf)
                continue
            if requested:
                stats["delivered_after_cancel"] += 1  # the cancel came after the match
            checker.check(CLS_M, tag, nbytes, buf)
            memoryview(buf)[:nbytes] = SENTINELS[:nbytes]  # bytearray[:n] = x would copy x first
            free.append(buf)
            got += 1
            received_one()
        for op, buf, _, _ in pending:  # surplus receives: cancel, they must not deliver
            op.cancel()
            try:
                await op
                checker.fail("a surplus class M receive got a message")
            except wire.Cancelled:
                pass

    async def recv_large():
        bufs = [np.empty(L_MAX, np.uint8) for _ in range(4)]
        seqs = [s for s in range(count) if klass(s) == CLS_L]
        tasks: list = []
        i = 0
        for j, seq in enumerate(seqs):
            task = asyncio.ensure_future(
                node.arecv(bufs[j % 4], tag_of(seq, peer_dir), wire.FULL_MASK))
            # Once another part has failed, the receives still queued end with the node's
            # close: their errors are expected, not "never retrieved".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            tasks.append(task)
            if len(tasks) == 4 or j == len(seqs) - 1:
                for k, t in enumerate(tasks):
                    tag, nbytes = await t
                    checker.check(CLS_L, tag, nbytes, memoryview(bufs[(i + k) % 4]))
                    received_one()
                i += len(tasks)
                tasks = []

    async def recv_never_sent():
        # Receives on a tag nobody sends, cancelled at random moments: always Cancelled,
        # and the buffer never written.
        while not done_sending.is_set() or checker.total() < count:
            buf = bytearray([SENTINEL]) * 64
            op = node.post_recv(buf, CLS_X << CLASS_SHIFT, CLASS_MASK)
            for _ in range(rng.randrange(0, 4)):
                await asyncio.sleep(0)
            op.cancel()
            try:
                await op
                checker.fail("a class X receive got a message nobody sent")
            except wire.Cancelled:
                stats["x_cancelled"] += 1
            if not untouched(buf):
                checker.fail("a cancelled class X receive wrote its buffer")
            try:
                await asyncio.wait_for(progress.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
            progress.clear()

    done_sending = asyncio.Event()

    async def send_all():
        window: list[wire.Operation] = []
        for seq in range(count):
            while args.lead and seq > checker.total() + args.lead:
                progress.clear()
                await progress.wait()
            size = size_of(seq, me)
            off = offset_of(seq, me, size)
            window.append(ep.post_send(refv[off:off + size], tag_of(seq, me)))
            if len(window) >= 32:
                await window.pop(0)
        for op in window:
            await op
        done_sending.set()

    async def everything():
        try:
            async with asyncio.TaskGroup() as group:
                for part in (send_all, recv_small, recv_medium, recv_large, recv_never_sent):
                    group.create_task(part())
        except ExceptionGroup as group_error:
            first = group_error.exceptions[0]
            for exc in group_error.exceptions:
                if isinstance(exc, wire.WireError):
                    first = exc
                    break
            raise first from None
        # Tell the peer we are done and wait for its word, so neither closes early.
        await ep.asend(b"done", CLS_DONE << CLASS_SHIFT)
        await node.arecv(bytearray(8), CLS_DONE << CLASS_SHIFT, CLASS_MASK)

    try:
        if gone is not None:
            work = asyncio.ensure_future(everything())
            await asyncio.wait([work, gone], return_when=asyncio.FIRST_COMPLETED,
                               timeout=args.timeout)
            if gone.done() and not work.done():
                work.cancel()
                raise gone.result()
            if not work.done():
                raise TimeoutError(f"not finished within {args.timeout} s")
            work.result()
        else:
            await asyncio.wait_for(everything(), args.timeout)
    except wire.WireError as exc:
        out["error"] = {"type": type(exc).__name__, "code": exc.code, "message": exc.message}
        # Why the server dropped the client, when that came first and the error above is only
        # what an operation on the dropped endpoint said (a diagnosis for a failure at start).
        if gone is not None and gone.done() and gone.result() is not exc:
            why = gone.result()
            out["disconnect"] = {"type": type(why).__name__, "code": getattr(why, "code", ""),
                                 "message": getattr(why, "message", str(why))}
    for buf in kept:
        if not untouched(buf):
            checker.fail("a cancelled receive buffer was written after its cancel")
    out.update({
        "received": {"S": checker.received[CLS_S], "M": checker.received[CLS_M],
                     "L": checker.received[CLS_L]},
        "expected": {"S": expected[CLS_S], "M": expected[CLS_M], "L": expected[CLS_L]},
        "errors": checker.errors, "elapsed_s": round(time.monotonic() - t0, 2), **stats})
    await node.aclose(force="error" in out)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--tls", default="shm")
    p.add_argument("--mode", default="thread")
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--exit-after", type=int, default=0)
    p.add_argument("--lead", type=int, default=512)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    out = asyncio.run(run(args))
    print(json.dumps(out), flush=True)
    ok = not out["errors"] and "error" not in out and out["received"] == out["expected"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
