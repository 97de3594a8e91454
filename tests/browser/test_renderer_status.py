"""The status line names the renderer and, where CUDA is not used, why (docs/gpu.md).

    VOXCAST_BIN=build/asan/apps/voxcast/voxcast /usr/bin/python3 -m pytest tests/browser/test_renderer_status.py -q
"""

from __future__ import annotations

import json

from test_datasets import open_page
from test_jobs_panel import js, wait


def test_status_line_names_the_renderer_and_the_fallback(server, browser):
    open_page(browser, server.url("/"))
    w = js(browser, "window.voxcast.welcome")
    assert w["renderer"] in ("cpu", "cuda"), json.dumps(w)[:500]
    want = f"render {w['renderer']}" + (" *" if w["renderer_fallback"] else "")
    wait(browser, "the renderer in the status line",
         lambda: js(browser, "document.querySelector('#st-renderer').textContent") == want)
    title = js(browser, "document.querySelector('#st-renderer').title")
    if w["renderer_fallback"]:
        assert title == f"renderer fallback: {w['renderer_fallback']}", title
        assert w["renderer_fallback"].startswith("cuda: "), w["renderer_fallback"]
    else:
        assert title == "", title
