"""voxcast.wire under sustained traffic: two processes, real UCX, every transport and mode.

Each case runs tests/integration/wire_soak_peer.py twice (a server and a client process).
Both send 100,000 messages and receive 100,000 at the same time: sizes from 1 B to 4 MiB,
three tag classes received three ways (a Receiver stream on a class mask, post_recv
operations of which a third are cancelled at random, plain arecv on exact tags), and
receives on a tag nobody sends cancelled at random; each sender stays within 512 messages
of what it has received (wire_soak_peer.py, --lead). Every payload is checked byte for
byte; a cancelled receive's buffer must stay untouched to the end. The peer-exit cases
kill one side mid-way and check that the other gets an error naming the peer, promptly.

In the ASan tree the module is built with AddressSanitizer and UBSan, and the peers run
with the sanitizer runtime preloaded (tests/CMakeLists.txt), so memory errors on the
Python path fail these tests too. VOXCAST_SOAK_COUNT overrides the message count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vxhelpers import wire_child_env

PEER = Path(__file__).with_name("wire_soak_peer.py")
COUNT = int(os.environ.get("VOXCAST_SOAK_COUNT", "100000"))
PARAMS = [(t, m) for t in ("tcp", "shm") for m in ("thread", "eventfd")]
IDS = [f"{t}-{m}" for t, m in PARAMS]
# Bounds against a hang, not timings: a soak of 100,000 messages each way takes 6 to 19 s
# on two cores in the release build, 18 to 31 s with the sanitizers (docs/benchmarks.md).
RUN_TIMEOUT = 600


def run_pair(tls: str, mode: str, count: int, client_args=(), server_args=()):
    """Runs both peers; returns (server_report, client_report, server, client) where a
    report is the peer's final JSON line (None if it printed none) and the others are
    (returncode, stderr) pairs."""
    env = wire_child_env(pythonpath=True)
    common = ["--tls", tls, "--mode", mode, "--count", str(count),
              "--timeout", str(RUN_TIMEOUT - 60)]
    server = subprocess.Popen([sys.executable, str(PEER), "server", *common, *server_args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = server.stdout.readline()
        assert first, "the server peer printed no port:\n" + server.stderr.read()[-3000:]
        port = json.loads(first)["port"]
        client = subprocess.run(
            [sys.executable, str(PEER), "client", *common, "--port", str(port), *client_args],
            capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
        sout, serr = server.communicate(timeout=RUN_TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return (last_json(sout), last_json(client.stdout), (server.returncode, serr),
            (client.returncode, client.stderr))


def last_json(text: str):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"role"' in line:
            return json.loads(line)
    return None


def tail(text: str, n: int = 4000) -> str:
    lines = [ln for ln in text.splitlines() if "was not matched" not in ln]
    text = "\n".join(lines)
    return text if len(text) <= n else "..." + text[-n:]


def assert_clean(report, proc, who: str):
    rc, err = proc
    assert report is not None, f"{who}: no report, exit code {rc}\n{tail(err)}"
    assert report["errors"] == [], f"{who}: {report['errors']}"
    assert "error" not in report, f"{who}: {report['error']}"
    assert report["received"] == report["expected"], f"{who}: {report}"
    assert rc == 0, f"{who}: exit code {rc}\n{tail(err)}"
    assert "AddressSanitizer" not in err and "runtime error" not in err, tail(err)


@pytest.mark.parametrize("tls,mode", PARAMS, ids=IDS)
def test_soak_both_ways_mixed_sizes_tags_and_cancels(tls, mode):
    srv, cli, sproc, cproc = run_pair(tls, mode, COUNT)
    assert_clean(srv, sproc, "server")
    assert_clean(cli, cproc, "client")
    for report in (srv, cli):
        # The cancellation paths were exercised. Whether a class M cancel beats the match
        # depends on timing (with the sender far ahead, every receive matches as it is
        # posted), so each M cancel must end one way or the other, and the Cancelled outcome
        # is required of class X, whose receives can never match.
        assert report["cancel_requested"] > COUNT // 100, report
        assert report["cancelled"] + report["delivered_after_cancel"] > 0, report
        assert report["x_cancelled"] > 0, report


@pytest.mark.parametrize("tls,mode", PARAMS, ids=IDS)
@pytest.mark.parametrize("dies", ["client", "server"])
def test_a_peer_that_exits_mid_way(tls, mode, dies):
    count = min(COUNT, 6_000)  # dies after 2,000: mid-way through large and small ones
    exit_after = ["--exit-after", str(count // 3)]
    srv, cli, sproc, cproc = run_pair(
        tls, mode, count, client_args=exit_after if dies == "client" else (),
        server_args=exit_after if dies == "server" else ())
    dead_proc, alive, alive_proc = ((cproc, srv, sproc) if dies == "client"
                                    else (sproc, cli, cproc))
    survivor = "server" if dies == "client" else "client"
    dead_report = cli if dies == "client" else srv
    assert dead_proc[0] == 3, (
        f"the {dies} did not exit mid-way: exit code {dead_proc[0]}, report {dead_report}\n"
        f"{tail(dead_proc[1])}\n--- the {survivor} (exit code {alive_proc[0]}): {alive}\n"
        f"{tail(alive_proc[1])}")
    assert alive is not None, f"{survivor}: no report\n{tail(alive_proc[1])}"
    # Everything that arrived before the exit was intact, and the exit surfaced as an error
    # that names the peer (its address) rather than a hang or a crash.
    assert alive["errors"] == [], alive["errors"]
    err = alive.get("error")
    assert err is not None, f"{survivor} finished without noticing: {alive}"
    assert err["type"] in ("PeerFailure", "ClosedError"), err
    assert err["message"] and "127.0.0.1:" in err["message"], err
    assert alive_proc[0] == 1, alive_proc  # reported, not crashed
    assert "AddressSanitizer" not in alive_proc[1], tail(alive_proc[1])
