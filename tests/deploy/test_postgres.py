"""Stateless orchestrators on PostgreSQL (issue 9, item 6), with a real
PostgreSQL server from Debian's packages (tests/deploy/pg_util.py) and the
real haproxy, everything on loopback:

  - the conversation store's checks (build/tests/test_orch_history) on
    PostgreSQL;
  - two orchestrators, started together on one new database, behind HAProxy
    (a minimal config of this test: `balance first`, so the first one takes
    every request while it is up; health checks on /healthz; a failed
    connection is retried on the other): a conversation started on the
    first (POST /chat, and /ws/chat with voxline-client), after kill -9 of
    it, continues on the second with its history - GET /conversations/<id>
    shows every turn and the next LLM request carries the earlier turns;
  - PostgreSQL restarted under them: the next turn is served (the broken
    pooled connection is reset), nothing is lost or stored twice.

The real voxline-vad, -stt, -tts and -llm (openai engine on
tests/llm_upstream.py, which echoes "You said: <text>.") serve the stages.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from pg_util import PgServer, free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VOXLINE_BIN", os.path.join(ROOT, "build", "bin"))
TESTS = os.path.join(os.path.dirname(BIN), "tests")
PYTHON = "/usr/bin/python3"


def need_file(path, how):
    assert os.access(path, os.X_OK), f"{path} is missing: {how}"


class Proc:
    """A process with its output in a log file; stop() always reaps it."""

    def __init__(self, name, argv, tmp, env=None, stop_signal=signal.SIGTERM):
        self.name = name
        self.stop_signal = stop_signal
        self.argv = [str(a) for a in argv]
        self.log_path = os.path.join(tmp, name + ".log")
        self.env = env
        self.start()

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=20):
        """stop_signal, then SIGKILL after timeout; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers with lowercase names, body bytes) of one request
    to 127.0.0.1:port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def post_json(port, path, obj, **kw):
    return http(port, "POST", path, json.dumps(obj).encode(),
                {"Content-Type": "application/json"}, **kw)


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Daemon(Proc):
    def __init__(self, name, service, tmp, *args):
        self.port = free_port()
        super().__init__(name, [os.path.join(BIN, "voxline-" + service), "--host",
                                "127.0.0.1", "--port", self.port, "--drain-delay-s", "0",
                                *args], tmp)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=60):
        def ok():
            assert self.alive(), f"{self.name} exited:\n{self.log()}"
            return http(self.port, "GET", "/healthz", timeout=5)[0] == 200
        wait_until(ok, timeout, f"{self.name} /healthz 200")


HAPROXY_CFG = """\
# test_postgres.py: two orchestrators, one address. `balance first`: the
# first server takes everything while it is up, so the test knows where a
# conversation started. A failed connection is retried on the other server.
global
    maxconn 256
    stats socket {tmp}/haproxy.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend orch
    bind 127.0.0.1:{port}
    default_backend orchestrators

backend orchestrators
    balance first
    # A WebSocket upgrade must open its own server connection: the daemons
    # route an upgrade only as the first request of a connection (on a
    # reused one, HTTP/1.1 keep-alive after /healthz, it gets 404).
    http-reuse never
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2 maxconn 100
    http-response set-header X-Served-By %s
    server a 127.0.0.1:{port_a} check
    server b 127.0.0.1:{port_b} check
"""


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="voxline-pgtest-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pg():
    with PgServer() as server:
        yield server


def run_store_checks(pg):
    exe = os.path.join(TESTS, "test_orch_history")
    need_file(exe, "built by `make test-deploy` (services/orchestrator/pg.mk)")
    base = pg.url().rsplit("/", 1)[0]
    r = subprocess.run([exe], env=dict(os.environ, VOXLINE_TEST_PG=base),
                       capture_output=True, text=True, timeout=300)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "backend: postgresql" in r.stdout
    assert " 0 failed" in r.stdout and "pg_a_killed_connection_is_reset" in r.stdout


def test_store_checks_on_postgresql(pg):
    run_store_checks(pg)


def llm_messages(upstream_port):
    """The messages of the last chat request the fake LLM got."""
    _, _, body = http(upstream_port, "GET", "/debug/requests")
    body = json.loads(body)[-1]["body"]
    return (body if isinstance(body, dict) else json.loads(body))["messages"]


