"""pytest fixtures for the voxcast integration tests.

Run from the repository root with Debian's Python (it has numpy, zarr, numcodecs,
tifffile, nibabel):

    /usr/bin/python3 -m pytest tests/integration -q

The binary under test is $VOXCAST_BIN, by default build/asan/apps/voxcast/voxcast. A
missing binary fails every test (CI must not pass vacuously). Skips follow
tests/skip_policy.py: always listed with their reason, and failures under CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The wire tests of the ASan tree run python3 with the sanitizer runtime preloaded (for
# the sanitized _voxcast_wire module; tests/CMakeLists.txt). This process keeps it; the
# processes it starts (the voxcast binary, with its own runtime) must not inherit it.
if os.environ.get("VOXCAST_WIRE_PRELOAD") and os.environ.get("LD_PRELOAD"):
    os.environ.pop("LD_PRELOAD")
    os.environ.pop("ASAN_OPTIONS", None)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import fixtures  # noqa: E402
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401
from served import find_url, find_wire_port  # noqa: E402
from vxhelpers import describe, load_npy_strict  # noqa: E402

DEFAULT_BIN = REPO_ROOT / "build" / "asan" / "apps" / "voxcast" / "voxcast"
TIMEOUT_S = 120

# What a sanitizer (ASan, LSan, UBSan) prints when it finds a bug. ASan exits with 1 by
# default, like a runtime error, so the exit code alone cannot tell.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "WARNING: ThreadSanitizer",
)


def voxcast_path() -> Path:
    p = Path(os.environ.get("VOXCAST_BIN", str(DEFAULT_BIN)))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


@pytest.fixture(scope="session")
def voxcast_bin() -> Path:
    p = voxcast_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        msg = (f"voxcast binary not found at {p} (set VOXCAST_BIN, or build the asan preset: "
               f"cmake --preset asan && cmake --build --preset asan)")
        pytest.fail(msg, pytrace=False)
    return p


def _run(binary: Path, args, timeout=TIMEOUT_S) -> subprocess.CompletedProcess:
    cmd = [str(binary)] + [str(a) for a in args]
    env = dict(os.environ)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                             timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"voxcast hung (> {timeout} s): {' '.join(cmd)}\n"
                    f"stderr: {(e.stderr or b'')[-2000:]!r}", pytrace=False)
    # Never a crash: no signal, no exit code >= 128, no sanitizer report.
    assert 0 <= res.returncode < 128, "voxcast crashed\n" + describe(res)
    for marker in SANITIZER_MARKERS:
        assert marker not in res.stderr, f"sanitizer report ({marker})\n" + describe(res)
    return res


@pytest.fixture(scope="session")
def run(voxcast_bin):
    """run(*args, timeout=120) -> CompletedProcess; fails the test on a crash or hang."""

    def runner(*args, timeout=TIMEOUT_S):
        return _run(voxcast_bin, args, timeout)

    return runner


@pytest.fixture(scope="session")
def run_ok(run):
    """Like run, but asserts exit code 0."""

    def runner(*args, timeout=TIMEOUT_S):
        res = run(*args, timeout=timeout)
        assert res.returncode == 0, describe(res)
        return res

    return runner


@pytest.fixture(scope="session")
def info(run_ok):
    """info(DATA) -> the parsed `voxcast info DATA --json` object."""

    def get(data):
        res = run_ok("info", data, "--json")
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"info --json is not one JSON object: {e}\n{describe(res)}", pytrace=False)

    return get


@pytest.fixture(scope="session")
def export(run_ok, tmp_path_factory):
    """export(DATA, level=None, box=None) -> the array `voxcast export` writes."""
    outdir = tmp_path_factory.mktemp("export")
    counter = [0]

    def get(data, level=None, box=None):
        counter[0] += 1
        out = outdir / f"out{counter[0]}.npy"
        args = ["export", data, "-o", out]
        if level is not None:
            args += ["--level", str(level)]
        if box is not None:
            args += ["--box", box]
        run_ok(*args)
        arr = load_npy_strict(out)
        out.unlink()
        return arr

    return get


class DatasetCache:
    """Builds each fixture dataset once per session, in its own directory."""

    def __init__(self, factory):
        self.factory = factory
        self.built = {}

    def get(self, case_id: str) -> "fixtures.Dataset":
        reason = fixtures.skip_reason(case_id)
        if reason:
            pytest.skip(reason)
        if case_id not in self.built:
            root = self.factory.mktemp(case_id.replace("/", "_"))
            self.built[case_id] = fixtures.ALL_CASES[case_id](root)
        return self.built[case_id]


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> DatasetCache:
    return DatasetCache(tmp_path_factory)


class Server:
    """A running `voxcast serve` on a free port (its URL parsed from what it prints)."""

    def __init__(self, binary: Path, args, ready_timeout=60, launcher=(), env=None):
        """`launcher`: a command the server runs under (mpirun ...); `env`: its environment."""
        import select
        import time
        env = dict(env if env is not None else os.environ)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.cmd = [*[str(a) for a in launcher], str(binary), "serve", *[str(a) for a in args]]
        if "--port" not in self.cmd:
            self.cmd += ["--port", "0"]
        import tempfile
        # stderr (the structured log) goes to a file: a pipe nobody reads would fill up and
        # block the server.
        self.log = tempfile.NamedTemporaryFile(prefix="voxcast-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        self.url = None
        self.wire_port = None
        deadline = time.time() + ready_timeout
        out = ""
        # Raw reads of the pipe: a buffered readline() could swallow the URL line together
        # with an earlier one, and select() would then wait for more that never comes.
        fd = self.proc.stdout.fileno()
        pending = ""
        while time.time() < deadline and self.url is None:
            if self.proc.poll() is not None:
                break
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                break
            pending += chunk
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                out += line + "\n"
                self.wire_port = find_wire_port(line) or self.wire_port
                self.url = find_url(line) or self.url
        if self.url is None:
            self.proc.kill()
            self.proc.wait()
            err = Path(self.log.name).read_text(errors="replace")
            pytest.fail(f"voxcast serve did not start: {' '.join(self.cmd)}\n{out}\n{err[-3000:]}",
                        pytrace=False)
        from urllib.parse import urlparse, parse_qs
        u = urlparse(self.url)
        self.host, self.port = u.hostname, u.port
        self.token = parse_qs(u.query).get("token", [None])[0]
        self.http = f"http://{self.host}:{self.port}"
        self.ws = f"ws://{self.host}:{self.port}"
        self.printed = out  # stdout up to the URL line

    def stop(self, sig=None):
        """Stops it with SIGTERM (or `sig`); returns (exit code, stderr)."""
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"voxcast serve did not stop within 30 s of SIGTERM", pytrace=False)
        err = Path(self.log.name).read_text(errors="replace")
        Path(self.log.name).unlink(missing_ok=True)
        for marker in SANITIZER_MARKERS:
            assert marker not in err, f"sanitizer report ({marker}) from serve:\n{err[-4000:]}"
        return self.proc.returncode, err


@pytest.fixture
def serve(voxcast_bin):
    """serve(*args) -> Server; each is stopped at the end of the test (must exit 0)."""
    started = []

    def start(*args, **kw):
        s = Server(voxcast_bin, args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            code, err = s.stop()
            assert code == 0, f"serve exited {code}\n{err[-3000:]}"
