"""`voxcast serve` against a hostile client, with raw sockets where an HTTP library would
tidy the request up: paths that leave the web folder or a job's files folder, malformed
HTTP, HEAD, client strings that try to forge log lines, the token in logs and in the
Authorization header, messages before hello, an unwritable --data-dir."""

from __future__ import annotations

import asyncio
import json
import os
import socket

import websockets

from vxhelpers import http_get as get

DATA = "synthetic:cells?shape=32x64x64&chunk=32"
SECRET = b"TOP-SECRET-CONTENT"


def raw(s, request: bytes, timeout=20) -> bytes:
    """Sends `request` as it is and returns everything the server answers until it closes."""
    with socket.create_connection((s.host, s.port), timeout=timeout) as c:
        c.sendall(request)
        out = b""
        while True:
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
    return out


def raw_get(s, target: str, method="GET") -> tuple[int, dict, bytes]:
    resp = raw(s, f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), resp[:200]
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body



def web_folder(tmp_path):
    """A web folder with two files, and secrets beside it that a path must not reach."""
    web = tmp_path / "web"
    (web / "sub").mkdir(parents=True)
    (web / "index.html").write_text("<html>index</html>")
    (web / "app.js").write_text("// app")
    (web / "sub" / "page.html").write_text("<html>sub</html>")
    for name in ("secret.txt", "websecret.txt", "web-secret.txt"):
        (tmp_path / name).write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", web / "link.txt")  # a link that leads out
    os.symlink(tmp_path, web / "up")
    return web


def test_static_paths_stay_inside_the_web_folder(serve, tmp_path):
    web = web_folder(tmp_path)
    s = serve(DATA, "--web-dir", web, "--data-dir", tmp_path / "d")
    assert raw_get(s, "/")[2] == b"<html>index</html>"
    assert raw_get(s, "/app.js")[2] == b"// app"
    assert raw_get(s, "/sub/page.html")[2] == b"<html>sub</html>"
    assert raw_get(s, "/sub%2fpage.html")[2] == b"<html>sub</html>"  # decoded, still inside
    for target in ("secret.txt", "-secret.txt", "websecret.txt", "../secret.txt",
                   "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
                   "/%2E%2E/secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt",
                   "/%2e%2e%2fsecret.txt", "//" + str(tmp_path / "secret.txt").lstrip("/"),
                   "/" + str(tmp_path / "secret.txt"), "/%2f" + str(tmp_path / "secret.txt"),
                   "/link.txt", "/up/secret.txt", "/sub/..%5c..%5csecret.txt",
                   "/app.js%00.png", "*", "http://x/../secret.txt"):
        code, _, body = raw_get(s, target)
        assert SECRET not in body, f"{target} read a file outside the web folder"
        assert code in (400, 404), (target, code, body[:200])
        assert json.loads(body)["error"]["code"] in ("bad_request", "not_found"), target


def test_job_files_stay_inside_their_folder(serve, tmp_path):
    # A job.json (a stored file) whose list of files points outside its files/ folder.
    d = tmp_path / "d"
    job = d / "jobs" / "evil"
    (job / "files").mkdir(parents=True)
    (job / "files" / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", job / "files" / "link.txt")
    outside = ["../../../../secret.txt", str(tmp_path / "secret.txt"), "../job.json", "link.txt",
               "..", "."]
    (job / "job.json").write_text(json.dumps({
        "id": "evil", "kind": "orbit", "params": {}, "state": "succeeded", "done": 1, "total": 1,
        "error": None, "files": ["ok.txt", *outside], "created": 1, "started": 1, "finished": 1}))
    # A job folder that is a link to a folder elsewhere, with a job.json of its own.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "files").mkdir(parents=True)
    (elsewhere / "files" / "secret.txt").write_bytes(SECRET)
    (elsewhere / "job.json").write_text(json.dumps({
        "id": "linked", "kind": "orbit", "params": {}, "state": "succeeded", "files": ["secret.txt"]}))
    os.symlink(elsewhere, d / "jobs" / "linked")
    s = serve(DATA, "--data-dir", d)
    assert raw_get(s, "/api/v1/jobs/linked/files/secret.txt")[0] == 404
    assert get(f"{s.http}/api/v1/jobs/linked")[0] == 404
    code, body = get(f"{s.http}/api/v1/jobs/evil")
    assert code == 200 and json.loads(body)["job"]["files"] == ["ok.txt"]
    assert raw_get(s, "/api/v1/jobs/evil/files/ok.txt")[:3:2] == (200, b"fine")
    for name in outside:
        code, _, body = raw_get(s, f"/api/v1/jobs/evil/files/{name}")
        assert SECRET not in body and b'"id"' not in body, f"{name} was served"
        assert code == 404, (name, code)


def test_malformed_http_gets_a_400_answer(serve):
    s = serve(DATA)
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                    b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
                    b"GET\x00 / HTTP/1.1\r\n\r\n"):
        resp = raw(s, request)
        assert resp.startswith(b"HTTP/1.1 400 "), (request, resp[:200])
        body = resp.partition(b"\r\n\r\n")[2]
        assert json.loads(body)["error"]["code"] == "bad_request", (request, body)
    assert get(f"{s.http}/api/v1/health")[0] == 200  # and it serves on


