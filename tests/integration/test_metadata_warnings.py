"""Broken but usable OME-Zarr metadata (written by python3-zarr) opens, with one warning per
problem naming the file and the JSON path: in `voxcast info` (text and --json) and once in the
structured log; `voxcast info --strict` makes them errors (exit code 1)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from vxhelpers import describe


def write_store(path, mutate=None):
    data = np.arange(2 * 8 * 16 * 16, dtype=np.uint16).reshape(2, 8, 16, 16)
    g = zarr.open_group(str(path), mode="w")
    g.create_dataset("0", data=data, chunks=(1, 4, 8, 8))
    g.create_dataset("1", data=data[:, ::2, ::2, ::2], chunks=(1, 4, 8, 8))
    ms = {
        "version": "0.4",
        "axes": [{"name": "c", "type": "channel"}] +
                [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale",
                                                         "scale": [1, 2, 0.5, 0.5]}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale",
                                                         "scale": [1, 4, 1, 1]}]}],
    }
    attrs = {"multiscales": [ms]}
    if mutate:
        mutate(ms)
    g.attrs.update(attrs)
    return str(path)


def misspelt_key(ms):
    d = ms["datasets"][1]
    d["coordinateTransformation"] = d.pop("coordinateTransformations")


def chanel(ms):
    ms["axes"][0]["type"] = "chanel"


def bad_unit(ms):
    ms["axes"][3]["unit"] = "parsnip"


def shrinking_levels(ms):
    ms["datasets"][1]["coordinateTransformations"][0]["scale"] = [1, 1, 1, 1]


CASES = {
    "misspelt-key": (misspelt_key, ["multiscales[0].datasets[1].coordinateTransformation"]),
    "axis-type-chanel": (chanel, ["multiscales[0].axes[0].type"]),
    "unit-outside-spec": (bad_unit, ["multiscales[0].axes[3].unit"]),
    "levels-not-increasing": (shrinking_levels,
                              ["multiscales[0].datasets[1].coordinateTransformations"]),
}


def test_good_metadata_has_no_warnings(run_ok, info, tmp_path):
    path = write_store(tmp_path / "good.ome.zarr")
    assert info(path)["warnings"] == []
    res = run_ok("info", path, "--strict")
    assert "warnings" not in res.stdout
    assert "data.metadata" not in res.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_broken_metadata_opens_with_one_warning_per_problem(case, run, run_ok, info, tmp_path):
    mutate, want = CASES[case]
    path = write_store(tmp_path / "broken.ome.zarr", mutate)
    zattrs = f"{path}/.zattrs"

    meta = info(path)
    assert [w["field"] for w in meta["warnings"]] == want
    assert all(w["file"] == zattrs for w in meta["warnings"])
    assert len(meta["levels"]) == 2  # still opened as a whole

    res = run_ok("info", path)
    assert "warnings" in res.stdout and want[0] in res.stdout, describe(res)
    logged = [line for line in res.stderr.splitlines() if "event=data.metadata" in line]
    assert len(logged) == len(want), describe(res)  # once per problem
    assert want[0] in logged[0] and zattrs in logged[0]

    strict = run("info", path, "--strict")
    assert strict.returncode == 1, describe(strict)
    assert f"{zattrs}: field '{want[0]}'" in strict.stderr, describe(strict)
    assert "--strict" in strict.stderr


def test_misspelt_key_is_still_applied(info, tmp_path):
    meta = info(write_store(tmp_path / "m.ome.zarr", misspelt_key))
    assert meta["levels"][1]["scale"] == [1, 4, 1, 1]


def test_chanel_is_read_as_channel(info, tmp_path):
    meta = info(write_store(tmp_path / "c.ome.zarr", chanel))
    assert meta["axes"][0]["type"] == "channel"
    assert len(meta["channels"]) == 2


def test_strict_on_a_clean_dataset_and_a_missing_file(run, run_ok, tmp_path):
    assert run_ok("info", "--strict", "synthetic:cells?shape=16x16x16").returncode == 0
    res = run("info", "--strict", tmp_path / "nope.ome.zarr")
    assert res.returncode == 1 and "nope.ome.zarr" in res.stderr
