"""A newcomer's first run: `make run` (tools/run.py) with no model and no
LLM server says so in one block with the commands that fix it, and the
stack it starts says the same through the orchestrator (/healthz stages,
/chat); with a server it prints where the page is. `make models`
(tools/fetch_model.sh) against a loopback HTTP server that serves a small
file with byte ranges: progress, resume, sha256 from URL.sha256, from
X-Linked-Etag or pinned, a bad checksum, an unreachable URL - never a half
file passed off as the model."""
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import BIN, PYTHON, ROOT
from fake_llm import LlmUpstream

RUN = os.path.join(ROOT, "tools", "run.py")
FETCH = os.path.join(ROOT, "tools", "fetch_model.sh")


def free_base():
    """A port N with N..N+4 free on loopback (run.py uses five in a row)."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + 4 > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + 5):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            pass
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no five free ports in a row")


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_json(url, obj, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Run:
    """tools/run.py in the background; its stderr collected."""

    def __init__(self, tmp_path, env):
        self.base = free_base()
        self.page = "http://127.0.0.1:%d" % self.base
        models = tmp_path / "models"
        models.mkdir(exist_ok=True)
        e = dict(os.environ)
        e.update(env)
        for svc in ("VAD", "STT", "TTS", "LLM", "ORCHESTRATOR"):
            e["VOXLINE_%s_DRAIN_DELAY_S" % svc] = "0"
        self.proc = subprocess.Popen(
            [PYTHON, RUN, "--bin", BIN, "--models", str(models), "--port-base",
             str(self.base), "--state", str(tmp_path / "state"), "--no-prompt"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=e, cwd=str(tmp_path))
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(re.search(pattern, l) for l in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("no %r from run.py; it wrote:\n%s" %
                             (pattern, "\n".join(self.lines[-60:])))

    def block(self):
        """The text between the two rules of run.py's block."""
        rules = [i for i, l in enumerate(self.lines) if re.fullmatch("=+", l)]
        assert len(rules) >= 2, self.lines
        return "\n".join(self.lines[rules[0] + 1:rules[1]])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("run.py did not stop on SIGINT")
        return self.proc.returncode


@pytest.fixture
def run(tmp_path):
    started = []

    def _run(env):
        r = Run(tmp_path, env)
        started.append(r)
        return r

    yield _run
    for r in started:
        rc = r.stop()
        r.t.join(5)
        assert rc == 0, "run.py exited %s:\n%s" % (rc, "\n".join(r.lines[-40:]))
        # Every daemon it started is gone: the ports are free again.
        for p in range(r.base, r.base + 5):
            s = socket.socket()
            assert s.connect_ex(("127.0.0.1", p)) != 0, "port %d still served" % p
            s.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_no_model_no_server_one_block_and_the_stack_says_it_too(run):
    llm_url = "http://127.0.0.1:%d" % closed_port()
    r = run({"VOXLINE_LLM_URL": llm_url})
    r.wait_for("NO LANGUAGE MODEL")
    r.wait_for("^=+$")
    time.sleep(0.3)
    block = r.block()
    # One block, not JSON log lines, with the exact commands.
    assert not any(l.startswith("{") for l in block.splitlines()), block
    for words in ("NO LANGUAGE MODEL", r.page, "no models/*.gguf", llm_url,
                  "make models && make run",
                  "VOXLINE_LLM_URL=http://127.0.0.1:8080 make run",
                  "llama.cpp", "Ollama", "vLLM"):
        assert words in block, (words, block)
    assert sum("NO LANGUAGE MODEL" in l for l in r.lines) == 1

    # The page's source: the orchestrator's /healthz, degraded with the hint.
    deadline = time.time() + 20
    while True:
        code, body = get(r.page + "/healthz")
        h = json.loads(body)
        # Once every daemon listens, the LLM's is the one stage down.
        if "make models" in h.get("stages", {}).get("llm", {}).get("hint", "") or \
                time.time() > deadline:
            break
        time.sleep(0.3)
    assert code == 200 and h["status"] == "degraded", h
    assert h["stages"]["llm"]["status"] == "unavailable", h
    assert "make models" in h["stages"]["llm"]["hint"], h
    assert "VOXLINE_LLM_URL" in h["stages"]["llm"]["hint"], h
    # A turn: 502 naming the LLM and what to do.
    code, body = post_json(r.page + "/chat", {"text": "hello"})
    err = json.loads(body)["error"]
    assert code == 502 and err["message"].startswith("llm: "), (code, err)
    assert "make models" in err["message"], err


