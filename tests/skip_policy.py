"""The skip policy of the pytest suites, shared by tests/integration/conftest.py and
tests/browser/conftest.py (which import these hooks).

- Every skip is listed with its reason (ctest runs pytest with -rs; the summary below
  repeats them).
- In CI (the environment variable CI is "true" or "1") a skip is a failure: everything
  the tests need (Chromium and its H.264 decoder, selenium, PIL, tifffile's zlib, the
  voxcast binary, the wire module) is installed by scripts/bootstrap or built by
  scripts/test, so a skip there means something is missing or broken. Outside CI a skip
  stays a skip (a developer's machine may lack Chromium), but it is never silent."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(rep):
    if rep.skipped and in_ci() and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = (f"skipped under CI=true, which allows no skip (scripts/bootstrap installs "
                        f"everything the tests need): {_reason(rep.longrepr)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
