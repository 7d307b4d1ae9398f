"""Every daemon behind the real haproxy (Debian's 2.6) running the shipped
deploy/haproxy/voxline.cfg unchanged (its addresses come from the
environment through its presetenv lines): two instances per service on
loopback, bounded client load, then

  - SIGTERM one instance of each service -> no failed client request (the
    drain protocol: /readyz 503 at once, other routes still served for
    --drain-delay-s, then the listener closes, in-flight work finishes);
  - kill -9 one instance -> the requests in flight at the kill that HAProxy
    can replay (every buffered VAD/STT/TTS/LLM request) do not fail; those
    it cannot replay (a WebSocket already upgraded, the orchestrator's
    POST /chat) are counted and reported;
  - the restarted instance is back in rotation (haproxy's stats socket:
    status UP, its session counter rises).

Also: the shipped config starts where RLIMIT_NOFILE is 1024 or 20000, and
deploy/nginx/voxline.conf passes `nginx -t` and proxies HTTP and WebSocket.

The numbers (requests, failures, in flight at the event, haproxy retries)
are printed per scenario: run with -s to see them."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
import websocket

from lb_util import (HAPROXY_CFG, NGINX_CONF, Daemon, HAProxy, Load, LlmUpstream,
                     free_ports, haproxy_retries, http, need, post_json, stop_all,
                     wait_until)

SERVICES = ["vad", "stt", "tts", "llm", "orch"]
DAEMON = {"vad": "vad", "stt": "stt", "tts": "tts", "llm": "llm", "orch": "orchestrator"}
BACKEND = {"vad": "vad", "stt": "stt", "tts": "tts", "llm": "llm", "orch": "orchestrator"}
LOAD_S = 10          # seconds of load per scenario
EVENT_AT_S = 2.5     # the signal comes this long into the load
DRAIN_DELAY_S = 5    # the daemons' default --drain-delay-s, left as is


class Lb:
    """Two instances of every daemon, haproxy in front, the test speech."""

    def __init__(self, tmp):
        need("haproxy", "curl")
        self.tmp = tmp
        self.daemons, self.haproxy, self.upstream = {}, None, None

    def setup(self):
        tmp = self.tmp
        ports = free_ports(17)
        self.front = dict(zip(SERVICES, ports[0:5]))
        self.stats_port = ports[5]
        self.inst_port = {}
        for i, svc in enumerate(SERVICES):
            self.inst_port[(svc, 1)] = ports[6 + 2 * i]
            self.inst_port[(svc, 2)] = ports[7 + 2 * i]
        self.upstream = LlmUpstream("llm-upstream", tmp)
        for svc in SERVICES:
            for n in (1, 2):
                self.daemons[(svc, n)] = self._daemon(svc, n)
        env = {"VOXLINE_LB_BIND": "127.0.0.1",
               "VOXLINE_LB_STATS": f"127.0.0.1:{self.stats_port}",
               "VOXLINE_LB_SOCKET": os.path.join(str(tmp), "haproxy.sock")}
        for svc in SERVICES:
            key = "ORCH" if svc == "orch" else svc.upper()
            env[f"VOXLINE_LB_{key}_PORT"] = str(self.front[svc])
            for n in (1, 2):
                env[f"VOXLINE_LB_{key}{n}"] = f"127.0.0.1:{self.inst_port[(svc, n)]}"
        self.haproxy = HAProxy(tmp, env)
        for d in self.daemons.values():
            d.wait_ready()
        for svc in SERVICES:
            for n in (1, 2):
                self.haproxy.wait_status(BACKEND[svc], self.server(svc, n), "UP")
        st, _, wav = post_json(self.daemons[("tts", 1)].port, "/synthesize",
                               {"text": "What time is it right now?", "sample_rate": 16000})
        assert st == 200, wav
        # HAProxy replays only what it holds whole: tune.bufsize is 64 KiB.
        assert len(wav) < 60000, len(wav)
        self.wav = wav

    def server(self, svc, n):
        return f"{'orch' if svc == 'orch' else svc}{n}"

    def _daemon(self, svc, n):
        port = self.inst_port[(svc, n)]
        args = []
        if svc == "llm":
            args = ["--engine", "openai", "--url", f"http://127.0.0.1:{self.upstream.port}"]
        if svc == "orch":
            # The orchestrators reach the services through haproxy too.
            args = ["--db", os.path.join(str(self.tmp), f"orch{n}.db"),
                    "--health-interval-s", "1",
                    "--web-root", os.path.join(os.path.dirname(HAPROXY_CFG), "..", "..",
                                               "services", "orchestrator", "web")]
            for st in ("vad", "stt", "tts", "llm"):
                args += [f"--{st}-url", f"http://127.0.0.1:{self.front[st]}"]
        return Daemon(f"{svc}{n}", DAEMON[svc], port, self.tmp, *args)

    def restart(self, svc, n):
        d = self.daemons[(svc, n)]
        assert not d.alive()
        d.start()
        d.wait_ready()
        return d

    def close(self):
        procs = [p for p in [*self.daemons.values(), self.haproxy, self.upstream] if p]
        return [f"{p.name} exited {rc}:\n{p.log()[-1500:]}"
                for p, (alive, rc) in stop_all(procs).items()
                if isinstance(p, Daemon) and alive and rc not in (0, None)]


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    t0 = time.monotonic()
    lb = Lb(tmp_path_factory.mktemp("lb"))
    try:
        lb.setup()
    except BaseException:
        lb.close()
        raise
    print(f"\n# setup: 10 daemons + haproxy ready in {time.monotonic() - t0:.1f} s")
    yield lb
    bad = lb.close()
    assert not bad, "\n".join(bad)


# ---- one client request per route (ok, detail) ----

def req_vad(lb):
    st, _, body = http(lb.front["vad"], "POST", "/detect", lb.wav,
                       {"Content-Type": "audio/wav"})
    return st == 200 and b"segments" in body, f"{st} {body[:120]!r}"


def req_stt(lb):
    st, _, body = http(lb.front["stt"], "POST", "/transcribe", lb.wav,
                       {"Content-Type": "audio/wav"})
    return st == 200 and b'"text"' in body, f"{st} {body[:120]!r}"


def req_tts(lb):
    st, h, body = post_json(lb.front["tts"], "/synthesize", {"text": "Hello there."})
    return st == 200 and body[:4] == b"RIFF", f"{st} {body[:120]!r}"


def req_llm(lb):
    # The upstream's "slow" model writes a token every 50 ms: a request
    # takes ~0.3 s, so some are in flight at the signal.
    st, _, body = post_json(lb.front["llm"], "/v1/chat/completions",
                            {"model": "slow", "max_tokens": 6,
                             "messages": [{"role": "user", "content": "count"}]})
    return st == 200 and b'"choices"' in body, f"{st} {body[:120]!r}"


def req_orch_chat(lb):
    st, _, body = post_json(lb.front["orch"], "/chat", {"text": "hello there"}, timeout=60)
    return st == 200 and b'"reply"' in body, f"{st} {body[:160]!r}"


def req_ws_chat(lb):
    """One /ws/chat conversation through haproxy: start, a text turn, its
    metrics event, close."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{lb.front['orch']}/ws/chat",
                                     timeout=30)
    try:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm16"}))
        sent = False
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                continue
            if op == websocket.ABNF.OPCODE_CLOSE:
                return False, f"closed {data[:80]!r}"
            ev = json.loads(data)
            if ev.get("type") == "ready" and not sent:
                ws.send(json.dumps({"type": "text", "text": "hello there"}))
                sent = True
            elif ev.get("type") == "error":
                return False, f"error event {ev}"
            elif ev.get("type") == "metrics":
                return ev.get("error") is None, f"metrics {ev}"
    finally:
        ws.close()


