"""The common server (libvoxline) through a small daemon built on it
(tests/testd.c): routing, limits, admission control, streams, WebSockets on
the same port, cancellation on disconnect, drain on SIGTERM."""
import os
import select
import socket
import threading
import time

import pytest
import websocket

from conftest import TOOLS


@pytest.fixture
def testd(start):
    return lambda *a: start(os.path.join(TOOLS, "vx_testd"), "--queue", "0",
                            "--head-timeout-s", "2", *a)


def raw(port, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return out


def test_builtin_routes_answer_json(testd):
    d = testd()
    r = d.get("/healthz")
    assert r.status == 200 and r.json()["status"] == "ok"
    assert d.request("HEAD", "/readyz").status == 200
    assert d.get("/livez").json()["status"] == "alive"
    assert "voxline_http_requests_total" in d.get("/metrics").body.decode()
    assert d.get("/info").json()["service"] == "voxline-testd"
    r = d.get("/nope")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = d.get("/echo")
    assert r.status == 405 and "error" in r.json()
    assert r.headers.get("X-Request-Id")


def test_request_id_is_passed_through(testd):
    d = testd()
    r = d.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"


def test_keep_alive_serves_many_requests_on_one_connection(testd):
    d = testd()
    s = socket.create_connection(("127.0.0.1", d.port))
    for _ in range(50):
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"alive" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"HTTP/1.1 200")
    s.close()


def test_body_over_limit_is_413_before_it_is_read(testd):
    d = testd()
    # Claims 10 GB; the server must answer without waiting for it.
    t0 = time.time()
    out = raw(d.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 10737418240\r\n\r\n" + b"x" * 1000)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert b'"body_too_large"' in out
    assert time.time() - t0 < 3
    # Chunked, no length: read and dropped past 1 MiB, then 413.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
    for _ in range(64):
        s.sendall(chunk)
    s.sendall(b"0\r\n\r\n")
    got = s.recv(65536)
    s.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert d.get("/healthz").status == 200


def test_slow_head_gets_408_and_is_closed(testd):
    d = testd()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.time()
    got = s.recv(4096)
    assert got.startswith(b"HTTP/1.1 408"), got
    assert time.time() - t0 < 5
    s.close()
    assert d.get("/healthz").status == 200


def test_full_pool_answers_503_then_recovers(testd):
    d = testd("--workers", "1", "--queue", "1")
    results = []

    def slow():
        results.append(d.get("/slow?ms=800").status)

    ts = [threading.Thread(target=slow) for _ in range(2)]
    for t in ts:
        t.start()
    time.sleep(0.2)
    r = d.get("/slow?ms=10")
    assert r.status == 503
    assert r.headers.get("Retry-After") == "1"
    assert r.json()["error"]["code"] == "overloaded"
    for t in ts:
        t.join()
    assert results == [200, 200]
    assert d.get("/slow?ms=10").status == 200
    assert "voxline_rejected_total 1" in d.get("/metrics").body.decode()


def test_stream_is_chunked_and_stops_when_client_leaves(testd):
    d = testd()
    r = d.get("/stream?n=3")
    assert r.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"GET /stream?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.close()
    assert d.wait_log("stream client gone", 3), d.log()


def test_job_is_cancelled_when_client_leaves(testd):
    d = testd()
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"GET /slow?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    s.close()
    assert d.wait_log("slow job cancelled", 2), d.log()
    assert d.get("/slow?ms=10").status == 200


def test_multipart_and_wrong_media_type(testd):
    d = testd()
    r = d.post_file("/form", b"\x00" * 1234)
    assert r.status == 200 and r.json()["len"] == 1234
    r = d.post("/form", b"{}", "application/json")
    assert r.status == 415
    r = d.post("/form", b"garbage", "multipart/form-data; boundary=zz")
    assert r.status == 400


def test_websocket_on_the_same_port(testd):
    d = testd()
    ws = websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    ws.send("hello")
    assert ws.recv() == "hello"
    ws.send_binary(bytes(range(256)) * 4000)
    assert ws.recv() == bytes(range(256)) * 4000
    ws.close()
    # An upgrade on an unknown path is an HTTP 404, not a silent close.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(d.ws_url + "/ws/nope", timeout=5)
    assert e.value.status_code == 404
    assert d.get("/healthz").status == 200


def test_many_websockets_and_abrupt_disconnects(testd):
    d = testd()
    socks = [websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
             for _ in range(40)]
    for i, ws in enumerate(socks):
        ws.send(f"m{i}")
    for i, ws in enumerate(socks):
        assert ws.recv() == f"m{i}"
    for ws in socks[::2]:
        ws.sock.close()       # vanish without a close frame
    for ws in socks[1::2]:
        ws.close()
    assert d.get("/healthz").status == 200


def test_bearer_key_protects_routes_not_health(testd):
    d = testd("--api-key", "s3cret")
    r = d.post("/echo", b"x", "text/plain")
    assert r.status == 401 and r.json()["error"]["code"] == "unauthorized"
    r = d.post("/echo", b"x", "text/plain", headers={"Authorization": "Bearer s3cret"})
    assert r.status == 200
    assert d.get("/healthz").status == 200


def test_sigterm_drains_requests_in_flight(testd):
    d = testd()
    out = {}

    def slow():
        out["r"] = d.get("/slow?ms=600")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    d.proc.terminate()
    t.join()
    assert out["r"].status == 200
    assert d.proc.wait(10) == 0


def test_websocket_past_the_admission_limit_gets_503(testd):
    d = testd("--max-ws", "2")
    a = websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    b = websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    assert e.value.status_code == 503
    a.close()
    time.sleep(0.2)
    c = websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    c.send("ok")
    assert c.recv() == "ok"
    b.close()
    c.close()


def test_systemd_socket_activation_and_notify(tmp_path):
    """The daemon takes its listening socket from systemd (LISTEN_FDS) and
    reports READY=1 / STOPPING=1 on NOTIFY_SOCKET, as under Type=notify."""
    import shutil
    import signal
    import subprocess
    activate = shutil.which("systemd-socket-activate")
    assert activate, ("systemd-socket-activate not found: `make deps` installs it "
                      "(Debian package systemd, deploy/deploy.mk)")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    p = subprocess.Popen([activate, "-E", "NOTIFY_SOCKET", "-l", f"127.0.0.1:{port}",
                          os.path.join(TOOLS, "vx_testd")], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        body = b""
        while time.time() < deadline:
            try:
                body = raw(port, b"GET /healthz HTTP/1.0\r\n\r\n")
                if body:
                    break
            except OSError:
                time.sleep(0.1)
        assert body.startswith(b"HTTP/1.1 200") and b'"ok"' in body, body
        msgs = []
        while not any(b"READY=1" in m for m in msgs):
            msgs.append(notify.recv(4096))
        p.send_signal(signal.SIGTERM)
        while not any(b"STOPPING=1" in m for m in msgs):
            msgs.append(notify.recv(4096))
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        notify.close()
