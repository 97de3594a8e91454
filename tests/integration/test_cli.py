"""The command line's everyday edges: a slice past the end is a usage error, `-o` picks the
image type by extension, usage errors exit 2 in every command, a misspelt command gets a
suggestion, and `--version` matches what the server reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from vxhelpers import describe, http_get

DATA = "synthetic:cells?shape=16x32x48&chunk=16"


def view(tmp_path, scene):
    p = tmp_path / "view.json"
    p.write_text(json.dumps(scene))
    return str(p)


def usage(res, *needles):
    assert res.returncode == 2, "expected exit code 2 (usage error)\n" + describe(res)
    for n in needles:
        assert n in res.stderr, f"{n!r} not named\n" + describe(res)


@pytest.mark.parametrize("z", [16, 40, -1, 1e9])
def test_a_slice_past_the_end_is_a_usage_error(run, tmp_path, z):
    out = tmp_path / "s.png"
    res = run("render", DATA, "--view", view(tmp_path, {"dims": {"point": [z, 16, 24]}}),
              "-o", out)
    usage(res, "dims.point[0]", "'z'", "0..15")
    assert not out.exists()


@pytest.mark.parametrize("z", [0, 15, 15.4])
def test_the_first_and_last_slices_render(run_ok, tmp_path, z):
    out = tmp_path / "s.png"
    run_ok("render", DATA, "--view", view(tmp_path, {"dims": {"point": [z, 16, 24]}}), "-o", out)
    assert Image.open(out).format == "PNG"


@pytest.mark.parametrize("name,fmt", [("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.jpeg", "JPEG"),
                                      ("A.JPG", "JPEG")])
def test_output_type_follows_the_extension(run_ok, tmp_path, name, fmt):
    out = tmp_path / name
    run_ok("render", DATA, "--size", "96x64", "-o", out)
    img = Image.open(out)
    assert img.format == fmt and img.size == (96, 64)


def test_jpeg_is_the_same_picture_as_png(run_ok, tmp_path):
    run_ok("render", DATA, "--size", "96x64", "-o", tmp_path / "a.png")
    run_ok("render", DATA, "--size", "96x64", "-o", tmp_path / "a.jpg")
    png = np.asarray(Image.open(tmp_path / "a.png").convert("RGB")).astype(float)
    jpg = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB")).astype(float)
    assert png.std() > 5
    assert np.abs(png - jpg).mean() < 6


@pytest.mark.parametrize("name", ["a.bmp", "a", "a.png.txt"])
def test_unknown_output_type_is_a_usage_error(run, tmp_path, name):
    out = tmp_path / name
    res = run("render", DATA, "-o", out)
    usage(res, f"'{out}'")
    assert ".png" in res.stderr and not out.exists()


USAGE = {
    "render-size": lambda t: ["render", DATA, "--size", "big", "-o", t / "a.png"],
    "render-view-not-object": lambda t: ["render", DATA, "--view", t / "list.json", "-o",
                                         t / "a.png"],
    "render-view-bad-field": lambda t: ["render", DATA, "--view", t / "bad.json", "-o",
                                        t / "a.png"],
    "export-level": lambda t: ["export", DATA, "--level", "9", "-o", t / "a.npy"],
    "export-box": lambda t: ["export", DATA, "--box", "0:99,:,:", "-o", t / "a.npy"],
    "orbit-grid": lambda t: ["orbit", DATA, "--grid", "3by3", "-o", t / "orbit"],
    "orbit-yaw": lambda t: ["orbit", DATA, "--yaw", "left", "-o", t / "orbit"],
    "serve-port": lambda t: ["serve", DATA, "--port", "99999"],
    "demo-shape": lambda t: ["demo", "--offline", "--shape", "abc", "-o", t / "a.ome.zarr"],
    "convert-codec": lambda t: ["convert", DATA, t / "a.ome.zarr", "--codec", "lzma"],
    "info-extra": lambda t: ["info", DATA, "extra"],
    "no-command": lambda t: [],
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_exit_2_in_every_command(run, tmp_path, case):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text('{"layers": [{"colormap": "no-such-map"}]}')
    res = run(*USAGE[case](tmp_path))
    usage(res)
    assert res.stderr.strip()
    assert not any(p.name.startswith(("a.", "orbit")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("typo,meant", [("serv", "serve"), ("inf", "info"), ("rendr", "render"),
                                        ("conver", "convert")])
def test_a_misspelt_command_gets_a_suggestion(run, typo, meant):
    res = run(typo, DATA)
    usage(res, f"'{typo}'", f"did you mean '{meant}'?")


def test_an_unknown_command_lists_the_commands(run):
    res = run("--log-level", "warn", "frobnicate")
    usage(res, "'frobnicate'", "serve")
    assert "did you mean" not in res.stderr


def test_version_matches_health(run_ok, serve):
    version = run_ok("--version").stdout.strip()
    m = re.fullmatch(r"voxcast (\d+\.\d+\.\d+)", version)
    assert m, version
    s = serve(DATA, "--port", "0")
    status, body = http_get(f"{s.http}/api/v1/health")
    assert status == 200
    assert json.loads(body)["version"] == m.group(1)


def test_python_package_has_the_same_version(run_ok):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import voxcast
    version = run_ok("--version").stdout.strip()
    assert version == f"voxcast {voxcast.__version__}", (version, voxcast.__version__)
