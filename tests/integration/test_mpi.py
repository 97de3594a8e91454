"""`mpirun -np N voxcast render`: sort-last parallel rendering with the real OpenMPI.

Each rank reads only its part of the volume (a k-d split of the level's bricks) and renders
it to a partial image; the parts are composited by binary-swap and rank 0 writes the
picture. The picture must not depend on the number of ranks: equal within 2 levels to the
one-process render, for every 3D mode, orthographic and perspective, including ranks whose
part is empty (more ranks than bricks) and bricks that are empty of data. A rank that dies
or hangs gives a clear error within seconds, never a hang.

mpirun comes from Debian's openmpi-bin (scripts/bootstrap); a missing mpirun skips, and
under CI=true a skip fails. Ranks are oversubscribed on the CI's two cores."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vxhelpers import describe

SUPP = Path(__file__).resolve().parents[1] / "asan_mpi.supp"
DATA = "synthetic:cells?shape=40x56x48&chunk=16&channels=1"
SIZE = "96x72"
MODES = ["mip", "minip", "attenuated_mip", "average", "translucent", "iso"]


@pytest.fixture(scope="module")
def mpirun():
    path = shutil.which("mpirun")
    if not path:
        pytest.skip("mpirun not found (Debian's openmpi-bin; scripts/bootstrap installs it)")
    return path


def mpi_env(leaks: bool = False) -> dict:
    env = dict(os.environ)
    # Root in containers and CI; shared memory without CMA (not permitted in containers).
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    # Under the ASan tree. OpenMPI keeps some 3,300 allocations of its runtime (libopen-rte,
    # PMIx, its dlopen'ed components) to exit. The default (fast) unwinder cannot walk its
    # frames, so only the slow one lets tests/asan_mpi.supp name them, and that makes a run
    # of 4 ranks take 40 s instead of 2 on two cores. So one test checks leaks that way
    # (test_no_leaks_under_mpi); the others run with leak checking off and every other
    # sanitizer check on. The sort-last code itself is leak-checked without MPI as well
    # (tests/unit/render/test_sort_last.cpp).
    if leaks:
        env["LSAN_OPTIONS"] = f"suppressions={SUPP}:fast_unwind_on_malloc=0"
        env["OMPI_MCA_mca_base_component_disable_dlclose"] = "1"  # frames keep their names
    else:
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def mpi_run(mpirun, voxcast_bin, n, args, timeout=120, env=None):
    """`mpirun -np n voxcast ARGS` -> (CompletedProcess, seconds); fails on a hang or a
    sanitizer report."""
    cmd = [mpirun, "--oversubscribe", "--mca", "btl", "self,vader", "-np", str(n),
           str(voxcast_bin), *[str(a) for a in args]]
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                             timeout=timeout, env=env or mpi_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"mpirun hung (> {timeout} s): {' '.join(cmd)}\n"
                    f"stderr: {(e.stderr or b'')[-3000:]!r}", pytrace=False)
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in res.stderr, f"sanitizer report ({marker})\n" + describe(res)
    return res, time.monotonic() - t0


def mpi_render(mpirun, voxcast_bin, n, args, timeout=120, env=None):
    return mpi_run(mpirun, voxcast_bin, n, ["render", *args], timeout, env)


def image(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA")).astype(np.int16)


def assert_close(got_path, want_path, what):
    got, want = image(got_path), image(want_path)
    assert got.shape == want.shape, what
    diff = np.abs(got - want)
    assert diff.max() <= 2, (f"{what}: {int((diff > 2).sum())} channels differ by more than 2 "
                             f"levels (max {int(diff.max())})")
    assert want[..., :3].max() > 0, f"{what}: the reference is black; nothing was compared"


def chunks_per_rank(stderr: str) -> dict:
    return {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"event=render\.part rank=(\d+) ranks=\d+ chunks_read=(\d+)", stderr)}


def write_view(tmp_path, name, scene) -> Path:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(scene))
    return p


CASES = [(m, p) for m in MODES for p in (0, 40)]


@pytest.mark.parametrize("mode,perspective", CASES,
                         ids=[f"{m}-{'persp' if p else 'ortho'}" for m, p in CASES])
def test_image_does_not_depend_on_the_rank_count(mpirun, voxcast_bin, run_ok, tmp_path, mode,
                                                 perspective):
    ranks = [2, 3, 4][CASES.index((mode, perspective)) % 3]  # power of two or not, in turn
    layer = {"rendering": mode}
    if mode == "minip":
        layer["contrast_limits"] = [0, 100]  # the minima of this data are low
    view = write_view(tmp_path, "v", {"dims": {"ndisplay": 3},
                                      "camera": {"angles": [10, 30, 120], "perspective": perspective},
                                      "layers": [layer]})
    one, many = tmp_path / "one.png", tmp_path / "many.png"
    single = run_ok("render", DATA, "--view", view, "--size", SIZE, "-o", one)
    res, _ = mpi_render(mpirun, voxcast_bin, ranks,
                        [DATA, "--view", view, "--size", SIZE, "-o", many])
    assert res.returncode == 0, describe(res)
    assert_close(many, one, f"{mode}, {ranks} ranks")
    # Each rank read only its part (and a halo): fewer chunks than the whole view.
    total = int(re.search(r"chunks_read=(\d+)", single.stderr).group(1))
    per_rank = chunks_per_rank(res.stderr)
    assert sorted(per_rank) == list(range(ranks)), res.stderr[-2000:]
    # (total also counts the coarse chunks of the contrast estimate, which per_rank leaves out.)
    assert max(per_rank.values()) <= 0.9 * total, f"{per_rank} of {total}: a rank read everything"


def test_ranks_with_empty_parts_and_empty_bricks(mpirun, voxcast_bin, run_ok, tmp_path):
    # 1 x 2 x 1 bricks over 4 ranks: two ranks have nothing; a high contrast floor makes
    # most bricks empty of data (skipped) as well.
    data = "synthetic:cells?shape=16x32x16&chunk=16&channels=1"
    for mode in ("translucent", "mip"):
        view = write_view(tmp_path, mode, {
            "dims": {"ndisplay": 3}, "camera": {"angles": [0, 20, 70]},
            "layers": [{"rendering": mode, "contrast_limits": [1500, 4000]}]})
        one, many = tmp_path / f"one-{mode}.png", tmp_path / f"many-{mode}.png"
        run_ok("render", data, "--view", view, "--size", "64x48", "-o", one)
        res, _ = mpi_render(mpirun, voxcast_bin, 4,
                            [data, "--view", view, "--size", "64x48", "-o", many])
        assert res.returncode == 0, describe(res)
        assert_close(many, one, f"{mode}, 4 ranks over 2 bricks")
        per_rank = chunks_per_rank(res.stderr)
        # The two ranks with empty parts read no brick of the level drawn: at most the
        # coarsest level's chunk that weighs the bricks for the split.
        counts = sorted(per_rank.values())
        assert len(counts) == 4 and counts[1] <= 1 < counts[2], f"chunks per rank: {per_rank}"


def assert_mpi_render_is_the_plain_one(mpirun, voxcast_bin, run_ok, tmp_path, scene, ranks,
                                       what, env=None):
    """`mpirun -np ranks voxcast render` of `scene` equals the one-process render."""
    view = write_view(tmp_path, "v", scene)
    run_ok("render", DATA, "--view", view, "--size", SIZE, "-o", tmp_path / "one.png")
    res, _ = mpi_render(mpirun, voxcast_bin, ranks,
                        [DATA, "--view", view, "--size", SIZE, "-o", tmp_path / "mpi.png"],
                        env=env)
    assert res.returncode == 0, describe(res)
    assert_close(tmp_path / "mpi.png", tmp_path / "one.png", what)


def test_one_rank_under_mpirun_is_a_plain_render(mpirun, voxcast_bin, run_ok, tmp_path):
    assert_mpi_render_is_the_plain_one(
        mpirun, voxcast_bin, run_ok, tmp_path,
        {"dims": {"ndisplay": 3}, "layers": [{"rendering": "mip"}]}, 1, "1 rank")


def test_no_leaks_under_mpi(mpirun, voxcast_bin, run_ok, tmp_path):
    assert_mpi_render_is_the_plain_one(
        mpirun, voxcast_bin, run_ok, tmp_path,
        {"dims": {"ndisplay": 3}, "layers": [{"rendering": "translucent"}]}, 2,
        "translucent, 2 ranks", env=mpi_env(leaks=True))


def test_2d_slice_under_mpirun(mpirun, voxcast_bin, run_ok, tmp_path):
    assert_mpi_render_is_the_plain_one(
        mpirun, voxcast_bin, run_ok, tmp_path,
        {"dims": {"ndisplay": 2, "point": [20, 28, 24]}}, 3, "2D, 3 ranks")


def test_orbit_under_mpirun_equals_one_process(mpirun, voxcast_bin, run_ok, tmp_path):
    view = write_view(tmp_path, "v", {"layers": [{"rendering": "attenuated_mip"}]})
    args = ["orbit", DATA, "--view", view, "--grid", "3x2", "--size", "40", "--format", "webp",
            "--quality", "100", "-q"]  # webp at 100: lossless
    run_ok(*args, "-o", tmp_path / "one")
    res, _ = mpi_run(mpirun, voxcast_bin, 3, [*args, "-o", tmp_path / "many"])
    assert res.returncode == 0, describe(res)
    meta = json.loads((tmp_path / "one" / "orbit.json").read_text())
    sheets = [s["file"] for s in meta["sheets"]]
    assert sheets and sorted(p.name for p in (tmp_path / "many").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())
    for name in sheets:
        assert_close(tmp_path / "many" / name, tmp_path / "one" / name, f"orbit sheet {name}")


def test_job_orbit_under_mpirun_as_slurm_runs_it(mpirun, voxcast_bin, run_ok, tmp_path):
    # What a Slurm job with "nodes": N > 1 runs on its nodes (docs/cluster.md, "Slurm").
    params = json.dumps({"columns": 2, "rows": 2, "size": 40, "format": "webp", "quality": 100,
                         "view": {"layers": [{"rendering": "translucent"}]}})
    run_ok("job", "orbit", DATA, "--params", params, "-o", tmp_path / "one", "-q")
    res, _ = mpi_run(mpirun, voxcast_bin, 2,
                     ["job", "orbit", DATA, "--params", params, "-o", tmp_path / "many", "-q"])
    assert res.returncode == 0, describe(res)
    meta = json.loads((tmp_path / "one" / "orbit.json").read_text())
    for sheet in meta["sheets"]:
        assert_close(tmp_path / "many" / sheet["file"], tmp_path / "one" / sheet["file"],
                     f"job orbit sheet {sheet['file']}")


def movie_frames(path: Path) -> list:
    import av  # python3-av (scripts/bootstrap)
    with av.open(str(path)) as f:
        return [fr.to_ndarray(format="rgb24").astype(np.int16) for fr in f.decode(video=0)]


def test_movie_under_mpirun_equals_one_process(mpirun, voxcast_bin, run_ok, tmp_path):
    # Every frame is split over the ranks and composited on rank 0, which alone encodes.
    timeline = write_view(tmp_path, "t", {"keyframes": [
        {"time": 0, "scene": {"dims": {"ndisplay": 3}, "layers": [{"rendering": "mip"}]}},
        {"time": 1, "patch": {"camera": {"angles": [0, 120, 90]}}}]})
    args = ["movie", DATA, "--timeline", timeline, "--fps", "6", "--size", "96x72",
            "--quality", "0", "-q"]  # CRF 0: lossless, so frames compare to the level
    single = run_ok(*args, "-o", tmp_path / "one.mp4")
    (tmp_path / "many").mkdir()
    res, _ = mpi_run(mpirun, voxcast_bin, 3, [*args, "-o", tmp_path / "many" / "m.mp4"])
    assert res.returncode == 0, describe(res)
    # Only rank 0 wrote, and nothing was left beside the movie (no partial or scratch files).
    assert [p.name for p in (tmp_path / "many").iterdir()] == ["m.mp4"]
    one, many = movie_frames(tmp_path / "one.mp4"), movie_frames(tmp_path / "many" / "m.mp4")
    assert len(one) == len(many) == 6, (len(one), len(many))
    for i, (a, b) in enumerate(zip(one, many)):
        diff = np.abs(a - b)
        # Composited in float, then to YUV 4:2:0 and back: within a few levels.
        assert diff.max() <= 4, f"frame {i}: max difference {int(diff.max())}"
        assert a.max() > 0, f"frame {i}: the reference is black; nothing was compared"
    assert np.abs(one[0] - one[-1]).mean() > 1, "the movie does not turn"
    # Each rank read only its part of the frames: fewer chunks than one rank reads alone.
    parts = {int(m.group(1)): int(m.group(2)) for m in re.finditer(
        r"event=movie\.part rank=(\d+) ranks=3 chunks_read=(\d+)", res.stderr)}
    assert sorted(parts) == [0, 1, 2], res.stderr[-2000:]
    total = int(re.search(r"event=movie\.part rank=0 ranks=1 chunks_read=(\d+)",
                          single.stderr).group(1))
    assert max(parts.values()) <= 0.9 * total, f"{parts} of {total}: a rank read everything"


def test_job_movie_under_mpirun(mpirun, voxcast_bin, run_ok, tmp_path):
    params = json.dumps({"timeline": {"keyframes": [
        {"time": 0, "scene": {"dims": {"ndisplay": 3}}},
        {"time": 0.5, "patch": {"camera": {"angles": [0, 60, 90]}}}]},
        "fps": 4, "width": 64, "height": 48, "quality": 0})
    run_ok("job", "movie", DATA, "--params", params, "-o", tmp_path / "one", "-q")
    res, _ = mpi_run(mpirun, voxcast_bin, 2,
                     ["job", "movie", DATA, "--params", params, "-o", tmp_path / "many", "-q"])
    assert res.returncode == 0, describe(res)
    one, many = (movie_frames(tmp_path / d / "movie.mp4") for d in ("one", "many"))
    assert len(one) == len(many) == 2
    assert max(int(np.abs(a - b).max()) for a, b in zip(one, many)) <= 4


SERVE_DATA = "synthetic:cells?shape=48x64x64&chunk=16&channels=1"


def end_mpirun(server) -> str:
    """SIGTERM to mpirun, which ends every rank; returns the server's stderr."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        pytest.fail("mpirun did not end within 60 s of SIGTERM", pytrace=False)
    return server.stop()[1]


