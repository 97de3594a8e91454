"""Movies (docs/movies.md): `voxcast movie` and the `movie` job kind. The MP4 is decoded
with PyAV: frame count, rate and size, and its first and last frames against `voxcast render`
of the first and last keyframes; cancel mid-job leaves no file under the result name; each
bad input is refused with an error naming what is wrong; job kinds are listed with their
schema."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from test_jobs import call, job, wait_state
from vxhelpers import describe

DATA = "synthetic:cells?shape=48x64x64&chunk=32"

# A short rotation with a contrast ramp and colormap switches: 3D, MIP. The first and last
# keyframes are gray (one layer): yuv420p keeps them whole, so their PSNR against PNG renders
# measures the movie, not chroma subsampling (saturated colormaps of this fine-grained data
# at 96x64 lose up to 31 dB to 4:2:0 alone).
TIMELINE = {"keyframes": [
    {"time": 0, "scene": {"dims": {"ndisplay": 3}, "camera": {"angles": [0, 10, 80], "zoom": 1.2},
                          "layers": [{"colormap": "gray", "contrast_limits": [200, 3000]},
                                     {"visible": False}]}},
    {"time": 0.5, "patch": {"camera": {"angles": [0, 70, 100]},
                            "layers": [{"colormap": "viridis"}, {"visible": True}]},
     "easing": "ease-in-out"},
    {"time": 1.0, "patch": {"camera": {"angles": [10, 120, 90], "zoom": 1.6},
                            "layers": [{"colormap": "gray", "contrast_limits": [400, 2500]},
                                       {"visible": False}]}},
]}


def keyframe_views(timeline):
    """The full scene (as a view file for `voxcast render`) of the first and last keyframes:
    patches merged in order (layers element by element)."""
    def merge(a, b):
        if not isinstance(a, dict) or not isinstance(b, dict):
            return b
        out = dict(a)
        for k, v in b.items():
            if k == "layers" and isinstance(out.get(k), list) and isinstance(v, list):
                layers = list(out[k])
                for i, x in enumerate(v):
                    if i < len(layers):
                        layers[i] = merge(layers[i], x)
                    else:
                        layers.append(x)
                out[k] = layers
            else:
                out[k] = merge(out.get(k), v)
        return out

    scene = {}
    views = []
    for kf in timeline["keyframes"]:
        scene = kf["scene"] if "scene" in kf else merge(scene, kf.get("patch", {}))
        views.append(json.loads(json.dumps(scene)))
    return views[0], views[-1]


def decode(path):
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        # BT.709 limited range, as the file says (swscale's default would be BT.601).
        frames = [f.reformat(format="rgb24", src_colorspace="ITU709").to_ndarray()
                  for f in c.decode(st)]
        return st, frames


def psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def render(run_ok, tmp_path, view, size, name):
    v = tmp_path / f"{name}.json"
    v.write_text(json.dumps(view))
    png = tmp_path / f"{name}.png"
    run_ok("render", DATA, "--view", v, "--size", size, "-o", png)
    return np.asarray(Image.open(png).convert("RGB"))


def check_movie(path, run_ok, tmp_path, fps, w, h, frames, codec="h264"):
    st, got = decode(path)
    assert len(got) == frames, f"{len(got)} frames decoded, {frames} expected"
    assert st.average_rate == fps, st.average_rate
    assert (st.codec_context.width, st.codec_context.height) == (w, h)
    assert st.codec_context.name == codec
    assert got[0].shape == (h, w, 3)
    first, last = keyframe_views(TIMELINE)
    want_first = render(run_ok, tmp_path, first, f"{w}x{h}", "first")
    want_last = render(run_ok, tmp_path, last, f"{w}x{h}", "last")
    assert (want_first.max(axis=2) > 30).mean() > 0.02, "the first keyframe renders blank"
    p0, p1 = psnr(got[0], want_first), psnr(got[-1], want_last)
    assert p0 >= 35, f"first frame: PSNR {p0:.1f} dB against `voxcast render` of keyframe 0"
    assert p1 >= 35, f"last frame: PSNR {p1:.1f} dB against `voxcast render` of the last keyframe"
    # The movie moves: the middle frame is neither end (a frozen movie would pass the ends).
    mid = got[len(got) // 2]
    assert psnr(mid, want_first) < 30 and psnr(mid, want_last) < 30


def cli_movie(run_ok, tmp_path, name, codec, library):
    """`voxcast movie` of TIMELINE at 24 fps, 96x64, into tmp_path/name, checked frame by
    frame; returns its path."""
    t = tmp_path / "t.json"
    t.write_text(json.dumps(TIMELINE))
    out = tmp_path / name
    res = run_ok("movie", DATA, "--timeline", t, "--fps", "24", "--size", "96x64", "-o", out)
    assert "wrote 24 frames" in res.stdout, describe(res)
    assert f"[{library}" not in res.stderr, "libav prints to stderr instead of the log"
    check_movie(out, run_ok, tmp_path, 24, 96, 64, 24, codec=codec)
    return out


def test_cli_movie_decodes_with_the_right_frames(run_ok, tmp_path):
    out = cli_movie(run_ok, tmp_path, "m.mp4", "h264", "libx264")
    # +faststart: the index (moov) comes before the media (mdat).
    head = out.read_bytes()
    assert head.find(b"moov") < head.find(b"mdat"), "moov after mdat: not +faststart"
    # yuv420p, and BT.709 signalled in the container: the 'colr' box, type nclx, with
    # primaries, transfer and matrix 1 (BT.709) and the limited-range flag clear.
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.format.name == "yuv420p"
    at = head.find(b"colrnclx")
    assert at > 0, "no colr box"
    assert head[at + 8:at + 15] == bytes([0, 1, 0, 1, 0, 1, 0]), head[at:at + 15]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], \
        "temporary files left beside the output"


def test_cli_webm_is_vp9_with_bt709_signalled(run_ok, tmp_path):
    out = cli_movie(run_ok, tmp_path, "m.WebM", "vp9", "libvpx")  # the extension in any case
    with av.open(str(out)) as c:
        assert c.format.name.startswith("matroska,webm")
        assert c.streams.video[0].codec_context.format.name == "yuv420p"
    # Matroska's Colour element: transfer, matrix and primaries 1 (BT.709), range 1 (limited).
    head = out.read_bytes()[:4096]
    at = head.find(b"\x55\xb0")
    assert at > 0, "no Colour element"
    colour = head[at:at + 20]
    for element in (b"\x55\xba\x81\x01", b"\x55\xb1\x81\x01", b"\x55\xbb\x81\x01",
                    b"\x55\xb9\x81\x01"):
        assert element in colour, colour.hex()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_movie_job_over_http(serve, run_ok, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, body = call(s, "GET", "/api/v1/job-kinds")
    assert code == 200
    kinds = {k["name"]: k for k in json.loads(body)["kinds"]}
    assert set(kinds) == {"orbit", "movie"}
    assert kinds["movie"]["schema"]["required"] == ["timeline"]
    assert kinds["movie"]["schema"]["properties"]["fps"]["maximum"] == 120
    params = {"timeline": TIMELINE, "fps": 20, "width": 80, "height": 64}
    code, _, body = call(s, "PUT", "/api/v1/jobs/mov", {"kind": "movie", "params": params})
    assert code == 202, body
    assert json.loads(body)["job"]["dataset"]["location"].startswith("synthetic:cells")
    # The same id and params: the same job (idempotent).
    assert call(s, "PUT", "/api/v1/jobs/mov", {"kind": "movie", "params": params})[0] == 200
    j = wait_state(s, "mov", {"succeeded", "failed"})
    assert j["state"] == "succeeded", j
    assert j["files"] == ["movie.mp4"] and j["done"] == j["total"] == 20
    code, headers, raw = call(s, "GET", "/api/v1/jobs/mov/files/movie.mp4")
    assert code == 200 and headers["Content-Type"] == "video/mp4"
    (tmp_path / "job.mp4").write_bytes(raw)
    check_movie(tmp_path / "job.mp4", run_ok, tmp_path, 20, 80, 64, 20)
    # WebM: the same job kind, its file named for its format and served as video/webm.
    assert kinds["movie"]["schema"]["properties"]["format"]["enum"] == ["mp4", "webm"]
    params = {"timeline": TIMELINE, "fps": 10, "width": 64, "height": 48, "format": "webm"}
    assert call(s, "PUT", "/api/v1/jobs/web", {"kind": "movie", "params": params})[0] == 202
    j = wait_state(s, "web", {"succeeded", "failed"})
    assert j["state"] == "succeeded" and j["files"] == ["movie.webm"], j
    code, headers, raw = call(s, "GET", "/api/v1/jobs/web/files/movie.webm")
    assert code == 200 and headers["Content-Type"] == "video/webm"
    (tmp_path / "job.webm").write_bytes(raw)
    check_movie(tmp_path / "job.webm", run_ok, tmp_path, 10, 64, 48, 10, codec="vp9")


def test_cancel_mid_job_leaves_no_movie(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    long = {"keyframes": [{"time": 0, "scene": {"dims": {"ndisplay": 3}}},
                          {"time": 60, "patch": {"camera": {"angles": [0, 360, 90]}}}]}
    params = {"timeline": long, "fps": 30, "width": 320, "height": 240}
    assert call(s, "PUT", "/api/v1/jobs/c", {"kind": "movie", "params": params})[0] == 202
    end = time.time() + 120
    while job(s, "c")["done"] < 3:
        assert time.time() < end, job(s, "c")
        time.sleep(0.05)
    code, _, body = call(s, "DELETE", "/api/v1/jobs/c")
    assert code == 200, body
    j = wait_state(s, "c", {"canceled", "succeeded", "failed"})
    assert j["state"] == "canceled", j
    assert 3 <= j["done"] < j["total"] == 1800
    files = sorted(p.name for p in (tmp_path / "d" / "jobs" / "c" / "files").iterdir())
    assert files == [] and j["files"] == [], files


BAD_JOBS = [
    ({}, "params.timeline"),
    ({"timeline": {"keyframes": []}}, "empty"),
    ({"timeline": {"keyframes": [{"time": 1}, {"time": 0.5}]}}, "keyframes[1].time"),
    ({"timeline": TIMELINE, "fps": 0}, "params.fps"),
    ({"timeline": TIMELINE, "fps": 500}, "params.fps"),
    ({"timeline": TIMELINE, "width": 8}, "params.width"),
    ({"timeline": TIMELINE, "width": 5000}, "params.width"),
    ({"timeline": TIMELINE, "height": 101}, "params.height"),
    ({"timeline": {"keyframes": [{"time": 0}, {"time": 3000}]}}, "7200 frames"),
    ({"timeline": {"keyframes": [{"time": 0}, {"time": 200}]}, "width": 4096, "height": 4096},
     "16 Gpx"),
    ({"timeline": {"keyframes": [{"time": 0, "patch": {"camera": {"zoom": -1}}}]}},
     "keyframes[0].patch"),
    ({"timeline": TIMELINE, "dataset": 4}, "params.dataset"),
    ({"timeline": TIMELINE, "speed": 2}, "params.speed"),
    ({"timeline": TIMELINE, "format": "avi"}, "params.format"),
    ({"timeline": TIMELINE, "format": 1}, "params.format"),
]


@pytest.mark.parametrize("params,needle", BAD_JOBS, ids=[
    "no-timeline", "empty", "out-of-order", "fps-0", "fps-high", "width-small", "width-big",
    "height-odd", "frame-cap", "pixel-cap", "bad-scene", "dataset", "unknown", "format-avi",
    "format-number"])
def test_bad_movie_jobs_are_refused_at_submit(serve, tmp_path, params, needle):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, body = call(s, "PUT", "/api/v1/jobs/bad", {"kind": "movie", "params": params})
    assert code == 400, body
    msg = json.loads(body)["error"]["message"]
    assert needle in msg, msg
    assert call(s, "GET", "/api/v1/jobs/bad")[0] == 404  # no job was created


@pytest.mark.parametrize("timeline,args,needle,name", [
    ({"keyframes": []}, [], "empty", "m.mp4"),
    ({"keyframes": [{"time": 2}, {"time": 1}]}, [], "keyframes[1].time", "m.mp4"),
    (TIMELINE, ["--fps", "0"], "--fps", "m.mp4"),
    (TIMELINE, ["--fps", "1000"], "--fps", "m.mp4"),
    (TIMELINE, ["--size", "99x64"], "--size", "m.mp4"),
    (TIMELINE, ["--size", "big"], "--size", "m.mp4"),
    ({"keyframes": [{"time": 0}, {"time": 3000}]}, [], "7200 frames", "m.mp4"),
    (TIMELINE, [], "must end in .mp4 or .webm", "m.avi"),
    (TIMELINE, [], "must end in .mp4 or .webm", "movie"),
], ids=["empty", "out-of-order", "fps-0", "fps-high", "size-odd", "size-text", "frame-cap",
        "ext-avi", "ext-none"])
def test_bad_cli_movies_are_usage_errors(run, tmp_path, timeline, args, needle, name):
    t = tmp_path / "t.json"
    t.write_text(json.dumps(timeline))
    out = tmp_path / name
    res = run("movie", DATA, "--timeline", t, *args, "-o", out)
    assert res.returncode == 2, describe(res)
    assert needle in res.stderr, describe(res)
    assert not out.exists()


def test_python_client_keyframes_and_movie(serve, tmp_path):
    import asyncio
    import sys
    repo = Path(__file__).resolve().parents[2]
    if str(repo / "python") not in sys.path:
        sys.path.insert(0, str(repo / "python"))
    import voxcast

    s = serve(DATA, "--data-dir", tmp_path / "d")
    out = tmp_path / "py.mp4"
    seen = []

    async def go():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            v.dims.ndisplay = 3
            v.camera.angles = (0, 0, 90)
            await v.sync()
            k0 = v.keyframe(0)
            v.camera.angles = (0, 90, 90)
            await v.sync()
            k1 = v.keyframe(0.5, easing="ease-in-out")
            assert k0["scene"]["camera"]["angles"] != k1["scene"]["camera"]["angles"]
            assert "canvas" not in k0["scene"]
            return await v.movie([k0, k1], fps=12, size=(48, 64), path=str(out),
                                 on_progress=lambda d, t: seen.append((d, t)))

    j = asyncio.run(go())
    assert j["state"] == "succeeded" and j["kind"] == "movie"
    st, frames = decode(out)
    assert len(frames) == 6 and st.average_rate == 12
    assert frames[0].shape == (48, 64, 3)
    assert seen and seen[-1] == (6, 6)
    assert st.codec_context.name == "h264"

    async def webm():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            v.dims.ndisplay = 3
            await v.sync()
            k0 = v.keyframe(0)
            v.camera.angles = (0, 90, 90)
            await v.sync()
            # The format follows the path's extension.
            return await v.movie([k0, v.keyframe(0.5)], fps=12, size=(48, 64),
                                 path=str(tmp_path / "py.webm"))

    j = asyncio.run(webm())
    assert j["params"]["format"] == "webm"
    st, frames = decode(tmp_path / "py.webm")
    assert st.codec_context.name == "vp9" and len(frames) == 6


def test_cli_runs_any_kind(run, run_ok, tmp_path):
    """`voxcast job KIND`: the same kinds as the server, run here."""
    schema = json.loads(run_ok("job", "movie", "--schema").stdout)
    assert schema["properties"]["quality"]["maximum"] == 51 and schema["required"] == ["timeline"]
    params = {"timeline": {"keyframes": TIMELINE["keyframes"][:2]}, "fps": 8, "width": 48,
              "height": 32}
    res = run_ok("job", "movie", DATA, "--params", json.dumps(params), "-o", tmp_path / "m", "-q")
    assert res.stdout.strip().endswith("movie.mp4"), describe(res)
    _, frames = decode(tmp_path / "m" / "movie.mp4")
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    p = tmp_path / "orbit.json"
    p.write_text(json.dumps({"columns": 2, "rows": 1, "size": 32}))
    run_ok("job", "orbit", DATA, "--params", p, "-o", tmp_path / "o", "-q")
    m = json.loads((tmp_path / "o" / "orbit.json").read_text())
    assert m["grid"] == {"columns": 2, "rows": 1}
    bad = run("job", "gif", DATA, "-o", tmp_path / "g")
    assert bad.returncode == 2 and "orbit" in bad.stderr and "movie" in bad.stderr, describe(bad)
    bad = run("job", "orbit", DATA, "--params", '{"size": 5}', "-o", tmp_path / "g")
    assert bad.returncode == 2 and "params.size" in bad.stderr, describe(bad)


def test_full_disk_gives_a_clear_error_and_no_movie(voxcast_bin, tmp_path):
    """The disk fills while the movie is written: a file size limit (RLIMIT_FSIZE, with
    SIGXFSZ ignored) makes every write past 64 KiB fail with EFBIG, as a full disk fails with
    ENOSPC. The error names the file, and nothing is left under the result name or beside it."""
    t = tmp_path / "t.json"
    t.write_text(json.dumps(TIMELINE))
    out = tmp_path / "m.mp4"
    limit = 64 << 10

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # Quality 0 (lossless) at 256x256: far more than 64 KiB, so the limit is certain to bite.
    cmd = [str(voxcast_bin), "movie", DATA, "--timeline", str(t), "--fps", "30",
           "--size", "256x256", "--quality", "0", "-q", "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120,
                         stdin=subprocess.DEVNULL, preexec_fn=full_disk,
                         env=dict(os.environ, UBSAN_OPTIONS="print_stacktrace=1"))
    said = f"exit {res.returncode}\nstdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}"
    assert res.returncode == 1, said
    assert str(out) in res.stderr, said  # names the movie it could not write
    assert "File too large" in res.stderr or "No space" in res.stderr, said
    assert not out.exists(), said
    assert list(tmp_path.iterdir()) == [t], f"left behind: {list(tmp_path.iterdir())}"
