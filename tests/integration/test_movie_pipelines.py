"""Pipeline layers on a movie's timeline (docs/movies.md, "Pipeline layers"): a derived
layer's live parameters interpolate between keyframes (a gaussian whose sigma ramps), the
first and last frames equal `voxcast render` of the first and last keyframes, frames in
between are neither; the movie job over HTTP takes the same timeline; a bad derived layer in
any keyframe is refused at submit with an error naming the keyframe and the field."""

from __future__ import annotations

import json

import pytest

from test_jobs import call, wait_state
from test_movie import DATA, decode, keyframe_views, psnr, render  # render() renders DATA
from vxhelpers import cache_sources, describe, wait_cache_sources

W, H = 160, 120


def gaussian(sigma):
    return {"pipeline": "gaussian", "input": 0, "params": {"sigma": sigma}}


# Sigma ramps from 0.3 to 3 over one second (8 frames at 8 fps) on the membranes (channel 1:
# fine lines, which a blur changes everywhere); the second keyframe changes only the
# parameter (a patch merges into the layer's source).
TIMELINE = {"keyframes": [
    {"time": 0, "scene": {"camera": {"zoom": 1.2},
                          "layers": [{"source": gaussian(0.3), "channel": 1,
                                      "colormap": "gray", "contrast_limits": [100, 1500]},
                                     {"visible": False}]}},
    {"time": 1, "patch": {"layers": [{"source": {"params": {"sigma": 3.0}}}]}},
]}


def test_sigma_ramps_between_keyframes(run_ok, tmp_path):
    t = tmp_path / "t.json"
    t.write_text(json.dumps(TIMELINE))
    out = tmp_path / "m.mp4"
    res = run_ok("movie", DATA, "--timeline", t, "--fps", "8", "--size", f"{W}x{H}", "-q",
                 "-o", out)
    assert "wrote 8 frames" in res.stdout, describe(res)
    _, got = decode(out)
    assert len(got) == 8, f"{len(got)} frames decoded, 8 expected"
    first, last = keyframe_views(TIMELINE)
    last["layers"][0]["source"] = gaussian(3.0)  # the patch merged into the source
    want_first = render(run_ok, tmp_path, first, f"{W}x{H}", "first")
    want_last = render(run_ok, tmp_path, last, f"{W}x{H}", "last")
    assert psnr(want_first, want_last) < 30, "the two ends look alike: the test shows nothing"
    p0, p1 = psnr(got[0], want_first), psnr(got[-1], want_last)
    assert p0 >= 35, f"first frame: PSNR {p0:.1f} dB against `voxcast render` of keyframe 0"
    assert p1 >= 35, f"last frame: PSNR {p1:.1f} dB against `voxcast render` of keyframe 1"
    # Frames 3 and 4 lie either side of the midpoint: a parameter that switched there would
    # make them the first and the last keyframe's pictures (45 dB and more through the video,
    # as frames 0 and 7 are; measured: 20.5 / 28.3 and 19.5 / 32.0 dB).
    for i in (3, 4):
        a, b = psnr(got[i], want_first), psnr(got[i], want_last)
        assert a < 40 and b < 40, f"frame {i}: PSNR {a:.1f} / {b:.1f} dB against the ends"
    # And the blur grows frame by frame: each is closer to the last keyframe than the one
    # before it.
    closeness = [psnr(f, want_last) for f in got]
    assert all(x < y for x, y in zip(closeness, closeness[1:])), closeness