def req_ws_transcribe(lb):
    """One /ws/transcribe round through haproxy: config, audio, end, final."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{lb.front['stt']}/ws/transcribe",
                                     timeout=30)
    try:
        ws.send(json.dumps({"sample_rate": 16000, "encoding": "pcm16"}))
        pcm = lb.wav[44:]
        for i in range(0, len(pcm), 3200):
            ws.send_binary(pcm[i:i + 3200])
        ws.send(json.dumps({"event": "end"}))
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_CLOSE:
                return False, f"closed {data[:80]!r}"
            if op != websocket.ABNF.OPCODE_TEXT:
                continue
            ev = json.loads(data)
            if ev.get("event") == "error":
                return False, f"error event {ev}"
            if ev.get("event") == "final":
                return True, ev.get("text", "")
    finally:
        ws.close()


SERVICE_ROUTES = {"vad": req_vad, "stt": req_stt, "tts": req_tts, "llm": req_llm,
                  "ws_transcribe": req_ws_transcribe}
ORCH_ROUTES = {"orch_chat": req_orch_chat, "ws_chat": req_ws_chat}
CLIENTS = {"vad": 1, "stt": 2, "tts": 1, "llm": 2, "ws_transcribe": 1,
           "orch_chat": 1, "ws_chat": 1}
# Bounded load on a shared 2-core machine: a pause after each request.
PAUSE_S = {"vad": 0.05, "tts": 0.05, "llm": 0.0, "stt": 0.0, "ws_transcribe": 0.2,
           "orch_chat": 0.1, "ws_chat": 0.2}


def run_load(lb, routes, event, load_s=LOAD_S):
    """Load on routes; event() EVENT_AT_S into it (returns its time);
    returns ({route: Load}, t_event, haproxy log lines before)."""
    mark = len(lb.haproxy.log_lines())
    loads = {name: Load(name, (lambda f=f: f(lb)), CLIENTS[name], max_s=load_s + 30,
                         pause_s=PAUSE_S[name])
             for name, f in routes.items()}
    time.sleep(EVENT_AT_S)
    t_event = event()
    time.sleep(max(0.0, load_s - (time.monotonic() - t_event) - EVENT_AT_S))
    for ld in loads.values():
        ld.stop()
    return loads, t_event, mark


def report(title, loads, t_event, lb, mark):
    retried, redisp = haproxy_retries(lb.haproxy.log_lines(), mark)
    print(f"\n# {title}: haproxy retried {retried} requests ({redisp} redispatched)")
    out = {}
    for name, ld in loads.items():
        s = ld.summary(t_event)
        out[name] = s
        fails = [r[3] for r in ld.failures()][:3]
        print(f"#   {name:14s} {s}" + (f" e.g. {fails}" if fails else ""))
    return out


def back_in_rotation(lb, svc, n, route):
    """The restarted instance is UP in haproxy and gets requests again."""
    be, sv = BACKEND[svc], lb.server(svc, n)
    t0 = time.monotonic()
    lb.haproxy.wait_status(be, sv, "UP", timeout=20)
    up_s = time.monotonic() - t0
    before = int(lb.haproxy.server(be, sv)["stot"])
    for _ in range(8):
        ok, detail = route(lb)
        assert ok, detail
    after = int(lb.haproxy.server(be, sv)["stot"])
    assert after > before, f"{be}/{sv} got no request after its restart ({before} -> {after})"
    return up_s, after - before


# ---- the scenarios ----

def test_nginx_config_checks_and_proxies(lb, tmp_path):
    """deploy/nginx/voxline.conf with its addresses and ports substituted:
    `nginx -t`, then one request per daemon and a WebSocket through it."""
    need("nginx")
    conf = open(NGINX_CONF).read()
    ports = free_ports(5)
    default_port = {"orch": 3000, "vad": 3001, "stt": 3002, "tts": 3003, "llm": 3004}
    for svc, p in zip(SERVICES, ports):
        name = "orchestrator" if svc == "orch" else svc
        block = re.search(r"upstream voxline_%s \{.*?\}" % name, conf, re.S).group(0)
        servers = re.findall(r"server (\S+) ", block)
        assert len(servers) == 2, block
        new = block
        for n, addr in zip((1, 2), servers):
            new = new.replace(f"server {addr} ",
                              f"server 127.0.0.1:{lb.inst_port[(svc, n)]} ")
        conf = conf.replace(block, new)
        conf = conf.replace(f"listen {default_port[svc]};", f"listen 127.0.0.1:{p};")
    assert not re.search(r"server 10\.", conf) and "listen 300" not in conf
    (tmp_path / "voxline.conf").write_text(conf)
    main = tmp_path / "nginx.conf"
    # Root's test directories are private: the workers run as root here.
    main.write_text(f"""daemon off;
