"""Shared fixtures for integration tests: start real daemons on free loopback
ports, talk to them with real clients, and always stop them.

    def test_x(start):
        vad = start("vad")                  # build/bin/voxline-vad --port 0
        r = vad.post("/detect", files=...)  # see Daemon below
"""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VOXLINE_BIN", os.path.join(ROOT, "build", "bin"))
TOOLS = os.environ.get("VOXLINE_TOOLS", os.path.join(ROOT, "build", "tools"))


def _sanitized():
    try:
        with open(os.path.join(BIN, "voxline-stt"), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# An ASan/UBSan build (gcc or clang) computes several times slower: tests
# that pace audio against the decoder slow down with it.
SANITIZED = _sanitized()
PYTHON = "/usr/bin/python3"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class Daemon:
    """A started daemon. Logs go to a file; .log() reads them."""

    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.logf = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.port = None
        self._lines = []
        deadline = time.time() + 60
        pat = re.compile(rb'listening on [^"]*:(\d+)')
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.logf.write(line)
            self.logf.flush()
            m = pat.search(line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError(f"{argv[0]} did not start; log:\n" + self.log())
        self._pump = threading.Thread(target=self._drain, daemon=True)
        self._pump.start()
        self._out = threading.Thread(target=self._drain_out, daemon=True)
        self._out.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.logf.write(line)
            self.logf.flush()

    def _drain_out(self):
        for _ in self.proc.stdout:
            pass

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout=5):
        """True once text is in the log: a line the daemon wrote before it
        answered reaches the file through the pump thread a little later."""
        deadline = time.time() + timeout
        while text not in self.log():
            if time.time() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def request(self, method, path, body=None, headers=None, timeout=60):
        req = urllib.request.Request(self.url + path, data=body,
                                     method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=b"", content_type=None, headers=None, **kw):
        h = dict(headers or {})
        if content_type:
            h["Content-Type"] = content_type
        return self.request("POST", path, body=body, headers=h, **kw)

    def post_json(self, path, obj, **kw):
        return self.post(path, json.dumps(obj).encode(), "application/json", **kw)

    def post_file(self, path, data, fields=None, filename="audio.wav",
                  content_type="audio/wav", **kw):
        body, ctype = multipart({"file": (filename, content_type, data)},
                                fields or {})
        return self.post(path, body, ctype, **kw)

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.get("/healthz", timeout=5).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("not ready: " + self.log()[-2000:])

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in (getattr(self, "_pump", None), getattr(self, "_out", None)):
            if t:
                t.join(5)
        self.logf.close()
        return self.proc.returncode


def proc_status(pid, key):
    """A number from /proc/PID/status, e.g. proc_status(pid, "VmRSS") in kB
    or proc_status(pid, "Threads")."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def multipart(files, fields):
    """Encodes multipart/form-data; files: name -> (filename, ctype, bytes)."""
    boundary = "----voxline%x" % int(time.time() * 1e6)
    out = bytearray()
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; "
                f"name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    for k, (fn, ct, data) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; "
                f"name=\"{k}\"; filename=\"{fn}\"\r\nContent-Type: {ct}\r\n\r\n"
                ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def start(tmp_path):
    """start(name, *args, env=None) -> Daemon, stopped (SIGTERM) after the
    test; the test fails if a daemon did not exit cleanly."""
    started = []

    def _start(name, *args, env=None, ready=True):
        exe = name if os.path.sep in name else os.path.join(BIN, "voxline-" + name)
        argv = [exe, "--port", "0", *map(str, args)]
        log = tmp_path / f"{os.path.basename(exe)}-{len(started)}.log"
        e = dict(os.environ)
        # Tests stop daemons with SIGTERM: no readiness delay unless a test
        # asks for one (--drain-delay-s on the command line wins).
        svc = os.path.basename(exe).replace("voxline-", "").replace("vx_", "")
        e[f"VOXLINE_{svc.upper()}_DRAIN_DELAY_S"] = "0"
        # `make models` may have put models/ggml-base.en.bin here, which
        # makes whisper voxline-stt's default: tests that name neither an
        # engine nor a model are written for pocketsphinx.
        if svc == "stt" and not {"--engine", "--model"} & set(map(str, args)):
            e["VOXLINE_STT_ENGINE"] = "pocketsphinx"
        e.update(env or {})
        d = Daemon(argv, str(log), e)
        started.append(d)
        if ready:
            d.wait_ready()
        return d

    yield _start
    bad = []
    for d in started:
        was_alive = d.alive()
        rc = d.stop()
        if was_alive and rc not in (0, None):
            bad.append(f"{d.argv[0]} exited {rc}:\n{d.log()[-3000:]}")
        elif not was_alive and rc != 0:
            bad.append(f"{d.argv[0]} died during the test ({rc}):\n{d.log()[-3000:]}")
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="session")
def tools():
    return TOOLS
