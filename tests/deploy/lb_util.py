"""Helpers of the load-balancer and two-host tests (test_haproxy.py,
test_netns.py): daemons on chosen ports, the real haproxy on the shipped
deploy/haproxy/voxline.cfg, its stats socket, bounded client load, and
network namespaces joined by veth pairs that are always deleted.

    ports = free_ports(3)
    d = Proc("stt1", [bin_path("stt"), "--host", "127.0.0.1", "--port", ports[0]], tmp)
    d.wait_ready(); ...; d.stop()

Nothing here sends traffic anywhere but loopback or, through `ip netns exec`,
to addresses inside namespaces the test made (checked with `ip route get`).
"""
import csv
import http.client as httpclient
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VOXLINE_BIN", os.path.join(ROOT, "build", "bin"))
PYTHON = "/usr/bin/python3"
HAPROXY_CFG = os.path.join(ROOT, "deploy", "haproxy", "voxline.cfg")
NGINX_CONF = os.path.join(ROOT, "deploy", "nginx", "voxline.conf")
LLM_UPSTREAM = os.path.join(ROOT, "tests", "llm_upstream.py")


def need(*programs):
    """Fails (never skips) when a program the test runs is missing."""
    missing = [p for p in programs if not shutil.which(p) and not os.path.exists(p)]
    assert not missing, f"not installed: {missing} (run `make deps`)"


def bin_path(name):
    p = os.path.join(BIN, "voxline-" + name)
    assert os.access(p, os.X_OK), f"{p} is not built (run `make`)"
    return p