def test_with_a_server_the_block_says_where_the_page_is(run):
    u = LlmUpstream()
    try:
        r = run({"VOXLINE_LLM_URL": u.url})
        r.wait_for("voxline is running: open")
        r.wait_for("^=+$")
        time.sleep(0.3)
        block = r.block()
        assert "open %s in a browser" % r.page in block, block
        assert u.url in block and "NO LANGUAGE MODEL" not in "\n".join(r.lines)
        deadline = time.time() + 20
        while json.loads(get(r.page + "/healthz")[1])["status"] != "ok":
            assert time.time() < deadline, get(r.page + "/healthz")
            time.sleep(0.3)
        code, body = post_json(r.page + "/chat", {"text": "hello there"})
        assert code == 200 and json.loads(body)["reply"], body
    finally:
        r.stop()
        u.stop()


# ---- make models ------------------------------------------------------------

class Files(http.server.BaseHTTPRequestHandler):
    """Serves self.server.files {path: bytes} with byte ranges (206, 416)
    and extra headers self.server.headers {path: {name: value}}."""

    def do_HEAD(self):
        self._go(False)

    def do_GET(self):
        self._go(True)

    def _go(self, body):
        data = self.server.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if m and int(m.group(1)) >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % len(data))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1,
                                                                  len(data)))
            data = data[start:]
            self.server.resumed.append(start)
        else:
            self.send_response(200)
        for k, v in self.server.headers.get(self.path, {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def files():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    srv.files, srv.headers, srv.resumed = {}, {}, []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = "http://127.0.0.1:%d" % srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()


MODEL = bytes((i * 7919 + (i >> 8)) & 0xFF for i in range(600_000))
SHA = hashlib.sha256(MODEL).hexdigest()


def fetch(url, dest, sha="", make=False):
    if make:
        argv = ["make", "-s", "-C", ROOT, "--no-print-directory", "models",
                "MODEL_URL=" + url, "MODEL_FILE=" + str(dest), "MODEL_SHA256=" + sha,
                # its second fetch (the Whisper model) to the same loopback file
                "WHISPER_MODEL_URL=" + url, "WHISPER_MODEL_FILE=" + str(dest),
                "WHISPER_MODEL_SHA256=" + sha]
    else:
        argv = ["sh", FETCH, url, str(dest), sha]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_models_download_verified_from_sha256_file_via_make(files, tmp_path):
    files.files["/m.gguf"] = MODEL
    files.files["/m.gguf.sha256"] = ("%s  m.gguf\n" % SHA).encode()
    dest = tmp_path / "models" / "m.gguf"
    p = fetch(files.url + "/m.gguf", dest, make=True)
    assert p.returncode == 0, p.stderr
    assert dest.read_bytes() == MODEL
    assert not (tmp_path / "models" / "m.gguf.part").exists()
    assert "100.0%" in p.stderr and "checksum from" in p.stderr, p.stderr
    # Again: nothing to do.
    p = fetch(files.url + "/m.gguf", dest)
    assert p.returncode == 0 and "already there" in p.stderr, p.stderr


def test_models_resume_a_partial_download(files, tmp_path):
    files.files["/m.gguf"] = MODEL
    dest = tmp_path / "m.gguf"
    (tmp_path / "m.gguf.part").write_bytes(MODEL[:250_000])
    p = fetch(files.url + "/m.gguf", dest, SHA)
    assert p.returncode == 0, p.stderr
    assert files.resumed == [250_000], files.resumed
    assert dest.read_bytes() == MODEL and "resuming" in p.stderr


def test_models_checksum_from_x_linked_etag(files, tmp_path):
    # Hugging Face: the LFS object's sha256 in X-Linked-Etag, no .sha256 file.
    files.files["/m.gguf"] = MODEL
    files.headers["/m.gguf"] = {"X-Linked-Etag": '"%s"' % SHA}
    dest = tmp_path / "m.gguf"
    p = fetch(files.url + "/m.gguf", dest)
    assert p.returncode == 0, p.stderr
    assert "X-Linked-Etag" in p.stderr and dest.read_bytes() == MODEL


def test_models_bad_checksum_leaves_nothing(files, tmp_path):
    files.files["/m.gguf"] = MODEL
    dest = tmp_path / "m.gguf"
    p = fetch(files.url + "/m.gguf", dest, "0" * 64)
    assert p.returncode == 1, p.stderr
    assert "checksum mismatch" in p.stderr and SHA in p.stderr, p.stderr
    assert not dest.exists() and not (tmp_path / "m.gguf.part").exists()
    # A complete but corrupt part (a resume answers 416): removed too.
    (tmp_path / "m.gguf.part").write_bytes(MODEL[:-1] + bytes([MODEL[-1] ^ 0xFF]))
    p = fetch(files.url + "/m.gguf", dest, SHA)
    assert p.returncode == 1 and "corrupt" in p.stderr, p.stderr
    assert not dest.exists() and not (tmp_path / "m.gguf.part").exists()


def test_models_no_checksum_known_refuses(files, tmp_path):
    files.files["/m.gguf"] = MODEL
    dest = tmp_path / "m.gguf"
    p = fetch(files.url + "/m.gguf", dest)
    assert p.returncode == 1 and "MODEL_SHA256" in p.stderr, p.stderr
    assert not dest.exists() and not (tmp_path / "m.gguf.part").exists()


def test_models_unreachable_says_so(tmp_path):
    dest = tmp_path / "models" / "m.gguf"
    url = "http://127.0.0.1:%d/m.gguf" % closed_port()
    p = fetch(url, dest, SHA, make=True)
    assert p.returncode != 0, p.stderr
    assert "cannot reach " + url in p.stderr, p.stderr
    assert "make models" in p.stderr
    assert not dest.exists() and not (tmp_path / "models" / "m.gguf.part").exists()


def test_on_a_terminal_run_offers_the_download_and_uses_the_model(files, tmp_path):
    """make run on a terminal with no model: it asks, `make models` runs
    there and then (progress bar, checksum), and the stack comes up on the
    downloaded file with the built-in engine."""
    import pty
    gguf = tmp_path / "src.gguf"
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(gguf)],
                   check=True, capture_output=True, timeout=120)
    data = gguf.read_bytes()
    files.files["/tiny.gguf"] = data
    files.files["/tiny.gguf.sha256"] = hashlib.sha256(data).hexdigest().encode()
    models = tmp_path / "models"
    base = free_base()
    env = dict(os.environ, MODEL_URL=files.url + "/tiny.gguf",
               MODEL_FILE=str(models / "tiny.gguf"), MODEL_SHA256="",
               # `make models` fetches the Whisper model too: the same file
               WHISPER_MODEL_URL=files.url + "/tiny.gguf",
               WHISPER_MODEL_FILE=str(models / "tiny.gguf"), WHISPER_MODEL_SHA256="",
               VOXLINE_LLM_URL="http://127.0.0.1:%d" % closed_port())
    for svc in ("VAD", "STT", "TTS", "LLM", "ORCHESTRATOR"):
        env["VOXLINE_%s_DRAIN_DELAY_S" % svc] = "0"
    master, slave = pty.openpty()
    p = subprocess.Popen([PYTHON, RUN, "--bin", BIN, "--models", str(models), "--port-base",
                          str(base), "--state", str(tmp_path / "state")],
                         stdin=slave, stdout=slave, stderr=slave, env=env,
                         cwd=str(tmp_path), start_new_session=True)
    os.close(slave)
    out = bytearray()

    def read_until(pat, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pat, out.decode("utf-8", "replace")):
                return
            r = os.read(master, 65536) if select_readable(master, 0.2) else b""
            out.extend(r)
        raise AssertionError("no %r; terminal:\n%s" % (pat, out.decode("utf-8", "replace")[-4000:]))

    try:
        read_until(r"\[y/N\]")
        os.write(master, b"y\n")
        read_until(r"voxline is running: open")
        read_until(r"Ctrl-C stops everything")
        text = out.decode("utf-8", "replace")
        assert "100.0%" in text and "ready (sha256" in text, text[-3000:]
        assert "built-in engine" in text and "tiny.gguf" in text, text[-3000:]
        assert "NO LANGUAGE MODEL" not in text
        assert (models / "tiny.gguf").read_bytes() == data
        code, body = get("http://127.0.0.1:%d/healthz" % (base + 4))
        assert code == 200 and json.loads(body)["engine"] == "gguf", body
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
        try:
            rc = p.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
        os.close(master)
    assert rc == 0, out.decode("utf-8", "replace")[-3000:]


def select_readable(fd, timeout):
    import select
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except OSError:
        return False
