"""Jobs on a real Slurm on localhost (docs/cluster.md, "Slurm"): munged, slurmctld and slurmd
from Debian's packages, started by this module with a generated slurm.conf and their own
munge key, socket, pid and log files in a temporary directory (root is fine: SlurmUser=root,
proctrack/linuxproc, task/none, no cgroups, no accounting database). `voxcast serve
--jobs-backend slurm:debug` then runs orbits through the HTTP API as Slurm batch jobs:

- an orbit runs to completion; every tile is the render of its angles (as test_jobs.py
  checks local orbits) and Slurm says COMPLETED;
- progress comes from the job's progress file, on the API and /ws/events, while it runs;
- a job cancelled through the API is cancelled in Slurm (scancel);
- a job scancelled behind voxcast's back, one whose dataset vanished on the node, and one
  submitted to a partition that does not exist become failed jobs whose error says why.

No accounting storage (slurmdbd needs a database server): sacct answers "accounting storage
is disabled" and the backend falls back to scontrol, as it does on such clusters.

Everything started here is stopped by pid at the end, also when a test fails."""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from test_jobs import call, check_orbit_tiles, job, wait_state
from test_movie import TIMELINE, check_movie

DATA = "synthetic:cells?shape=48x64x64&chunk=32"
BIG = {"columns": 40, "rows": 40, "size": 128}  # minutes of work: still running when checked
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sacct", "scancel", "scontrol", "sinfo")