def free_ports(n):
    """n distinct free loopback TCP ports (held until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---- HTTP on loopback ----

def http(port, method, path, body=None, headers=None, timeout=30, host="127.0.0.1"):
    """One request on a new connection: (status, headers dict, body bytes).
    Raises OSError / http client errors when the connection fails."""
    c = httpclient.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(port, path, **kw):
    st, _, body = http(port, "GET", path, **kw)
    return st, (json.loads(body) if body else None)


def post_json(port, path, obj, **kw):
    return http(port, "POST", path, json.dumps(obj).encode(),
                {"Content-Type": "application/json"}, **kw)


def wait_until(pred, timeout, what, step=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


# ---- processes ----

class Proc:
    """A process whose stdout and stderr go to <tmp>/<name>.log.
    argv may start with `ip netns exec NS` (ip execs the program, so the
    pid is the program's and signals reach it)."""

    def __init__(self, name, argv, tmp, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = os.path.join(str(tmp), f"{name}.log")
        self.env = env
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(self.log_path, "ab")
        e = dict(os.environ)
        e.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e)
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self.logf.close()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Ends it (SIGKILL after timeout); returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


def stop_all(procs, timeout=25):
    """SIGTERM to every process at once (each drains for --drain-delay-s),
    then waits; SIGKILL for any still running after timeout. Returns
    {proc: (was alive, exit status)}."""
    alive = {p: p.alive() for p in procs}
    for p in procs:
        p.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    out = {}
    for p in procs:
        if p.proc is None:
            continue
        try:
            p.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()
        out[p] = (alive[p], p.stop())
    return out


class Daemon(Proc):
    """A voxline daemon on a chosen port; `prefix` (e.g. ip netns exec ..)
    runs it elsewhere, then readiness is asked from there too."""

    def __init__(self, name, service, port, tmp, *args, host="127.0.0.1", prefix=(),
                 env=None):
        self.service, self.port, self.host, self.prefix = service, port, host, list(prefix)
        argv = [*self.prefix, bin_path(service), "--host", host, "--port", port, *args]
        super().__init__(name, argv, tmp, env)

    def ready(self):
        if self.prefix:
            r = subprocess.run([*self.prefix, "curl", "-s", "-o", "/dev/null", "-w",
                                "%{http_code}", "--max-time", "2",
                                f"http://{self.host}:{self.port}/readyz"],
                               capture_output=True, text=True)
            return r.stdout == "200"
        return http(self.port, "GET", "/readyz", timeout=2, host=self.host)[0] == 200

    def wait_ready(self, timeout=60):
        def ok():
            assert self.alive(), f"{self.name} exited:\n{self.log()[-3000:]}"
            return self.ready()
        wait_until(ok, timeout, f"{self.name} ready")
        return self

    def metrics(self):
        """Its /metrics text, asked from inside its namespace when it has a
        prefix."""
        if self.prefix:
            return sh(*self.prefix, "curl", "-s", "--max-time", "5",
                      f"http://{self.host}:{self.port}/metrics")
        return http(self.port, "GET", "/metrics", timeout=5)[2].decode()

    def metric(self, name, label=None):
        return metric_sum(self.metrics(), name, label)


def metric_sum(text, name, label=None):
    """Sum of the samples of metric name (those whose labels contain label,
    e.g. 'route="/detect"', when given) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if key.split("{", 1)[0] != name:
            continue
        if label is not None and label not in key:
            continue
        total += float(value)
    return total


class LlmUpstream(Proc):
    """tests/llm_upstream.py (the scripted OpenAI upstream) on a port."""

    def __init__(self, name, tmp, port=0, prefix=()):
        self.port_arg = port
        super().__init__(name, [*prefix, PYTHON, "-u", LLM_UPSTREAM, "--port", port], tmp)
        self.port = int(wait_until(self._port, 20, f"{name} port"))

    def _port(self):
        assert self.alive(), self.log()
        if self.port_arg:
            return self.port_arg if "\n" in self.log() else None
        first = self.log().split("\n", 1)
        return first[0].strip() if len(first) > 1 and first[0].strip().isdigit() else None


# ---- haproxy ----

class HAProxy(Proc):
    """The real haproxy on the shipped config, unchanged: every address in
    it comes from a presetenv line, so the test gives them in the
    environment (VOXLINE_LB_*)."""

    def __init__(self, tmp, env, cfg=HAPROXY_CFG, name="haproxy"):
        self.socket_path = env["VOXLINE_LB_SOCKET"]
        super().__init__(name, ["haproxy", "-db", "-f", cfg], tmp, env)
        wait_until(lambda: self.alive() and os.path.exists(self.socket_path) and
                   self.cmd("show info"), 20, "haproxy stats socket")

    def cmd(self, line):
        assert self.alive(), f"haproxy exited:\n{self.log()[-3000:]}"
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(self.socket_path)
            s.sendall(line.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
            return out.decode()
        finally:
            s.close()

    def stats(self):
        """{(proxy, server): row} from `show stat` (row: status, stot, ...)."""
        text = self.cmd("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {(r["pxname"], r["svname"]): r for r in rows if r.get("pxname")}

    def server(self, backend, server):
        return self.stats()[(backend, server)]

    def wait_status(self, backend, server, want, timeout=30):
        return wait_until(lambda: self.server(backend, server)["status"].startswith(want),
                          timeout, f"{backend}/{server} {want}", step=0.05)

    def log_lines(self):
        return [ln for ln in self.log().splitlines() if '"' in ln and "/" in ln]


def haproxy_retries(lines, since_line=0):
    """(retried, redispatched) request counts in haproxy's httplog lines:
    the retries field of "actconn/feconn/beconn/srv_conn/retries"."""
    import re
    pat = re.compile(r" \d+/\d+/\d+/\d+/(\+?)(\d+) \d+/\d+ ")
    retried = redisp = 0
    for ln in lines[since_line:]:
        m = pat.search(ln)
        if m and int(m.group(2)) > 0:
            retried += 1
            redisp += m.group(1) == "+"
    return retried, redisp


# ---- bounded client load ----

class Load:
    """Client threads, each calling fn() in a loop until stop() or the
    deadline; records (t_start, t_end, ok, detail) per call."""

    def __init__(self, name, fn, clients, max_s=30, pause_s=0.0):
        self.name, self.fn, self.pause_s = name, fn, pause_s
        self.results = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.deadline = time.monotonic() + max_s
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        while not self.stop_ev.is_set() and time.monotonic() < self.deadline:
            t0 = time.monotonic()
            try:
                ok, detail = self.fn()
            except Exception as e:  # noqa: BLE001 - a failed request is data
                ok, detail = False, f"{type(e).__name__}: {e}"
            with self.lock:
                self.results.append((t0, time.monotonic(), ok, detail))
            time.sleep(self.pause_s if ok else max(self.pause_s, 0.05))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)
        return self

    def failures(self):
        return [r for r in self.results if not r[2]]

    def in_flight_at(self, t):
        return [r for r in self.results if r[0] <= t <= r[1]]

    def summary(self, t_event=None):
        s = {"requests": len(self.results), "failed": len(self.failures())}
        if t_event is not None:
            fl = self.in_flight_at(t_event)
            s["in_flight_at_event"] = len(fl)
            s["in_flight_failed"] = sum(1 for r in fl if not r[2])
        return s


# ---- network namespaces ----

def sh(*argv, check=True, timeout=30):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))}: exit {r.returncode}: "
                             f"{r.stderr.strip()}")
    return r.stdout


class Netns:
    """Namespaces and veth pairs made by one test; delete() removes every
    one of them (call it from a finalizer)."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.names = []
        self.veths = []   # (namespace, device) that own a pair

    def add(self, role):
        name = f"{self.prefix}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, ns_a, dev_a, addr_a, ns_b, dev_b, addr_b, prefixlen=30):
        """A veth pair ns_a:dev_a <-> ns_b:dev_b with the two addresses."""
        sh("ip", "link", "add", dev_a, "netns", ns_a, "type", "veth",
           "peer", "name", dev_b, "netns", ns_b)
        self.veths.append((ns_a, dev_a))
        sh("ip", "-n", ns_a, "addr", "add", f"{addr_a}/{prefixlen}", "dev", dev_a)
        sh("ip", "-n", ns_b, "addr", "add", f"{addr_b}/{prefixlen}", "dev", dev_b)
        sh("ip", "-n", ns_a, "link", "set", dev_a, "up")
        sh("ip", "-n", ns_b, "link", "set", dev_b, "up")

    def exec_prefix(self, ns):
        return ["ip", "netns", "exec", ns]

    def route_dev(self, ns, addr):
        """The device `ip route get` in ns says addr leaves by (None when no
        route). Fails when the route goes through a gateway."""
        r = subprocess.run(["ip", "-n", ns, "-j", "route", "get", addr],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        routes = json.loads(r.stdout)
        assert routes, r.stdout
        assert "gateway" not in routes[0], f"{addr} via a gateway in {ns}: {routes}"
        return routes[0].get("dev")

    def set_link(self, ns, dev, up):
        sh("ip", "-n", ns, "link", "set", dev, "up" if up else "down")

    def delete(self):
        errors = []
        for ns, dev in self.veths:
            subprocess.run(["ip", "-n", ns, "link", "del", dev], capture_output=True)
        for ns in self.names:
            r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append(r.stderr.strip())
        self.names, self.veths = [], []
        return errors


def kill_netns_pids(ns):
    """Pids still running in namespace ns (to end what a test started)."""
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]
