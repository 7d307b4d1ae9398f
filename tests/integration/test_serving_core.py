"""The serving core under abuse, through tests/testd.c: connection limits,
slow and idle clients, the drain protocol a balancer sees, and refusals of
malformed, smuggled and oversized requests, every one in JSON."""
import errno
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import TOOLS, Daemon, proc_status


@pytest.fixture
def testd(start):
    return lambda *a, **kw: start(os.path.join(TOOLS, "vx_testd"), "--queue", "0",
                                  *a, **kw)


def threads_of(pid):
    return proc_status(pid, "Threads")


def exchange(port, data, timeout=5):
    """Sends data, reads until the server closes (or timeout); returns
    (bytes, closed_by_server, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.time()
    s.sendall(data)
    out, closed = b"", False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return out, closed, time.time() - t0


def responses(raw):
    """Splits raw HTTP/1.1 responses (Content-Length framed)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        raw = rest[n:]
    return out


def healthz_ms(d, n=20):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = d.get("/healthz", timeout=5)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, r
    times.sort()
    return times[len(times) // 2], times[-1]


def assert_json_error(status, hdrs, body, want_status, code=None):
    assert status == want_status, (status, body)
    assert hdrs.get("content-type") == "application/json", hdrs
    err = json.loads(body)["error"]
    assert err["message"]
    if code:
        assert err["code"] == code, err


# ---- connection limits ----

def test_past_max_connections_refuses_cleanly_and_recovers(testd):
    d = testd("--max-connections", "20", "--workers", "32")
    results, lock = [], threading.Lock()

    def one():
        try:
            r = d.get("/slow?ms=1500", timeout=10)
            st = (r.status, r.headers.get("Retry-After"),
                  r.json()["error"]["code"] if r.status != 200 else None)
        except OSError as e:
            st = ("closed", type(e).__name__, None)
        with lock:
            results.append(st)

    ts = [threading.Thread(target=one) for _ in range(25)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(ok) == 20, results
    assert len(ok) + len(refused) + sum(r[0] == "closed" for r in results) == 25
    for r in refused:
        assert r[1] == "1" and r[2] == "overloaded", r
    # Serves normally the moment load falls, again and again.
    for _ in range(3):
        assert d.get("/slow?ms=10").status == 200
    p50, _ = healthz_ms(d)
    assert p50 < 50
    assert "voxline_rejected_total" in d.get("/metrics").body.decode()


def test_slow_heads_cost_no_threads_and_get_408(testd):
    d = testd("--head-timeout-s", "3")
    before = threads_of(d.proc.pid)
    socks = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        socks.append(s)
    for s in socks[:100]:
        s.sendall(b"Ho")                      # trickling
    time.sleep(0.3)
    assert threads_of(d.proc.pid) <= before + 2
    p50, worst = healthz_ms(d)
    assert p50 < 50, (p50, worst)
    t0 = time.time()
    got = 0
    for s in socks:
        b = s.recv(4096)
        assert b.startswith(b"HTTP/1.1 408"), b
        got += 1
        s.close()
    assert got == 200 and time.time() - t0 < 6
    assert d.get("/healthz").status == 200


def test_idle_keepalive_connections_cost_no_threads(testd):
    d = testd()
    before = threads_of(d.proc.pid)
    socks = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    assert threads_of(d.proc.pid) <= before + 2
    p50, _ = healthz_ms(d)
    assert p50 < 50
    for s in socks:
        s.close()


# ---- the drain a balancer sees ----

def test_drain_order_readiness_first_then_refuse_then_finish(testd):
    d = testd("--workers", "4", "--drain-delay-s", "2", "--drain-s", "10")
    slow = {}

    def in_flight():
        slow["r"] = d.get("/slow?ms=3500", timeout=15)

    t = threading.Thread(target=in_flight)
    t.start()
    time.sleep(0.3)
    t_term = time.time()
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    h = d.get("/healthz")
    assert h.status == 503 and h.json()["status"] == "draining"
    assert d.get("/readyz").status == 503
    assert d.get("/livez").status == 200
    # Every other route keeps serving during the delay, new connections too.
    for _ in range(5):
        assert d.post("/echo", b"hi", "text/plain").status == 200
        assert d.get("/slow?ms=10").status == 200
    time.sleep(max(0, t_term + 2.6 - time.time()))
    # After the delay: new connections are refused.
    with pytest.raises(OSError) as e:
        socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
    assert e.value.errno in (errno.ECONNREFUSED, errno.ECONNRESET), e.value
    t.join()
    assert slow["r"].status == 200
    d.proc.wait(5)
    assert d.proc.returncode == 0
    assert time.time() - t_term < 10


def test_request_cut_at_drain_deadline_gets_503_json(testd):
    d = testd("--workers", "2", "--drain-delay-s", "0", "--drain-s", "2")
    got = {}

    def in_flight():
        got["r"] = d.get("/slow?ms=20000", timeout=15)

    t = threading.Thread(target=in_flight)
    t.start()
    time.sleep(0.3)
    t_term = time.time()
    d.proc.send_signal(signal.SIGTERM)
    t.join()
    r = got["r"]
    assert r.status == 503 and r.json()["error"]["code"] == "draining"
    d.proc.wait(5)
    assert time.time() - t_term <= 3.2
    assert d.proc.returncode == 0


def test_sigterm_ends_a_frozen_daemon_within_drain_s_plus_one(tmp_path):
    # Started by hand: it is meant to exit non-zero.
    d = Daemon([os.path.join(TOOLS, "vx_testd"), "--port", "0", "--debug-freeze",
                "--drain-s", "2", "--drain-delay-s", "0"], str(tmp_path / "log"))
    d.wait_ready()
    d.proc.send_signal(signal.SIGUSR2)
    time.sleep(0.5)
    with pytest.raises(OSError):
        d.get("/healthz", timeout=1)    # the loop is frozen
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(5)
    assert time.time() - t0 <= 3.3
    d.stop()
    assert d.proc.returncode == 1
    assert "did not finish in time" in d.log()


def test_sigterm_ends_a_daemon_with_every_connection_held(testd):
    d = testd("--max-connections", "50", "--drain-s", "2", "--drain-delay-s", "1")
    socks = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(80)]
    for s in socks:
        s.sendall(b"GET /slow?ms=60000 HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(5)
    assert time.time() - t0 <= 3.3
    for s in socks:
        s.close()


# ---- refusals: smuggling, chunking, oversize, NUL ----

BAD_HEADS = [
    ("cl_and_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
     400, "bad_request"),
    ("te_gzip", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
     501, "not_implemented"),
    ("two_lengths", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\nabcd", 400, "bad_request"),
    ("huge_chunk", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"FFFFFFFFFFFFFFFF\r\n", 413, "body_too_large"),
    ("bad_chunk", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n", 400, "bad_request"),
    ("chunk_ext_64k", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5;" + b"a" * 65536 + b"\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    ("nul_request_line", b"GET /heal\x00thz HTTP/1.1\r\n", 400, "bad_request"),
    ("nul_header", b"GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400, "bad_request"),
    ("long_url", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "uri_too_long"),
    ("big_headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(90)) + b"\r\n",
     431, "headers_too_large"),
    ("many_headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
     431, "headers_too_large"),
    ("folded", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n",
     400, "bad_request"),
    ("space_before_colon", b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
     400, "bad_request"),
    ("no_host", b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"),
    ("http2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "http_version_not_supported"),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "bad_request"),
    ("huge_length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n",
     413, "body_too_large"),
]


@pytest.mark.parametrize("name,data,status,code", BAD_HEADS,
                         ids=[b[0] for b in BAD_HEADS])
def test_bad_request_heads_get_json_and_close(testd, name, data, status, code):
    d = testd()
    raw, closed, secs = exchange(d.port, data)
    rs = responses(raw)
    assert len(rs) == 1, raw[:500]          # a smuggled second request never runs
    assert_json_error(*rs[0], status, code)
    assert rs[0][1].get("connection") == "close"
    assert closed and secs < 2, (closed, secs)
    assert d.get("/healthz").status == 200


def test_smuggling_on_a_kept_alive_connection_is_refused(testd):
    d = testd()
    data = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n")
    raw, closed, _ = exchange(d.port, data)
    rs = responses(raw)
    assert [r[0] for r in rs] == [200, 400], raw[:800]
    assert_json_error(*rs[1], 400, "bad_request")
    assert closed


def test_body_a_little_over_the_limit_is_read_and_answered_413(testd):
    d = testd()                              # /echo takes 1 MiB
    body = b"x" * (1024 * 1024 + 5000)
    raw, closed, _ = exchange(d.port, b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    rs = responses(raw)
    assert_json_error(*rs[0], 413, "body_too_large")


def test_chunked_body_over_the_limit_is_answered_413(testd):
    d = testd()
    chunk = b"x" * 65536
    data = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    data += (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 20 + b"0\r\n\r\n"
    raw, _, _ = exchange(d.port, data)
    rs = responses(raw)
    assert_json_error(*rs[0], 413, "body_too_large")


@pytest.mark.parametrize("svc", ["vad", "tts"])
def test_daemons_refuse_smuggling(start, svc):
    d = start(svc)
    raw, closed, _ = exchange(d.port, BAD_HEADS[0][1])
    rs = responses(raw)
    assert len(rs) == 1 and closed
    assert_json_error(*rs[0], 400, "bad_request")


def test_kept_alive_requests_near_the_head_limit_are_served_not_html(testd):
    d = testd()
    big = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 7000 + b"\r\n\r\n"
    over = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20000 + b"\r\n\r\n"
    raw, _, _ = exchange(d.port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" + big +
                         b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [r[0] for r in responses(raw)] == [200, 200, 200], raw[:300]
    raw, _, _ = exchange(d.port, over)
    assert_json_error(*responses(raw)[0], 431, "headers_too_large")


def test_websocket_upgrade_on_a_kept_alive_connection_is_refused_in_json(testd):
    d = testd()
    raw, closed, _ = exchange(
        d.port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n")
    rs = responses(raw)
    assert rs[0][0] == 200
    assert_json_error(*rs[1], 503, "reconnect")
    assert closed


def test_websockets_are_served_during_the_drain_delay(testd):
    import websocket
    d = testd("--drain-delay-s", "2", "--drain-s", "6")
    d.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert d.get("/healthz").status == 503
    ws = websocket.create_connection(d.ws_url + "/ws/echo", timeout=5)
    ws.send("hello")
    assert ws.recv() == "hello"
    ws.close()
    d.proc.wait(10)
    assert d.proc.returncode == 0
