"""Fixtures for the browser tests: the real `voxcast serve` and headless Chromium.

Run from the repository root with Debian's Python (python3-selenium, chromium and
chromium-driver installed):

    /usr/bin/python3 -m pytest tests/browser -q -rs

The server under test is $VOXCAST_BIN (default build/asan/apps/voxcast/voxcast); a missing
binary fails every test; skips follow tests/skip_policy.py (listed with their reason, and
failures under CI=true). $CHROMIUM and
$CHROMEDRIVER override /usr/bin/chromium and /usr/bin/chromedriver.
VOXCAST_BROWSER_CODEC=jpeg runs every test on the JPEG path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
from served import wait_for_port  # noqa: E402
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401
DEFAULT_BIN = REPO_ROOT / "build" / "asan" / "apps" / "voxcast" / "voxcast"
DATA = "synthetic:cells?shape=64x256x256&chunk=32"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# VOXCAST_BROWSER_CODEC=jpeg runs every test on the JPEG path (the page's ?codec=jpeg), as a
# Chromium without H.264 would.
FORCED_CODEC = os.environ.get("VOXCAST_BROWSER_CODEC") or None
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer")


def voxcast_path() -> Path:
    p = Path(os.environ.get("VOXCAST_BIN", str(DEFAULT_BIN)))
    return p if p.is_absolute() else REPO_ROOT / p


def http_get(url: str, timeout: float = 5.0):
    """(status, body bytes, headers) of a GET, also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


class Server:
    """One `voxcast serve` process; stop() sends SIGTERM and checks it exits 0."""

    def __init__(self, binary: Path, port: int = 0, token: str | None = None, extra=()):
        """`port` 0: the server binds a free one and prints it (a port chosen here and bound
        there could be taken in between); a given port is for restarts on the same one."""
        self.binary, self.port, self.token = binary, port, token
        self.log = tempfile.NamedTemporaryFile(prefix="voxcast-serve-", suffix=".log", delete=False)
        cmd = [str(binary), "serve", DATA, "--port", str(port)]
        if token:
            cmd += ["--token", token]
        cmd += list(extra)
        self.cmd = cmd
        env = dict(os.environ)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        if not self.port:
            self.port = wait_for_port(self.output, self.proc, " ".join(cmd), START_TIMEOUT_S)
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_healthy()

    def url(self, path: str = "/", **query) -> str:
        q = dict(query)
        if path == "/" and FORCED_CODEC and "codec" not in q:
            q["codec"] = FORCED_CODEC
        if self.token and "token" not in q:
            q["token"] = self.token
        q = {k: v for k, v in q.items() if v is not None}
        qs = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in q.items())
        return self.base + path + (("?" + qs) if qs else "")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def _wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"voxcast serve exited with {self.proc.returncode} at start:\n"
                            f"{' '.join(self.cmd)}\n{self.output()[-4000:]}", pytrace=False)
            try:
                status, body, _ = http_get(self.url("/api/v1/health"), timeout=2)
                if status == 200 and json.loads(body).get("status") == "ok":
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except (OSError, ValueError) as e:
                last = repr(e)
            time.sleep(0.2)
        self.proc.kill()
        pytest.fail(f"voxcast serve not healthy after {START_TIMEOUT_S} s ({last}):\n"
                    f"{self.output()[-4000:]}", pytrace=False)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"voxcast serve ignored SIGTERM for {STOP_TIMEOUT_S} s:\n"
                            f"{self.output()[-4000:]}", pytrace=False)
        return self.proc.returncode

    def check_clean_exit(self):
        rc = self.stop()
        out = self.output()
        for m in SANITIZER_MARKERS:
            assert m not in out, f"sanitizer report in the server log ({m}):\n{out[-6000:]}"
        assert rc == 0, f"voxcast serve exited {rc} after SIGTERM (expected 0):\n{out[-4000:]}"
        os.unlink(self.log.name)


@pytest.fixture(scope="session")
def voxcast_bin() -> Path:
    p = voxcast_path()
    if not (p.is_file() and os.access(p, os.X_OK)):
        msg = (f"voxcast binary not found at {p} (set VOXCAST_BIN, or build the asan preset: "
               f"cmake --preset asan && cmake --build --preset asan)")
        pytest.fail(msg, pytrace=False)
    return p


@pytest.fixture(scope="module")
def server(voxcast_bin):
    """A server without a token, shared by a module's tests."""
    s = Server(voxcast_bin)
    yield s
    s.check_clean_exit()


@pytest.fixture
def start_server(voxcast_bin):
    """Starts servers on demand (token, restarts); all are stopped and checked at the end."""
    started = []

    def start(token=None, port=None, extra=()):
        s = Server(voxcast_bin, port or 0, token=token, extra=extra)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.check_clean_exit()


def _chromium_paths():
    chrome = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return chrome, driver


@pytest.fixture
def browser():
    """Headless Chromium through chromedriver. Software GL (SwiftShader); WebCodecs decodes
    H.264 in software where the build has the codec."""
    from selenium import webdriver  # python3-selenium (scripts/bootstrap): never a skip
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = _chromium_paths()
    if not (os.path.exists(chrome) and os.path.exists(driver_path)):
        pytest.fail(f"chromium ({chrome}) or chromedriver ({driver_path}) missing: "
                    f"apt-get install chromium chromium-driver", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-gl=swiftshader",
              "--disable-dev-shm-usage", "--window-size=1280,800", "--force-device-scale-factor=1",
              "--autoplay-policy=no-user-gesture-required", "--disable-background-timer-throttling",
              "--disable-renderer-backgrounding"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    d.set_script_timeout(30)
    yield d
    d.quit()