def test_failed_websocket_handshakes_get_json_naming_the_header(serve):
    s = serve(DATA)
    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

    def upgrade(path, headers, timeout=20):
        resp = raw(s, (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\n{headers}\r\n").encode(), timeout)
        head, _, body = resp.partition(b"\r\n\r\n")
        return int(head.split()[1]), head.decode(errors="replace"), body

    for path in ("/ws/state", "/ws/events"):
        for headers, status, header in (
                ("Sec-WebSocket-Version: 13\r\n", 400, "Sec-WebSocket-Key"),
                ("Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", 400,
                 "Sec-WebSocket-Key"),
                (key, 426, "Sec-WebSocket-Version"),
                (key + "Sec-WebSocket-Version: 8\r\n", 426, "Sec-WebSocket-Version")):
            got, head, body = upgrade(path, headers)
            assert got == status, (path, headers, head)
            msg = json.loads(body)["error"]["message"]
            assert f"'{header}'" in msg, (path, headers, msg)
            if status == 426:
                assert "Sec-WebSocket-Version: 13" in head, head
    # A WebSocket path that does not exist lists the ones that do.
    got, _, body = upgrade("/ws/nope", key + "Sec-WebSocket-Version: 13\r\n")
    msg = json.loads(body)["error"]["message"]
    assert got == 404 and all(p in msg for p in ("/ws/state", "/ws/pixels", "/ws/events")), msg
    # A good handshake still upgrades.
    got, _, _ = upgrade("/ws/events", key + "Sec-WebSocket-Version: 13\r\n", timeout=2)
    assert got == 101
    assert get(f"{s.http}/api/v1/health")[0] == 200


def test_head_answers_carry_no_body(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    for target, status in (("/api/v1/health", 200), ("/api/v1/datasets", 200), ("/", 200),
                           ("/nothing", 404), ("/api/v1/jobs", 200), ("/api/v1/job-kinds", 200)):
        code, headers, body = raw_get(s, target, method="HEAD")
        assert code == status, (target, code)
        assert body == b"", f"HEAD {target} sent a body: {body[:100]!r}"
        if target in ("/", "/api/v1/datasets"):  # the length a GET would have
            assert int(headers["content-length"]) == len(raw_get(s, target)[2]) > 0, target
    # Keep-alive after a HEAD: the next answer on the connection is whole.
    with socket.create_connection((s.host, s.port), timeout=20) as c:
        c.sendall(b"HEAD /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    first, _, rest = out.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200"), out[:300]


def test_client_strings_cannot_forge_log_lines(serve, tmp_path):
    s = serve(DATA, "--data-dir", tmp_path / "d")
    forged = "ts=2026-01-01T00:00:00.000 level=error event=forged by=client"

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/state")
        await ws.send(json.dumps({"type": "hello", "client": "x\n" + forged + "\r\x1b[31m"}))
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
        await ws.close()

    asyncio.run(go())
    code, err = s.stop()
    assert code == 0
    lines = err.splitlines()
    assert not [ln for ln in lines if "event=forged" in ln and not ln.startswith("ts=")], err
    assert not [ln for ln in lines if ln.startswith("ts=2026-01-01")], err
    opened = [ln for ln in lines if "event=session.open" in ln]
    assert len(opened) == 1 and "\\n" in opened[0] and "\x1b" not in opened[0], opened


def test_token_is_never_logged_and_bearer_is_case_insensitive(serve, tmp_path):
    token = "tok-" + os.urandom(8).hex()
    s = serve(DATA, "--token", token, "--data-dir", tmp_path / "d")
    assert s.token == token  # printed on stdout, in the URL, for the user
    base = f"{s.http}/api/v1/health"
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert get(base, {"Authorization": f"{scheme} {token}"})[0] == 200, scheme
    assert get(base, {"Authorization": f"Bearer  {token} "})[0] == 200
    for bad in (f"Bearer {token}x", f"Bearer {token[:-1]}", f"Basic {token}", token,
                f"Bearer{token}", "Bearer ", f"Token {token}"):
        assert get(base, {"Authorization": bad})[0] == 401, bad
    assert get(f"{base}?token={token}")[0] == 200
    assert get(f"{base}?token={token[:-1]}")[0] == 401
    code, err = s.stop()
    assert code == 0
    assert "event=serve.listening" in err
    assert token not in err, "the token was written to the log"


def test_ping_before_hello_is_bad_message(serve):
    s = serve(DATA)

    async def go():
        ws = await websockets.connect(f"{s.ws}/ws/state")
        await ws.send(json.dumps({"type": "ping", "t": 1, "seq": 3}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "bad_message", err
        assert "hello" in err["message"] and err["seq"] == 3
        await ws.send(json.dumps({"type": "hello"}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "ping", "t": 2}))
        while (m := json.loads(await ws.recv()))["type"] == "stats":
            pass
        assert m == {"type": "pong", "t": 2}
        await ws.close()

    asyncio.run(go())


def test_unwritable_data_dir_is_an_error_at_start(run, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("not a directory")
    for d in (afile, afile / "below"):
        res = run("serve", DATA, "--port", "0", "--data-dir", d, timeout=60)
        assert res.returncode == 1, res.stderr[-2000:]
        assert str(d) in res.stderr and "data-dir" in res.stderr, res.stderr[-2000:]
        assert "serving" not in res.stdout