def client(port, *args, timeout=90):
    """voxline-client through /ws/chat; (exit code, events)."""
    argv = [os.path.join(BIN, "voxline-client"), "--url",
            f"ws://127.0.0.1:{port}/ws/chat", *map(str, args)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    if p.returncode != 0:
        events.append({"type": "_stderr", "text": p.stderr[-2000:]})
    return p.returncode, events


def chat(port, text, cid):
    status, headers, body = post_json(port, "/chat", {"text": text, "conversation_id": cid},
                                      timeout=60)
    assert status == 200, (status, body[:500])
    j = json.loads(body)
    assert j["conversation_id"] == cid and j["reply"] == f"You said: {text}."
    return headers.get("x-served-by")


def test_two_orchestrators_behind_haproxy_share_conversations_on_postgresql(pg, tmp):
    need_file(shutil.which("haproxy") or "/usr/sbin/haproxy", "install haproxy (`make deps`)")
    pg.sql("CREATE DATABASE voxline")
    url = pg.url("voxline")
    procs = []
    upstream = None
    try:
        # the stages
        upstream = subprocess.Popen([PYTHON, os.path.join(ROOT, "tests", "llm_upstream.py"),
                                     "--port", "0"], stdout=subprocess.PIPE)
        up_port = int(upstream.stdout.readline())
        stages = {s: Daemon(s, s, tmp) for s in ("vad", "stt", "tts")}
        stages["llm"] = Daemon("llm", "llm", tmp, "--engine", "openai", "--url",
                               f"http://127.0.0.1:{up_port}")
        procs += stages.values()
        for d in stages.values():
            d.wait_ready()
        urls = [f"--{s}-url={d.url}" for s, d in stages.items()]

        # two orchestrators started together on a new database: both create
        # the schema when missing, under the advisory lock
        orch = {n: Daemon("orch-" + n, "orchestrator", tmp, "--db", url,
                          "--health-interval-s", "1", *urls) for n in "ab"}
        procs += orch.values()
        for d in orch.values():
            d.wait_ready()
        for d in orch.values():
            assert "(postgresql)" in d.log() and "vx-test-secret" not in d.log(), d.log()

        lb_port = free_port()
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(tmp=tmp, port=lb_port, port_a=orch["a"].port,
                                       port_b=orch["b"].port))
        haproxy = Proc("haproxy", [shutil.which("haproxy") or "/usr/sbin/haproxy",
                                   "-f", cfg, "-db"], tmp,
                       stop_signal=signal.SIGUSR1)  # soft stop: exits 0
        procs.append(haproxy)
        wait_until(lambda: http(lb_port, "GET", "/healthz", timeout=3)[0] == 200, 30,
                   "haproxy in front of the orchestrators")

        # POST /chat: two turns on a, kill -9 a, the third on b
        assert chat(lb_port, "my name is Ada", "shared-1") == "a"
        assert chat(lb_port, "I live in Paris", "shared-1") == "a"
        orch["a"].kill9()
        t0 = time.monotonic()
        assert chat(lb_port, "what is my name", "shared-1") == "b"
        print(f"first turn after kill -9: {time.monotonic() - t0:.2f} s")
        msgs = llm_messages(up_port)
        assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 2 + ["user"]
        assert msgs[1]["content"] == "my name is Ada"
        assert msgs[4]["content"] == "You said: I live in Paris."
        assert msgs[-1]["content"] == "what is my name"
        status, _, body = http(lb_port, "GET", "/conversations/shared-1")
        turns = json.loads(body)["turns"]
        assert status == 200 and [t["idx"] for t in turns] == list(range(6))
        assert turns[0]["content"] == "my name is Ada"
        assert turns[5]["content"] == "You said: what is my name."

        # /ws/chat: a back (same port), a conversation on it, kill -9, the
        # client reconnects with the id and lands on b with the history
        orch["a"].start()
        orch["a"].wait_ready()
        wait_until(lambda: http(lb_port, "GET", "/info", timeout=3)[1].get("x-served-by") == "a",
                   30, "haproxy to send to a again")
        code, events = client(lb_port, "--text", "remember the number seven",
                              "--conversation", "ws-1", "--turns", "2")
        assert code == 0, events
        orch["a"].kill9()
        code, events = client(lb_port, "--text", "which number", "--conversation", "ws-1")
        assert code == 0, events
        ready = next(e for e in events if e["type"] == "ready")
        assert ready["conversation_id"] == "ws-1" and ready["turns"] == 4
        msgs = llm_messages(up_port)
        assert msgs[1]["content"] == "remember the number seven" and len(msgs) == 6
        assert http(orch["b"].port, "GET", "/conversations/ws-1")[0] == 200

        # PostgreSQL restarts under b: the next turn is served all the same
        pg.restart()
        assert chat(lb_port, "still there", "shared-1") == "b"
        turns = json.loads(http(lb_port, "GET", "/conversations/shared-1")[2])["turns"]
        assert [t["idx"] for t in turns] == list(range(8))
        assert turns[6]["content"] == "still there"
        # the rows themselves, counted by PostgreSQL
        assert pg.sql("SELECT COUNT(*) FROM turns WHERE conversation_id = 'shared-1'",
                      db="voxline") == "8"
        assert orch["b"].alive() and haproxy.alive()
    except BaseException:
        for p in procs:
            print(f"==== {p.name} log:\n{p.log()}")
        raise
    finally:
        failed = []
        for p in reversed(procs):
            was_alive = p.alive()
            rc = p.stop()
            if was_alive and rc not in (0, None):
                failed.append(f"{p.name} exited {rc}:\n{p.log()}")
        if upstream:
            upstream.terminate()
            upstream.wait(10)
    assert not failed, "\n".join(failed)