def stop_rank0(server):
    """SIGTERM to rank 0 of an mpirun'd server; returns (mpirun's exit code, its stderr)."""
    import signal
    rank0 = None
    for child in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split():
        env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if b"OMPI_COMM_WORLD_RANK=0" in env:
            rank0 = int(child)
    assert rank0, "no rank 0 among mpirun's children"
    os.kill(rank0, signal.SIGTERM)
    try:
        server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        pytest.fail("mpirun did not end within 60 s of rank 0's SIGTERM", pytrace=False)
    return server.stop()


async def final_picture(url: str, scene: dict):
    """(the ack's full scene, the final frame as RGB) of `scene` from a server, over JPEG."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    import voxcast  # the Python client (python/voxcast)
    async with await voxcast.connect(url, codecs=["jpeg"]) as v:
        full = await v.update(scene)
        header, img = await v.final_frame(timeout=60)
        assert header.final and not header.refining, header
        return full, img.astype(np.int16)


def test_serve_under_mpirun_splits_3d_frames(mpirun, voxcast_bin, tmp_path):
    from conftest import Server
    import asyncio
    launcher = [mpirun, "--oversubscribe", "--mca", "btl", "self,vader", "-np", "3"]
    views = [{"dims": {"ndisplay": 3}, "canvas": {"width": 160, "height": 120},
              "camera": {"angles": [10, 30, 120]}, "layers": [{"rendering": "mip"}]},
             {"dims": {"ndisplay": 3}, "canvas": {"width": 160, "height": 120},
              "camera": {"angles": [0, 70, 90], "perspective": 40},
              "layers": [{"rendering": "translucent"}]},
             {"canvas": {"width": 160, "height": 120}}]  # 2D: rank 0 draws it alone
    pictures = {}
    for name, launch in (("one", ()), ("many", launcher)):
        server = Server(voxcast_bin, [SERVE_DATA, "--data-dir", tmp_path / name],
                        launcher=launch, env=mpi_env() if launch else None)
        try:
            if launch:
                assert "split over 3 MPI ranks" in server.printed, server.printed
            ws = server.url.replace("http://", "ws://").split("?")[0]
            pictures[name] = [asyncio.run(final_picture(ws, v)) for v in views]
        finally:
            # SIGTERM to rank 0, as a scheduler stopping the server would: it stops serving
            # and tells the other ranks to leave, and mpirun exits 0 when all have. (mpirun
            # forwards a SIGTERM sent to itself the same way, then exits 1 regardless.)
            code, err = server.stop() if not launch else stop_rank0(server)
        assert code == 0, f"{' '.join(server.cmd)} exited {code}\n{err[-3000:]}"
        if launch:
            # Every rank drew its part of the 3D frames and left when rank 0 stopped.
            parts = {int(m.group(1)): m.group(0) for m in re.finditer(
                r"event=serve\.part rank=(\d+) ranks=3 frames=(\d+)", err)}
            assert sorted(parts) == [0, 1, 2], err[-3000:]
            followers = [int(m) for m in re.findall(
                r"event=serve\.part rank=[12] ranks=3 frames=(\d+)", err)]
            assert min(followers) >= 2, parts  # the two 3D views, at least
            assert "serve.cluster_failed" not in err and "follow_failed" not in err, err[-3000:]
    for i, ((scene1, one), (scene_n, many)) in enumerate(zip(pictures["one"], pictures["many"])):
        assert scene1 == scene_n, f"view {i}: the servers' scenes differ"
        diff = np.abs(one - many)
        # Same picture within 2 levels, then JPEG: a few levels more, on few pixels.
        assert diff.mean() < 1 and diff.max() <= 24, \
            f"view {i}: mean difference {diff.mean():.2f}, max {int(diff.max())}"
        assert one.max() > 0, f"view {i}: black; nothing was compared"


def test_serve_with_a_hung_rank_reports_it_and_keeps_serving(mpirun, voxcast_bin, tmp_path):
    from conftest import Server
    import asyncio
    env = mpi_env()
    env.update(VOXCAST_MPI_FAULT="hang:1", VOXCAST_MPI_TIMEOUT_S="3")  # rank 1 stops there
    launcher = [mpirun, "--oversubscribe", "--mca", "btl", "self,vader", "-np", "2"]
    server = Server(voxcast_bin, [SERVE_DATA, "--data-dir", tmp_path / "d"], launcher=launcher,
                    env=env)
    try:
        ws = server.url.replace("http://", "ws://").split("?")[0]
        t0 = time.monotonic()
        # The split frame fails after the 3 s wait; the session draws it again, on rank 0
        # alone from then on, and the client gets its picture.
        _, img = asyncio.run(final_picture(ws, {
            "dims": {"ndisplay": 3}, "canvas": {"width": 96, "height": 72},
            "layers": [{"rendering": "mip"}]}))
        assert img.max() > 0
        assert time.monotonic() - t0 < 60
    finally:
        err = end_mpirun(server)  # mpirun ends the hung rank too
    failed = re.search(r"event=serve\.cluster_failed .*", err)
    assert failed and "rank 1" in failed.group(0) and "rank 0 draws every frame alone" in \
        failed.group(0), err[-3000:]


def test_serve_with_a_rank_that_dies_ends_the_job_without_a_hang(mpirun, voxcast_bin, tmp_path):
    from conftest import Server
    import asyncio
    env = mpi_env()
    env["VOXCAST_MPI_FAULT"] = "die:1"  # rank 1 kills itself (SIGKILL) as compositing starts
    launcher = [mpirun, "--oversubscribe", "--mca", "btl", "self,vader", "-np", "2"]
    server = Server(voxcast_bin, [SERVE_DATA, "--data-dir", tmp_path / "d"], launcher=launcher,
                    env=env)
    ws = server.url.replace("http://", "ws://").split("?")[0]
    t0 = time.monotonic()
    with pytest.raises(Exception) as got:  # the connection goes: mpirun ends the whole job
        asyncio.run(final_picture(ws, {"dims": {"ndisplay": 3},
                                       "canvas": {"width": 96, "height": 72}}))
    assert "final frame" not in str(got.value), got.value  # not the client's own timeout
    try:
        server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        pytest.fail("mpirun did not end within 60 s of rank 1's death", pytrace=False)
    assert time.monotonic() - t0 < 60
    code, err = server.stop()
    assert code != 0
    assert re.search(r"rank 1", err), err[-3000:]


def test_serve_with_recovery_reports_a_dead_rank_and_keeps_serving(mpirun, voxcast_bin,
                                                                    tmp_path):
    # With mpirun's --mca orte_enable_recovery 1 (docs/cluster.md), a rank that dies does not
    # end the job: the server reports it, and rank 0 draws every frame from then on.
    from conftest import Server
    import asyncio
    env = mpi_env()
    env.update(VOXCAST_MPI_FAULT="die:1", VOXCAST_MPI_TIMEOUT_S="3")
    launcher = [mpirun, "--oversubscribe", "--mca", "btl", "self,vader",
                "--mca", "orte_enable_recovery", "1", "-np", "2"]
    server = Server(voxcast_bin, [SERVE_DATA, "--data-dir", tmp_path / "d"], launcher=launcher,
                    env=env)
    try:
        ws = server.url.replace("http://", "ws://").split("?")[0]
        _, img = asyncio.run(final_picture(ws, {
            "dims": {"ndisplay": 3}, "canvas": {"width": 96, "height": 72}}))
        assert img.max() > 0
        _, again = asyncio.run(final_picture(ws, {  # a new session, after the failure
            "dims": {"ndisplay": 3}, "canvas": {"width": 96, "height": 72},
            "camera": {"angles": [0, 45, 90]}}))
        assert again.max() > 0
    finally:
        err = end_mpirun(server)
    failed = re.search(r"event=serve\.cluster_failed .*", err)
    assert failed and "rank 1" in failed.group(0) and "did it die?" in failed.group(0), err[-3000:]


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("version", [2, 3])
def test_convert_under_mpirun_writes_the_same_store(mpirun, voxcast_bin, run_ok, tmp_path,
                                                    version):
    args = ["convert", DATA, "--chunk", "16", "--zarr-version", str(version), "-q"]
    if version == 3:
        args += ["--shard", "2"]
    run_ok(*args[:2], tmp_path / "one.ome.zarr", *args[2:])
    res, _ = mpi_run(mpirun, voxcast_bin, 3, [*args[:2], tmp_path / "many.ome.zarr", *args[2:]])
    assert res.returncode == 0, describe(res)
    written = [int(m) for m in re.findall(r"event=convert\.part rank=\d+ ranks=3 chunks_written=(\d+)",
                                          res.stderr)]
    assert len(written) == 3 and min(written) > 0, res.stderr[-2000:]
    one, many = tree(tmp_path / "one.ome.zarr"), tree(tmp_path / "many.ome.zarr")
    assert sorted(many) == sorted(one)
    differ = [k for k in one if one[k] != many[k]]
    assert not differ, f"files that differ: {differ[:10]}"


def test_a_killed_rank_is_a_clear_error_within_seconds(mpirun, voxcast_bin, tmp_path):
    env = mpi_env()
    env["VOXCAST_MPI_FAULT"] = "die:1"  # rank 1 kills itself (SIGKILL) as compositing starts
    view = write_view(tmp_path, "v", {"dims": {"ndisplay": 3}, "layers": [{"rendering": "mip"}]})
    res, secs = mpi_render(mpirun, voxcast_bin, 3,
                           [DATA, "--view", view, "--size", SIZE, "-o", tmp_path / "x.png"],
                           timeout=90, env=env)
    assert res.returncode != 0, describe(res)
    assert re.search(r"rank 1 .*exited on signal 9|rank 1", res.stderr), describe(res)
    assert secs < 60, f"took {secs:.1f} s"
    assert not (tmp_path / "x.png").exists()


def test_a_hung_rank_times_out_with_an_error_naming_the_wait(mpirun, voxcast_bin, tmp_path):
    env = mpi_env()
    env["VOXCAST_MPI_FAULT"] = "hang:2"  # rank 2 stops, alive and silent
    env["VOXCAST_MPI_TIMEOUT_S"] = "3"
    view = write_view(tmp_path, "v", {"dims": {"ndisplay": 3}, "layers": [{"rendering": "mip"}]})
    res, secs = mpi_render(mpirun, voxcast_bin, 3,
                           [DATA, "--view", view, "--size", SIZE, "-o", tmp_path / "x.png"],
                           timeout=90, env=env)
    assert res.returncode != 0, describe(res)
    assert "nothing within 3 s" in res.stderr, describe(res)
    assert secs < 60, f"took {secs:.1f} s"


def test_a_bad_view_fails_on_every_rank_without_a_hang(mpirun, voxcast_bin, tmp_path):
    view = write_view(tmp_path, "v", {"dims": {"ndisplay": 3},
                                      "layers": [{"rendering": "no-such-mode"}]})
    res, secs = mpi_render(mpirun, voxcast_bin, 3,
                           [DATA, "--view", view, "--size", SIZE, "-o", tmp_path / "x.png"],
                           timeout=90)
    assert res.returncode != 0, describe(res)
    assert "no-such-mode" in res.stderr, describe(res)
    assert not (tmp_path / "x.png").exists()