def test_movie_job_with_a_chain_over_http(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    start = cache_sources(s.http)
    # Layer 1 chains onto layer 0 ({"layer": 0}): a median of the ramping gaussian.
    chain = json.loads(json.dumps(TIMELINE))
    chain["keyframes"][0]["scene"]["layers"][1] = {
        "source": {"pipeline": "median", "input": {"layer": 0}, "params": {"radius": 1}},
        "channel": 1, "colormap": "green", "contrast_limits": [100, 1500],
        "blending": "additive"}
    # {"layer": N} is resolved in the keyframe that names it: the patch names it again so
    # that the median follows the gaussian's new sigma (and both ramp).
    chain["keyframes"][1]["patch"]["layers"].append({"source": {"input": {"layer": 0}}})
    params = {"timeline": chain, "fps": 6, "width": W, "height": H}
    code, _, body = call(s, "PUT", "/api/v1/jobs/pm", {"kind": "movie", "params": params})
    assert code == 202, body
    j = wait_state(s, "pm", {"succeeded", "failed"})
    assert j["state"] == "succeeded", j
    assert j["done"] == j["total"] == 6, j
    code, _, raw = call(s, "GET", "/api/v1/jobs/pm/files/movie.mp4")
    assert code == 200
    (tmp_path / "job.mp4").write_bytes(raw)
    _, got = decode(tmp_path / "job.mp4")
    assert len(got) == 6 and got[0].shape == (H, W, 3)
    # The derived sources the job made (and its validation at submit) left the server's cache
    # with the job.
    assert wait_cache_sources(s.http, start) == start


def test_voxcast_job_movie_takes_derived_layers(run_ok, tmp_path):
    # `voxcast job movie` is what a Slurm node runs for the server: the same pipelines.
    params = {"timeline": TIMELINE, "fps": 4, "width": W, "height": H}
    run_ok("job", "movie", DATA, "--params", json.dumps(params), "-q", "-o", tmp_path / "o")
    _, got = decode(tmp_path / "o" / "movie.mp4")
    assert len(got) == 4


def bad(kf2):
    return {"keyframes": [TIMELINE["keyframes"][0], TIMELINE["keyframes"][1],
                          {"time": 2, **kf2}]}


BAD = [
    (bad({"patch": {"layers": [{"source": {"pipeline": "nope"}}]}}),
     ["keyframes[2].patch", "layers[0].source.pipeline", "unknown pipeline 'nope'"]),
    (bad({"patch": {"layers": [{"source": {"params": {"sigma": -1}}}]}}),
     ["keyframes[2].patch", "layers[0].source.params.sigma", "must be >= 0"]),
    (bad({"scene": {"layers": [{"source": gaussian(1) | {"params": {"sigmaa": 1}}}]}}),
     ["keyframes[2].scene", "layers[0].source.params.sigmaa", "unknown parameter"]),
    (bad({"scene": {"layers": [{"source": {"pipeline": "gaussian", "input": {"layer": 0}}}]}}),
     ["keyframes[2].scene", "a cycle of derived sources"]),
]
IDS = ["unknown-pipeline", "out-of-range", "unknown-param", "cycle"]


@pytest.mark.parametrize("timeline,needles", BAD, ids=IDS)
def test_bad_derived_layers_are_refused_at_submit(serve, tmp_path, timeline, needles):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    params = {"timeline": timeline, "fps": 2, "width": W, "height": H}
    code, _, body = call(s, "PUT", "/api/v1/jobs/bad", {"kind": "movie", "params": params})
    assert code == 400, body
    msg = json.loads(body)["error"]["message"]
    assert msg.startswith("field 'params.timeline': keyframes[2]"), msg
    for n in needles:
        assert n in msg, msg
    assert call(s, "GET", "/api/v1/jobs/bad")[0] == 404  # no job was created


@pytest.mark.parametrize("timeline,needles", BAD[:2], ids=IDS[:2])
def test_bad_derived_layers_are_cli_usage_errors(run, tmp_path, timeline, needles):
    t = tmp_path / "t.json"
    t.write_text(json.dumps(timeline))
    out = tmp_path / "m.mp4"
    res = run("movie", DATA, "--timeline", t, "--fps", "2", "--size", f"{W}x{H}", "-o", out)
    assert res.returncode == 2, describe(res)
    for n in needles:
        assert n in res.stderr, describe(res)
    assert not out.exists()


def test_preview_moves_a_derived_parameter(serve):
    """The preview (timeline.play) steps a derived layer's live parameter through the same
    interpolation, in eighths of a segment: paused in the middle, sigma is between the ends."""
    import asyncio
    import math
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    if str(repo / "python") not in sys.path:
        sys.path.insert(0, str(repo / "python"))
    import voxcast

    s = serve(DATA)

    def scene(sigma):
        return {"canvas": {"width": W, "height": H},
                "layers": [{"source": gaussian(sigma), "channel": 1,
                            "contrast_limits": [100, 1500]}]}

    # The second keyframe patches the parameter alone: it merges into keyframe 0's source.
    tl = {"keyframes": [{"time": 0, "scene": scene(0.3)},
                        {"time": 30, "patch": {"layers": [{"source": {"params": {"sigma": 3.0}}}]}}]}

    async def go():
        async with await voxcast.connect(s.ws, codecs=["jpeg"]) as v:
            await v.preview(tl, start=15.0, wait=False)
            await asyncio.sleep(0.3)
            return await v.pause_preview()

    paused = asyncio.run(go())
    assert paused["reason"] == "paused", paused
    sigma = paused["scene"]["layers"][0]["source"]["params"]["sigma"]
    u = (paused["t"] - 0) / 30
    steps = [math.floor(u * 8), math.ceil(u * 8)]
    want = [0.3 + 2.7 * k / 8 for k in steps]
    assert 0.3 < sigma < 3.0, paused
    assert min(abs(sigma - w) for w in want) < 1e-6, (sigma, want, paused["t"])