user root;
pid {tmp_path}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    include {tmp_path}/voxline.conf;
}}
""")
    # The shipped file as is, too (its 10.x addresses are never contacted).
    shipped = tmp_path / "shipped.conf"
    shipped.write_text(main.read_text().replace(f"{tmp_path}/voxline.conf", NGINX_CONF))
    for c in (shipped, main):
        r = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(c)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "test is successful" in r.stderr, r.stderr
    errlog = open(tmp_path / "nginx.log", "wb")
    p = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", str(main)],
                         stdout=errlog, stderr=subprocess.STDOUT)
    try:
        front = dict(zip(SERVICES, ports))
        wait_until(lambda: http(front["vad"], "GET", "/readyz", timeout=2)[0] == 200,
                   10, "nginx up")
        via = type("Via", (), {"front": front, "wav": lb.wav})()
        for name, f in {**SERVICE_ROUTES, **ORCH_ROUTES}.items():
            ok, detail = f(via)
            assert ok, (name, detail, (tmp_path / "nginx.log").read_text()[-2000:])
    finally:
        p.terminate()
        p.wait(10)
        errlog.close()


def test_shipped_haproxy_starts_with_default_descriptor_limits(tmp_path):
    """No fixed maxconn: haproxy sizes itself from RLIMIT_NOFILE (bounded by
    fd-hard-limit) and starts at 1024 and at 20000, without the privilege
    to raise the limit (the old `maxconn 20000` needed 40017)."""
    need("haproxy", "prlimit", "setpriv")
    for soft, hard in ((1024, 1024), (20000, 20000)):
        ports = free_ports(6)
        env = {"VOXLINE_LB_BIND": "127.0.0.1",
               "VOXLINE_LB_STATS": f"127.0.0.1:{ports[5]}",
               "VOXLINE_LB_SOCKET": str(tmp_path / f"s{soft}.sock")}
        for svc, p in zip(("ORCH", "VAD", "STT", "TTS", "LLM"), ports):
            env[f"VOXLINE_LB_{svc}_PORT"] = str(p)
            # Servers on loopback ports nobody listens on (checks refused).
            env[f"VOXLINE_LB_{svc}1"] = env[f"VOXLINE_LB_{svc}2"] = "127.0.0.1:1"
        proc = subprocess.Popen(
            ["prlimit", f"--nofile={soft}:{hard}", "setpriv",
             "--bounding-set=-sys_resource", "--inh-caps=-sys_resource",
             "haproxy", "-db", "-f", HAPROXY_CFG],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            sock = env["VOXLINE_LB_SOCKET"]
            wait_until(lambda: proc.poll() is None and os.path.exists(sock), 10,
                       f"haproxy up at nofile {soft}:{hard}")
            info = HAProxy.cmd(type("H", (), {"socket_path": sock,
                                              "alive": lambda self: True,
                                              "log": lambda self: ""})(), "show info")
            maxconn = int(re.search(r"^Maxconn: (\d+)", info, re.M).group(1))
            print(f"# nofile {soft}:{hard}: haproxy maxconn {maxconn}")
            assert 100 <= maxconn <= hard // 2, maxconn
            # No instance up: haproxy's own answer is voxline's JSON error.
            wait_until(lambda: http(ports[1], "GET", "/readyz", timeout=5)[0] == 503, 10,
                       "503 with every vad instance down")
            st, h, body = http(ports[1], "POST", "/detect", b"x",
                               {"Content-Type": "audio/wav"}, timeout=5)
            assert st == 503 and h["content-type"] == "application/json", (st, h, body)
            assert json.loads(body)["error"]["code"] == "unavailable", body
        finally:
            proc.terminate()
            out = proc.communicate(timeout=10)[0].decode()
        alerts = [ln for ln in out.splitlines()
                  if "ALERT" in ln and "has no server available" not in ln]
        assert not alerts, out


def test_sigterm_one_instance_of_each_fails_no_request(lb):
    """SIGTERM to instance 1 of every service under load: 0 failed client
    requests; haproxy takes each out within --drain-delay-s; each exits
    within --drain-s; restarted, each is back in rotation."""
    t_start = time.monotonic()
    victims = [lb.daemons[(svc, 1)] for svc in SERVICES]
    down_after = {}

    direct = {}

    def event():
        t = time.monotonic()
        for d in victims:
            d.send(signal.SIGTERM)
        # The contract, asked of a draining instance itself (not through
        # haproxy): during --drain-delay-s every route but readiness serves,
        # a new WebSocket included.
        time.sleep(0.3)
        one = type("One", (), {"wav": lb.wav,
                               "front": {s: lb.inst_port[(s, 1)] for s in SERVICES}})()
        for name, ask in (("readyz", lambda: http(one.front["vad"], "GET", "/readyz",
                                                 timeout=5)[0]),
                          ("POST /detect", lambda: req_vad(one)),
                          ("/ws/transcribe", lambda: req_ws_transcribe(one))):
            try:
                direct[name] = ask()
            except Exception as e:  # noqa: BLE001 - reported below
                direct[name] = (False, f"{type(e).__name__}: {e}")
        # haproxy must see /readyz 503 before the listener closes.
        pending = set(SERVICES)
        while pending and time.monotonic() - t < 20:
            st = lb.haproxy.stats()
            for svc in list(pending):
                if st[(BACKEND[svc], lb.server(svc, 1))]["status"].startswith("DOWN"):
                    down_after[svc] = round(time.monotonic() - t, 2)
                    pending.discard(svc)
            time.sleep(0.05)
        return t

    loads, t_event, mark = run_load(lb, {**SERVICE_ROUTES, **ORCH_ROUTES}, event)
    out = report("SIGTERM one instance of each service", loads, t_event, lb, mark)
    exits = {}
    for svc, d in zip(SERVICES, victims):
        try:
            exits[svc] = d.wait(20)
        except subprocess.TimeoutExpired:
            exits[svc] = "still running 20 s after SIGTERM"
    print(f"#   marked DOWN after (s): {down_after}; exit codes: {exits}")
    print(f"#   asked of a draining instance directly: {direct}")
    for svc in SERVICES:
        if lb.daemons[(svc, 1)].alive():
            lb.daemons[(svc, 1)].stop(signal.SIGKILL)
        lb.restart(svc, 1)
    rot = {svc: back_in_rotation(lb, svc, 1, r) for svc, r in
           (("vad", req_vad), ("stt", req_stt), ("tts", req_tts), ("llm", req_llm),
            ("orch", req_orch_chat))}
    print(f"#   back UP after restart (s, requests seen): {rot}")
    print(f"#   test took {time.monotonic() - t_start:.1f} s")
    assert direct["readyz"] == 503, direct
    assert direct["POST /detect"][0] and direct["/ws/transcribe"][0], \
        f"a draining daemon refused a route during --drain-delay-s: {direct}"
    failed = {k: v["failed"] for k, v in out.items() if v["failed"]}
    assert not failed, f"failed requests during the drain: {failed} ({out})"
    for svc in SERVICES:
        assert down_after.get(svc, 99) < DRAIN_DELAY_S, \
            f"haproxy took {down_after.get(svc)} s to take {svc}1 out (drain delay {DRAIN_DELAY_S} s)"
        assert exits[svc] == 0, f"{svc}1 after SIGTERM: {exits[svc]}"
    assert all(v["requests"] > 0 for v in out.values()), out


def test_kill9_in_flight_requests_are_retried(lb):
    """kill -9 of instance 2 of VAD, STT, TTS and LLM under load: every
    request in flight at the kill is replayed by haproxy on instance 1 (0
    failed); then kill -9 of orchestrator 2: a /ws/chat conversation or
    POST /chat in flight on it cannot be replayed (counted, reported), the
    next ones are served. Restarted, each is back in rotation."""
    t_start = time.monotonic()
    svcs = ["vad", "stt", "tts", "llm"]

    def kill_services():
        t = time.monotonic()
        for svc in svcs:
            lb.daemons[(svc, 2)].send(signal.SIGKILL)
        return t

    loads, t_kill, mark = run_load(lb, SERVICE_ROUTES, kill_services)
    out = report("kill -9 one instance of vad, stt, tts, llm", loads, t_kill, lb, mark)
    for svc in svcs:
        lb.daemons[(svc, 2)].wait(10)
        lb.restart(svc, 2)
    rot = {svc: back_in_rotation(lb, svc, 2, r) for svc, r in
           (("vad", req_vad), ("stt", req_stt), ("tts", req_tts), ("llm", req_llm))}
    print(f"#   back UP after restart (s, requests seen): {rot}")

    def kill_orch():
        t = time.monotonic()
        lb.daemons[("orch", 2)].send(signal.SIGKILL)
        return t

    oloads, t_okill, omark = run_load(lb, ORCH_ROUTES, kill_orch)
    oout = report("kill -9 one orchestrator", oloads, t_okill, lb, omark)
    lb.daemons[("orch", 2)].wait(10)
    lb.restart("orch", 2)
    print(f"#   orchestrator back UP after restart (s, requests seen): "
          f"{back_in_rotation(lb, 'orch', 2, req_orch_chat)}")
    print(f"#   test took {time.monotonic() - t_start:.1f} s")

    # Replayable: plain HTTP requests to stateless services.
    failed = {k: v for k, v in out.items() if k != "ws_transcribe" and v["failed"]}
    assert not failed, f"retryable requests failed at kill -9: {failed}"
    # A WebSocket already upgraded dies with its server: at most those in
    # flight at the kill fail, and only those.
    for name, ld in {**{"ws_transcribe": loads["ws_transcribe"]}, **oloads}.items():
        fl = ld.failures()
        at_kill = [r for r in ld.in_flight_at(t_kill if name == "ws_transcribe" else t_okill)
                   if not r[2]]
        assert len(fl) == len(at_kill), f"{name}: failures not in flight at the kill: {fl}"
    assert all(v["requests"] > 0 for v in {**out, **oout}.values())