def _die_with_parent():
    """In the child before exec: SIGTERM when this test process dies (a killed pytest
    leaves no daemon behind)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n=3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no file)"


class Cluster:
    """One Slurm controller and one node on localhost, in `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def cmd(self, *args, timeout=30, check=True) -> subprocess.CompletedProcess:
        res = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                             timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited {res.returncode}:\n"
                                 f"{res.stdout}\n{res.stderr}\n{self.logs()}")
        return res

    def _spawn(self, name, args, log):
        out = open(self.root / log, "ab")
        self.procs[name] = subprocess.Popen([str(a) for a in args], stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL, env=self.env,
                                            preexec_fn=_die_with_parent)
        out.close()

    def write_conf(self, ctld_port: int, slurmd_port: int):
        r = self.root
        for d in ("state", "spool", "log"):
            (r / d).mkdir(exist_ok=True)
        self.conf.write_text(f"""\
ClusterName=vxtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={r}/munge/munge.sock
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MailProg=/bin/true
SchedulerParameters=sched_interval=1
NodeName={self.node} NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self):
        missing = [b for b in DAEMONS + CLIENTS if not shutil.which(b) and
                   not Path("/usr/sbin", b).exists()]
        if missing:
            pytest.skip(f"Slurm/munge not installed ({', '.join(missing)} missing: "
                        f"apt-get install slurm-wlm munge, as scripts/bootstrap does)")
        m = self.root / "munge"
        m.mkdir(mode=0o700, exist_ok=True)
        key = m / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        # --force: munged refuses socket directories it finds too open (a temporary
        # directory's parents) unless forced; the key and socket are private to this test.
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={m}/munge.sock",
                               f"--key-file={key}", f"--pid-file={m}/munged.pid",
                               f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed"],
                    "munged.out")
        self._wait(lambda: (m / "munge.sock").exists(), 15, "munged did not create its socket")
        for attempt in range(3):  # a free port taken by someone else between pick and bind
            self.write_conf(_free_port(), _free_port())
            self._spawn("slurmctld", ["slurmctld", "-D", "-i"], "slurmctld.out")
            self._spawn("slurmd", ["slurmd", "-D", "-N", self.node], "slurmd.out")
            if self._wait(self._node_idle, 30, None):
                return
            log = _tail(self.root / "log" / "slurmctld.log") + _tail(self.root / "log" / "slurmd.log")
            for name in ("slurmd", "slurmctld"):
                self._stop(name)
            if "Address already in use" not in log:
                break
        pytest.skip("Slurm did not start on localhost (slurmctld and slurmd as root with "
                    "proctrack/linuxproc): " + self.logs())

    def _node_idle(self) -> bool:
        for name in ("slurmctld", "slurmd"):
            if self.procs[name].poll() is not None:
                return False
        res = self.cmd("sinfo", "-h", "-o", "%T", check=False, timeout=10)
        return res.returncode == 0 and res.stdout.strip() == "idle"

    def _wait(self, pred, timeout, message):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            if any(p.poll() is not None for p in self.procs.values()):
                break
            time.sleep(0.2)
        if message:
            pytest.skip(f"{message}: {self.logs()}")
        return False

    def logs(self) -> str:
        parts = []
        for f in ("munged.out", "slurmctld.out", "slurmd.out", "log/slurmctld.log", "log/slurmd.log"):
            parts.append(f"--- {f}:\n{_tail(self.root / f, 1500)}")
        states = {n: p.poll() for n, p in self.procs.items()}
        return f"exit codes {states}\n" + "\n".join(parts)

    def _stop(self, name):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self):
        # Jobs first (their slurmstepd outlives slurmd otherwise), then the daemons.
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.cmd("scancel", "--full", "--user", "root", check=False)
            end = time.time() + 20
            while time.time() < end:
                res = self.cmd("squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i", check=False)
                if res.returncode != 0 or not res.stdout.strip():
                    break
                time.sleep(0.3)
        for name in ("slurmd", "slurmctld", "munged"):
            self._stop(name)

    def state_of(self, slurm_id: str) -> str:
        out = self.cmd("scontrol", "show", "job", "-o", slurm_id).stdout
        return out.split("JobState=", 1)[1].split()[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    c = Cluster(root)
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(c.conf)  # for the servers the tests start
    try:
        c.start()
        yield c
    finally:
        c.stop()
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved


def slurm_id(data_dir: Path, jid: str) -> str:
    f = data_dir / "jobs" / jid / "slurm_job_id"
    end = time.time() + 60
    while time.time() < end and not f.exists():
        time.sleep(0.1)
    return f.read_text().strip()


def wait_progress(s, jid, timeout=90):
    """The job while it runs with 0 < done < total (read from its progress file)."""
    end = time.time() + timeout
    while time.time() < end:
        j = job(s, jid)
        if j["state"] == "running" and 0 < j["done"] < j["total"]:
            return j
        assert j["state"] in ("queued", "running"), j
        time.sleep(0.1)
    raise AssertionError(f"job {jid} showed no progress within {timeout} s: {j}")


def test_orbit_runs_as_a_slurm_job_and_its_tiles_are_renders(cluster, serve, run_ok, tmp_path):
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm:debug")
    assert "jobs run on Slurm (slurm:debug)" in s.printed, s.printed
    view = {"camera": {"angles": [0, 20, 70]},
            "layers": [{"colormap": "magma", "contrast_limits": [200, 3000]},
                       {"colormap": "green", "contrast_limits": [200, 3000]}]}
    params = {"columns": 3, "rows": 2, "size": 48, "view": view}
    assert call(s, "PUT", "/api/v1/jobs/tiles", {"kind": "orbit", "params": params})[0] == 202
    j = wait_state(s, "tiles", {"succeeded", "failed", "canceled"}, timeout=180)
    folder = d / "jobs" / "tiles"
    assert j["state"] == "succeeded", f"{j}\n{_tail(folder / 'slurm.log')}\n{cluster.logs()}"
    assert j["done"] == j["total"] == 6 and j["error"] is None
    assert {"orbit.json", "index.html"} <= set(j["files"])
    sid = slurm_id(d, "tiles")
    assert cluster.state_of(sid) == "COMPLETED"
    # The job says what Slurm said of it last (while running: SUBMITTED, PENDING, RUNNING).
    assert j["scheduler"] == {"name": "slurm", "job": sid, "state": "COMPLETED"}, j
    # What ran: the generated script, with the job's parameters in a file beside it.
    script = (folder / "job.sbatch").read_text()
    assert " job --params params.json -o files --progress-file progress -q -- orbit " in script
    assert json.loads((folder / "params.json").read_text())["view"] == view
    assert (folder / "exit_status").read_text().strip() == "0"
    check_orbit_tiles(s, "tiles", run_ok, tmp_path, 25.0)


def test_a_movie_runs_as_a_slurm_job(cluster, serve, run_ok, tmp_path):
    """A movie job on Slurm: the same frames as a local movie job (test_movie.py's check)."""
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm:debug")
    params = {"timeline": TIMELINE, "fps": 20, "width": 80, "height": 64}
    assert call(s, "PUT", "/api/v1/jobs/mov", {"kind": "movie", "params": params})[0] == 202
    j = wait_state(s, "mov", {"succeeded", "failed", "canceled"}, timeout=180)
    assert j["state"] == "succeeded", f"{j}\n{_tail(d / 'jobs' / 'mov' / 'slurm.log')}"
    assert j["files"] == ["movie.mp4"] and j["done"] == j["total"] == 20
    code, _, raw = call(s, "GET", "/api/v1/jobs/mov/files/movie.mp4")
    assert code == 200
    (tmp_path / "job.mp4").write_bytes(raw)
    check_movie(tmp_path / "job.mp4", run_ok, tmp_path, 20, 80, 64, 20)
    assert cluster.state_of(slurm_id(d, "mov")) == "COMPLETED"


def test_progress_on_events_then_cancel_reaches_slurm(cluster, serve, tmp_path):
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm")

    async def watch():
        ws = await websockets.connect(f"{s.ws}/ws/events")
        assert json.loads(await ws.recv())["type"] == "jobs"
        await asyncio.get_running_loop().run_in_executor(
            None, call, s, "PUT", "/api/v1/jobs/big", {"kind": "orbit", "params": BIG})
        seen = []
        states = set()  # what Slurm said of the job while voxcast called it running
        end = time.time() + 90
        while time.time() < end:
            m = json.loads(await asyncio.wait_for(ws.recv(), 90))
            seen.append((m["job"]["state"], m["job"]["done"], m["job"]["total"]))
            if "scheduler" in m["job"]:
                states.add(m["job"]["scheduler"]["state"])
            if m["job"]["state"] == "running" and 0 < m["job"]["done"] < m["job"]["total"]:
                await ws.close()
                assert states and states <= {"SUBMITTED", "PENDING", "RUNNING"}, (states, seen)
                return seen
            assert m["job"]["state"] in ("queued", "running"), (m, seen)
        raise AssertionError(f"no progress event within 90 s: {seen}")

    seen = asyncio.run(watch())
    assert seen[-1][2] == 40 * 40, seen
    sid = slurm_id(d, "big")
    assert cluster.state_of(sid) == "RUNNING"
    code, _, body = call(s, "DELETE", "/api/v1/jobs/big")
    assert code == 200, body
    j = wait_state(s, "big", {"canceled", "failed", "succeeded"}, timeout=60)
    assert j["state"] == "canceled", j
    assert j["done"] < j["total"]
    assert cluster.state_of(sid) == "CANCELLED"


def test_a_killed_server_follows_its_slurm_jobs_again_after_a_restart(cluster, serve, tmp_path):
    """A Slurm job outlives a server that is killed (SIGKILL: no goodbye, no scancel); the
    next server on the same data directory follows it again to its end."""
    import signal
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm")
    params = {"columns": 12, "rows": 10, "size": 96}  # seconds of work on the node
    assert call(s, "PUT", "/api/v1/jobs/long", {"kind": "orbit", "params": params})[0] == 202
    end = time.time() + 60
    while time.time() < end:
        j = job(s, "long")
        if j.get("scheduler", {}).get("state") == "RUNNING":
            break
        assert j["state"] in ("queued", "running"), j
        time.sleep(0.2)
    else:
        raise AssertionError(f"the job never ran on Slurm: {j}")
    s.stop(signal.SIGKILL)
    sid = slurm_id(d, "long")
    assert cluster.state_of(sid) in ("RUNNING", "COMPLETING", "COMPLETED"), cluster.state_of(sid)
    s2 = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm")
    j = wait_state(s2, "long", {"succeeded", "failed", "canceled"}, timeout=180)
    assert j["state"] == "succeeded", f"{j}\n{_tail(d / 'jobs' / 'long' / 'slurm.log')}"
    assert j["done"] == j["total"] == 120 and "orbit.json" in j["files"], j
    assert j["scheduler"]["state"] == "COMPLETED" and j["scheduler"]["job"] == sid, j
    _, err = s2.stop()
    assert "event=job.slurm.resumed" in err, err[-3000:]


def test_a_damaged_slurm_job_id_is_not_followed(cluster, serve, tmp_path):
    """A job folder whose slurm_job_id is not a Slurm job id (damaged, or written by someone
    else) is never passed to squeue or scancel: the job fails saying what was wrong."""
    d = tmp_path / "d"
    folder = d / "jobs" / "bad"
    (folder / "files").mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({
        "id": "bad", "kind": "orbit", "params": {"columns": 2, "rows": 1, "size": 32},
        "state": "running", "done": 0, "total": 2, "created": 1.0, "started": 1.0}))
    (folder / "slurm_job_id").write_text("1; scancel --user=root\n")
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm")
    j = wait_state(s, "bad", {"succeeded", "failed", "canceled"}, timeout=60)
    assert j["state"] == "failed", j
    assert "no Slurm job id to follow" in j["error"] and "slurm_job_id" in j["error"], j


def test_a_job_scancelled_behind_voxcasts_back_fails_saying_so(cluster, serve, tmp_path):
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm:debug")
    assert call(s, "PUT", "/api/v1/jobs/big", {"kind": "orbit", "params": BIG})[0] == 202
    wait_progress(s, "big")
    sid = slurm_id(d, "big")
    cluster.cmd("scancel", sid)
    j = wait_state(s, "big", {"canceled", "failed", "succeeded"}, timeout=60)
    assert j["state"] == "failed", j
    assert f"Slurm job {sid} was cancelled outside voxcast" in j["error"], j


def test_a_failing_job_reports_its_own_error(cluster, serve, tmp_path):
    """The dataset is gone when the job opens it on the node: the job's "voxcast: error:"
    line, read from its Slurm log, is the job's error."""
    import numpy as np
    vol = tmp_path / "vol.npy"
    np.save(vol, (np.arange(32 * 32 * 32, dtype=np.uint16) % 1000).reshape(32, 32, 32))
    d = tmp_path / "d"
    s = serve(vol, "--data-dir", d, "--jobs-backend", "slurm:debug")
    vol.unlink()
    params = {"columns": 2, "rows": 1, "size": 32}
    assert call(s, "PUT", "/api/v1/jobs/gone", {"kind": "orbit", "params": params})[0] == 202
    j = wait_state(s, "gone", {"canceled", "failed", "succeeded"}, timeout=120)
    assert j["state"] == "failed", j
    sid = slurm_id(d, "gone")
    assert j["error"].startswith(f"Slurm job {sid} failed (exit status 1): "), j
    assert str(vol) in j["error"] and "no such file" in j["error"], j
    assert cluster.state_of(sid) == "FAILED"


def test_a_rejected_submission_fails_with_sbatchs_reason(cluster, serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d", "--jobs-backend", "slurm:nope")
    params = {"columns": 2, "rows": 1, "size": 32}
    assert call(s, "PUT", "/api/v1/jobs/r", {"kind": "orbit", "params": params})[0] == 202
    j = wait_state(s, "r", {"canceled", "failed", "succeeded"}, timeout=60)
    assert j["state"] == "failed", j
    assert j["error"].startswith("Slurm refused the job (sbatch exited with code 1): "), j
    assert "invalid partition" in j["error"].lower(), j
    # More nodes than the partition has.
    s2 = serve(DATA, "--data-dir", tmp_path / "d2", "--jobs-backend", "slurm:debug")
    assert call(s2, "PUT", "/api/v1/jobs/n", {"kind": "orbit", "params": {**params, "nodes": 3}})[0] == 202
    j = wait_state(s2, "n", {"canceled", "failed", "succeeded"}, timeout=60)
    assert j["state"] == "failed", j
    # EnforcePartLimits=NO (Slurm's default, as here): sbatch takes it, and it would pend
    # forever (reason PartitionConfig or PartitionNodeLimit); the backend cancels it and says
    # why. (With EnforcePartLimits=ALL sbatch refuses it: the first case.)
    assert re.search(r"pending with reason Partition(Config|NodeLimit) ", j["error"]), j
    sid = slurm_id(tmp_path / "d2", "n")
    assert cluster.state_of(sid) == "CANCELLED"


def test_the_local_backend_refuses_several_nodes_and_bad_backends_are_refused(serve, run, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    code, _, body = call(s, "PUT", "/api/v1/jobs/x",
                         {"kind": "orbit", "params": {"columns": 2, "rows": 1, "nodes": 2}})
    assert code == 400 and "params.nodes" in json.loads(body)["error"]["message"], body
    for bad in ("nope", "slurm:a b", "slurm:"):
        res = run("serve", DATA, "--port", "0", "--data-dir", tmp_path / "e", "--jobs-backend", bad)
        assert res.returncode != 0 and "--jobs-backend" in res.stderr, res.stderr


def test_serve_sbatch_prints_the_tunnel_and_the_token_url(cluster, voxcast_bin, tmp_path):
    """scripts/slurm/voxcast-serve.sbatch on the node: its log has the SSH tunnel command and
    the token URL; the server answers with that token (and refuses without it); scancel
    stops it."""
    import urllib.error
    import urllib.request
    script = Path(__file__).resolve().parents[2] / "scripts" / "slurm" / "voxcast-serve.sbatch"
    log = tmp_path / "serve.log"
    env = dict(cluster.env, VOXCAST=str(voxcast_bin), VOXCAST_LOGIN="login.example.org")
    res = subprocess.run(["sbatch", "--parsable", f"--output={log}", f"--chdir={tmp_path}",
                          str(script), DATA, "--", "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    sid = res.stdout.strip().split(";")[0]
    try:
        end = time.time() + 90
        text = ""
        while time.time() < end and "scancel" not in text:
            text = log.read_text(errors="replace") if log.exists() else ""
            assert cluster.state_of(sid) in ("PENDING", "RUNNING"), text
            time.sleep(0.2)
        tunnel = re.search(r"ssh -N -L 8080:(\S+):(\d+) \S+@login\.example\.org", text)
        url = re.search(r"http://localhost:8080/\?token=([0-9a-f]{32})", text)
        assert tunnel and url, text
        port, token = tunnel.group(2), url.group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health?token={token}",
                                    timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert e.value.code == 401
    finally:
        cluster.cmd("scancel", sid, check=False)
    end = time.time() + 30
    while time.time() < end and cluster.state_of(sid) not in ("CANCELLED", "COMPLETED", "FAILED"):
        time.sleep(0.2)
    assert cluster.state_of(sid) == "CANCELLED", log.read_text(errors="replace")


def test_a_node_failure_fails_the_job_saying_so(cluster, serve, tmp_path):
    """The node goes down under a running job (scontrol: what slurmctld does when a node
    stops answering): NODE_FAIL, not requeued (sbatch --no-requeue), a failed job."""
    d = tmp_path / "d"
    s = serve(DATA, "--data-dir", d, "--jobs-backend", "slurm:debug")
    assert call(s, "PUT", "/api/v1/jobs/big", {"kind": "orbit", "params": BIG})[0] == 202
    wait_progress(s, "big")
    sid = slurm_id(d, "big")
    try:
        cluster.cmd("scontrol", "update", f"nodename={cluster.node}", "state=down",
                    "reason=voxcast-test")
        j = wait_state(s, "big", {"canceled", "failed", "succeeded"}, timeout=60)
    finally:
        # Back in service for whatever runs next (ReturnToService=2 does it once slurmd
        # answers; resume is refused when it already has).
        cluster.cmd("scontrol", "update", f"nodename={cluster.node}", "state=resume", check=False)
        assert cluster._wait(cluster._node_idle, 30, None), cluster.logs()
    assert j["state"] == "failed", j
    assert j["error"] == (f"a node of Slurm job {sid} failed and Slurm ended the job "
                          f"(NODE_FAIL, NodeDown)"), j
