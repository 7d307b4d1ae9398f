"""Fixtures for the web page's browser tests: the real stack (voxline-vad,
-stt, -tts, -llm on tests/llm_upstream.py, the orchestrator) started as
tests/integration/conftest.py does (its `start` fixture is reused), and one
headless chromium per test, driven through tests/browser/driver.mjs, with a
fake microphone playing a WAV that flite makes at test time.

    def test_x(stack, browser):
        orch = stack.orch()
        page = browser.open(orch)          # the page, connected
        page.click("#mic"); page.wait("voxline.events.some(e => e.type === 'transcript')")
"""
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import time
import wave

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
PYTHON = "/usr/bin/python3"
CHROMIUM = os.environ.get("VOXLINE_CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.path.join(ROOT, "tests", "node_modules")
QUESTION = "what is the weather like in paris today"

# tests/integration/conftest.py under another module name (this file is
# "conftest"); fake_llm.py imports PYTHON and ROOT from "conftest": here.
_spec = importlib.util.spec_from_file_location(
    "integration_conftest", os.path.join(INTEGRATION, "conftest.py"))
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)
sys.path.append(INTEGRATION)
from fake_llm import LlmUpstream  # noqa: E402

start = integration.start
BIN = integration.BIN


def _need(ok, why):
    if not ok:
        pytest.fail(why + " (run `make deps`)", pytrace=False)


class Stack:
    """The four services and, on demand, orchestrators in front of them."""

    def __init__(self, start, upstream, tmp_path):
        self.start = start
        self.upstream = upstream
        self.tmp = tmp_path
        self.vad = start("vad")
        self.stt = start("stt")
        self.tts = start("tts")
        self.llm = start("llm", "--engine", "openai", "--url", upstream.url)
        self.db = str(tmp_path / "orch.db")

    def urls(self):
        return ["--vad-url", self.vad.url, "--stt-url", self.stt.url,
                "--tts-url", self.tts.url, "--llm-url", self.llm.url]

    def orch(self, *args, port=0):
        return self.start("orchestrator", *self.urls(), "--db", self.db,
                          "--health-interval-s", "1", "--port", str(port), *args)

    def restart(self, daemon, *args):
        """Stops a daemon and starts the same one on the same port."""
        port = daemon.port
        daemon.stop()
        name = os.path.basename(daemon.argv[0]).replace("voxline-", "")
        argv = daemon.argv[3:]   # past: exe --port 0
        if "--port" in argv:     # drop an earlier --port N
            i = argv.index("--port")
            del argv[i:i + 2]
        return self.start(name, *argv, "--port", str(port), *args)


@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


@pytest.fixture
def stack(start, upstream, tmp_path):
    upstream.reset()
    return Stack(start, upstream, tmp_path)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory):
    """QUESTION said by flite: 0.5 s of silence, the words, 14 s of silence
    (chromium loops the file), 16 kHz mono PCM16."""
    _need(shutil.which("flite"), "flite is not installed")
    d = tmp_path_factory.mktemp("wav")
    raw, out = str(d / "raw.wav"), str(d / "speech.wav")
    subprocess.run(["flite", "-voice", "slt", "-t", QUESTION, "-o", raw], check=True)
    with wave.open(raw) as w:
        rate, width, ch = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    assert width == 2 and ch == 1, (width, ch)
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * (rate // 2) + frames + b"\0\0" * (rate * 14))
    return out


class Page:
    """One chromium with one page, through driver.mjs (JSON lines)."""

    def __init__(self, wav, profile, log_path, deny_mic=False):
        _need(os.access(CHROMIUM, os.X_OK), f"no chromium at {CHROMIUM}")
        _need(os.path.isdir(os.path.join(NODE_MODULES, "puppeteer-core")) and
              os.path.isdir(os.path.join(NODE_MODULES, "axe-core")),
              "puppeteer-core / axe-core missing in tests/node_modules (cd tests && npm install)")
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            ["node", os.path.join(HERE, "driver.mjs"), "--chromium", CHROMIUM,
             "--wav", wav, "--profile", profile] + (["--deny-mic", "yes"] if deny_mic else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.n = 0
        self.version = self._read(0, 60)
        self.base = None

    def _read(self, want, timeout):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"browser driver gave no answer in {timeout} s")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("browser driver exited: " + open(self.log.name).read()[-3000:])
            msg = json.loads(line)
            if msg.get("id") != want:
                continue
            if not msg["ok"]:
                raise AssertionError(msg["error"] + "\nconsole:\n" + "\n".join(msg.get("logs", [])))
            return msg["value"]

    def call(self, cmd, timeout=60, **kw):
        self.n += 1
        self.proc.stdin.write((json.dumps({"id": self.n, "cmd": cmd, **kw}) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(self.n, timeout)

    def goto(self, url):
        self.base = url.rstrip("/")
        return self.call("goto", url=url)

    def eval(self, js):
        return self.call("eval", js=js)

    def wait(self, js, timeout=30, why=None):
        """Waits until the JS expression is truthy; returns its value."""
        try:
            return self.call("wait", js=js, timeout_ms=int(timeout * 1000), timeout=timeout + 30)
        except AssertionError as e:
            state = self.eval("JSON.stringify({events: voxline.events.slice(-25), "
                              "log: [...document.querySelectorAll('#log li')].map(l => l.textContent), "
                              "conn: document.getElementById('conn').textContent, "
                              "banner: document.getElementById('banner').textContent})")
            raise AssertionError(f"waiting for {why or js}: {str(e)[:300]}\npage: {state}") from None

    def click(self, selector):
        return self.call("click", selector=selector)

    def type(self, selector, text):
        return self.call("type", selector=selector, text=text)

    def say(self, text):
        """Types a message and sends it with Enter."""
        self.type("#text", text)
        self.call("press", key="Enter")

    def select(self, selector, value):
        return self.eval(f"(() => {{ const s = document.querySelector({json.dumps(selector)}); "
                         f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); "
                         f"return s.value; }})()")

    def open(self, orch, sound_checked=True):
        """Loads the page from orch and waits until it is connected."""
        self.goto(orch.url + "/")
        if sound_checked:   # the sound check has its own test
            self.eval("localStorage.setItem('voxline.soundcheck', 'default')")
        self.wait("window.voxline && document.getElementById('conn').textContent === 'Connected'",
                  why="the page to connect")
        return self

    def events(self, type_):
        return self.eval(f"voxline.events.filter(e => e.type === {json.dumps(type_)})")

    def close(self):
        try:
            self.call("quit", timeout=15)
        except Exception:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def browser(speech_wav, tmp_path):
    p = Page(speech_wav, str(tmp_path / "profile"), str(tmp_path / "driver.log"))
    yield p
    p.close()


@pytest.fixture
def browser_mic_blocked(speech_wav, tmp_path):
    """A chromium that answers the microphone prompt with "block"."""
    p = Page(speech_wav, str(tmp_path / "profile"), str(tmp_path / "driver.log"), deny_mic=True)
    yield p
    p.close()
