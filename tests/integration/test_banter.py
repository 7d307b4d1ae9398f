"""voxline-banter end to end: a real `nats-server -js` (loopback, random
port, store in a temp dir) and the real vad, stt, tts, llm and orchestrator
daemons, the LLM being voxline-llm's openai engine on tests/llm_upstream.py
(which answers "You said: <last user message>.", so every reply carries the
line the other bot sent it through NATS).

Checks: 6 turns alternate personas in the text, each one's audio lies in its
bot's channel of the stereo WAV where the text says it started, non-silent,
played to its end before the next one starts, the other channel silent
meanwhile; each bot is its own orchestrator conversation with its own system
prompt and voice; Ctrl-C mid-run leaves both files complete; --wait-playback
waits for the player's done event on NATS; the orchestrator or NATS down is
a clear error (exit 3) that says what to start."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave

import numpy as np
import pytest

from conftest import BIN, Daemon
from fake_llm import LlmUpstream

BANTER = os.path.join(BIN, "voxline-banter")
LINE = re.compile(r"^\[\s*([0-9.]+)\] ([A-Za-z0-9_-]+): (.*)$")
PROMPTS = {"alice": "You are Alice, a cheerful gardener.",
           "bob": "You are Bob, a grumpy astronomer."}
VOICES = {"alice": "slt", "bob": "awb"}
# Replies are cut at 6 word tokens (the orchestrator's --max-tokens), so the
# echoed lines stop growing after the third turn: shorter speech, same checks.
MAX_TOKENS = 6


def echo(line):
    """What the fake LLM answers to line, cut at MAX_TOKENS words."""
    return " ".join(f"You said: {line}.".split(" ")[:MAX_TOKENS])


def last_user_lines(upstream):
    """The last user message of every LLM request, in order."""
    return [next(m["content"] for m in reversed(q["body"]["messages"])
                 if m["role"] == "user") for q in upstream.requests()]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NatsServer:
    """nats-server -js on 127.0.0.1, port chosen by the server (-p -1)."""

    def __init__(self, store):
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", store],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        pat = re.compile(rb"Listening for client connections on 127\.0\.0\.1:(\d+)")
        deadline = time.time() + 20
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = pat.search(line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("nats-server did not start (make deps installs it)")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr],
                         daemon=True).start()
        self.url = f"nats://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Stack:
    """The five daemons, started once for the module."""

    def __init__(self, tmp, llm_url):
        self.daemons = []
        env = dict(os.environ)
        for svc in ("vad", "stt", "tts", "llm", "orchestrator"):
            env[f"VOXLINE_{svc.upper()}_DRAIN_DELAY_S"] = "0"

        def start(name, *args):
            argv = [os.path.join(BIN, "voxline-" + name), "--port", "0", *args]
            d = Daemon(argv, os.path.join(tmp, name + ".log"), env)
            self.daemons.append(d)
            d.wait_ready()
            return d

        self.start = start
        vad, stt, tts = start("vad"), start("stt"), start("tts")
        llm = start("llm", "--engine", "openai", "--url", llm_url)
        self.stage_args = ["--vad-url", vad.url, "--stt-url", stt.url,
                           "--tts-url", tts.url, "--llm-url", llm.url,
                           "--stage-timeout-s", "20", "--max-tokens", str(MAX_TOKENS)]
        self.orch = start("orchestrator", *self.stage_args,
                          "--db", os.path.join(tmp, "o.db"))

    def stop(self):
        bad = []
        for d in reversed(self.daemons):
            if getattr(d, "killed", False):
                d.stop()
                continue
            alive = d.alive()
            rc = d.stop()
            if rc != 0 or not alive:
                bad.append(f"{d.argv[0]} exited {rc}:\n{d.log()[-2000:]}")
        return bad


@pytest.fixture(scope="module")
def world():
    tmp = tempfile.mkdtemp(prefix="banter-")
    upstream = LlmUpstream()
    nats = NatsServer(os.path.join(tmp, "js"))
    stack = None
    try:
        stack = Stack(tmp, upstream.url)
        yield stack.orch, nats, upstream, stack
    finally:
        bad = stack.stop() if stack else []
        nats.stop()
        upstream.stop()
    assert not bad, "\n".join(bad)


def banter_argv(orch_url, nats_url, out, *args):
    return [BANTER, "--orchestrator", orch_url, "--nats", nats_url,
            "--out-text", str(out / "banter.txt"), "--out-wav", str(out / "banter.wav"),
            "--a-prompt", PROMPTS["alice"], "--b-prompt", PROMPTS["bob"],
            "--a-voice", VOICES["alice"], "--b-voice", VOICES["bob"], *map(str, args)]


def run_banter(world, out, *args, timeout=50):
    orch, nats, _, _ = world
    return subprocess.run(banter_argv(orch.url, nats.url, out, *args),
                          capture_output=True, text=True, timeout=timeout)


def read_text(path):
    """(header lines, [(start_s, name, text)], footer line or None)."""
    head, turns, foot = [], [], None
    with open(path) as f:
        for line in f.read().splitlines():
            if line.startswith("# end:"):
                foot = line
            elif line.startswith("#"):
                head.append(line)
            else:
                m = LINE.match(line)
                assert m, f"not a turn line: {line!r}"
                turns.append((float(m.group(1)), m.group(2), m.group(3)))
    return head, turns, foot


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        rate, n = w.getframerate(), w.getnframes()
        data = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, 2)
    assert len(data) == n, "the WAV's header and its data disagree"
    assert os.path.getsize(path) == 44 + n * 4, "a WAV with a header of 44 bytes"
    return rate, data


def check_turns_in_channels(rate, data, turns):
    """Each turn: its bot's channel has speech from its start (within 50 ms)
    until at most the next turn's start, the other channel is silent then.
    A turn marked [cut short] (Ctrl-C while it played) may hold any part of
    its audio, none included. Returns each turn's audio length in seconds."""
    lengths = []
    for k, (start, name, text) in enumerate(turns):
        ch = 0 if name == "alice" else 1
        a = int(start * rate)
        b = int(turns[k + 1][0] * rate) if k + 1 < len(turns) else len(data)
        mine, other = data[a:b, ch].astype(np.int64), data[a:b, 1 - ch]
        assert not other.any(), f"turn {k + 1} ({name}): the other channel is not silent"
        nz = np.flatnonzero(mine)
        if text.endswith("[cut short]"):
            assert k == len(turns) - 1, "only the last turn can be cut short"
            lengths.append((nz[-1] + 1) / rate if len(nz) else 0.0)
            continue
        assert len(nz), f"turn {k + 1} ({name}): no audio in its channel"
        assert nz[0] < 0.05 * rate, f"turn {k + 1}: audio starts {nz[0] / rate:.3f} s late"
        length = (nz[-1] + 1) / rate
        rms = float(np.sqrt(np.mean(mine[:nz[-1] + 1] ** 2)))
        assert rms > 300, f"turn {k + 1} ({name}): too quiet to be speech (rms {rms:.0f})"
        assert length > 0.5, f"turn {k + 1}: only {length:.2f} s of audio"
        lengths.append(length)
    return lengths


def test_six_turns_alternate_with_audio_in_each_bots_channel(world, tmp_path):
    orch, nats, upstream, _ = world
    upstream.reset()
    t = time.time()
    r = run_banter(world, tmp_path, "--turns", 6, "--first-line", "Hi.")
    took = time.time() - t
    assert r.returncode == 0, r.stderr
    head, turns, foot = read_text(tmp_path / "banter.txt")
    assert [n for _, n, _ in turns] == ["alice", "bob"] * 3, turns
    # Each bot's LLM request carries the line the other bot sent it through
    # NATS (the opening for the first), and its reply is the echo of it.
    lines = ["Hi."] + [t for _, _, t in turns[:-1]]
    assert last_user_lines(upstream) == lines
    for (_, name, text), line in zip(turns, lines):
        assert text == echo(line), (name, text, line)
    starts = [s for s, _, _ in turns]
    assert starts == sorted(starts) and starts[0] > 0
    assert foot and "6 turns" in foot, foot
    assert "# opening line, to alice: Hi." in head

    rate, data = read_wav(tmp_path / "banter.wav")
    assert rate == 16000
    lengths = check_turns_in_channels(rate, data, turns)
    # Played to its end before the next bot spoke (real-time pacing).
    for k in range(5):
        assert starts[k] + lengths[k] <= starts[k + 1] + 0.02, (k, starts, lengths)
    total = len(data) / rate
    assert abs(total - (starts[-1] + lengths[-1])) < 0.3, (total, starts, lengths)
    assert total >= sum(lengths) - 0.01

    # Each bot is its own conversation, with its own prompt and voice.
    convs = dict(re.findall(r"^# (\w+): voice \S+, \w+ channel, subject \S+, "
                            r"conversation (\S+)$", "\n".join(head), re.M))
    assert set(convs) == {"alice", "bob"}, head
    for name, cid in convs.items():
        c = orch.get(f"/conversations/{cid}").json()
        assert json.dumps(c).count("You said:") >= 3, c
        assert PROMPTS[name] in json.dumps(c) and VOICES[name] in json.dumps(c), c
    systems = [next(m["content"] for m in q["body"]["messages"] if m["role"] == "system")
               for q in upstream.requests()]
    assert systems == [PROMPTS["alice"], PROMPTS["bob"]] * 3, systems
    assert "6 turns" in r.stderr and "latency" in r.stderr, r.stderr
    print(f"\nbanter: 6 turns in {took:.1f} s, {total:.1f} s recorded; {r.stderr.strip()}")


@pytest.mark.parametrize("mode", [[], ["--stream"]], ids=["post", "stream"])
def test_ctrl_c_mid_run_leaves_complete_files(world, tmp_path, mode):
    orch, nats, _, _ = world
    p = subprocess.Popen(banter_argv(orch.url, nats.url, tmp_path, "--turns", 40,
                                     "--first-line", "Go on.", *mode),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    text = tmp_path / "banter.txt"
    deadline = time.time() + 30
    try:
        while time.time() < deadline:   # into the second turn's playback
            if p.poll() is not None:
                pytest.fail(f"voxline-banter exited {p.returncode}: {p.stderr.read()}")
            if text.exists() and sum(1 for ln in text.read_text().splitlines()
                                     if ln.startswith("[")) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no second turn within 30 s")
        time.sleep(0.3)
        t = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        stop_s = time.time() - t
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert stop_s < 5, f"took {stop_s:.1f} s to stop"
    head, turns, foot = read_text(text)
    assert foot and "interrupted" in foot, foot
    assert 2 <= len(turns) < 40
    assert [n for _, n, _ in turns] == (["alice", "bob"] * 20)[:len(turns)]
    rate, data = read_wav(tmp_path / "banter.wav")
    check_turns_in_channels(rate, data, turns)
    assert len(data) / rate >= turns[-1][0]
    assert not (tmp_path / "banter.wav.tmp").exists()
    print(f"\nbanter: stopped {stop_s * 1000:.0f} ms after SIGINT with {len(turns)} turns")


class NatsPlayer(threading.Thread):
    """A tiny NATS client (the text protocol over a socket): subscribes to
    voxline.banter.*.play, and answers each WAV on its reply subject after
    the WAV's duration plus `extra` seconds, as a player would."""

    def __init__(self, port, extra):
        super().__init__(daemon=True)
        self.extra = extra
        self.got = []          # (subject, reply subject, frames, rate, channels, t)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rb")
        assert self.f.readline().startswith(b"INFO ")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                          b"SUB voxline.banter.*.play 1\r\nPING\r\n")
        assert self.f.readline() == b"PONG\r\n"
        self.lock = threading.Lock()

    def run(self):
        try:
            while True:
                line = self.f.readline()
                if not line:
                    return
                if line.startswith(b"PING"):
                    with self.lock:
                        self.sock.sendall(b"PONG\r\n")
                    continue
                if not line.startswith(b"MSG "):
                    continue
                parts = line.split()
                subj, reply, n = parts[1].decode(), parts[3].decode(), int(parts[-1])
                payload = self.f.read(n + 2)[:n]
                with wave.open(__import__("io").BytesIO(payload)) as w:
                    info = (w.getnframes(), w.getframerate(), w.getnchannels())
                self.got.append((subj, reply, *info, time.time()))
                threading.Timer(info[0] / info[1] + self.extra, self.done, [reply]).start()
        except OSError:
            return

    def done(self, reply):
        with self.lock:
            try:
                self.sock.sendall(f"PUB {reply} 4\r\ndone\r\n".encode())
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_wait_playback_waits_for_the_players_done_event(world, tmp_path):
    orch, nats, _, _ = world
    player = NatsPlayer(nats.port, extra=1.0)
    player.start()
    try:
        r = run_banter(world, tmp_path, "--turns", 2, "--wait-playback",
                       "--playback-timeout-s", 20, "--first-line", "Ready?")
    finally:
        player.close()
    assert r.returncode == 0, r.stderr
    assert "no playback-done" not in r.stderr, r.stderr
    _, turns, _ = read_text(tmp_path / "banter.txt")
    assert [n for _, n, _ in turns] == ["alice", "bob"]
    assert [(g[0], g[1]) for g in player.got] == [
        ("voxline.banter.alice.play", "voxline.banter.alice.played.1"),
        ("voxline.banter.bob.play", "voxline.banter.bob.played.2")], player.got
    frames, rate, channels = player.got[0][2:5]
    assert channels == 1 and rate == 16000 and frames > 0.5 * rate
    # Bob spoke only after the player said alice's line had played (its
    # duration + 1 s), not when its duration had passed.
    assert turns[1][0] - turns[0][0] >= frames / rate + 1.0 - 0.05, (turns, frames)
    wav_rate, data = read_wav(tmp_path / "banter.wav")
    check_turns_in_channels(wav_rate, data, turns)


def test_orchestrator_down_is_a_clear_error(world, tmp_path):
    _, nats, _, _ = world
    r = subprocess.run(banter_argv(f"http://127.0.0.1:{closed_port()}", nats.url, tmp_path),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r
    assert "cannot reach voxline-orchestrator" in r.stderr and "make run" in r.stderr, r.stderr
    assert not (tmp_path / "banter.txt").exists() and not (tmp_path / "banter.wav").exists()


def test_nats_down_is_a_clear_error(world, tmp_path):
    orch, _, _, _ = world
    r = subprocess.run(banter_argv(orch.url, f"nats://127.0.0.1:{closed_port()}", tmp_path),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r
    assert "cannot reach NATS" in r.stderr and "nats-server" in r.stderr, r.stderr
    assert not (tmp_path / "banter.txt").exists()


def test_orchestrator_gone_mid_run_is_a_clear_error_with_complete_files(world, tmp_path):
    """A second orchestrator (same stages), killed -9 after the first turn;
    the personas come from a --personas file."""
    _, nats, _, stack = world
    orch = stack.start("orchestrator", *stack.stage_args, "--db", str(tmp_path / "o2.db"))
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps([
        {"name": "alice", "voice": "rms", "system_prompt": "You are Alice the second."},
        {"name": "bob", "voice": "kal", "system_prompt": "You are Bob the second."}]))
    p = subprocess.Popen(banter_argv(orch.url, nats.url, tmp_path, "--turns", 20,
                                     "--personas", personas, "--first-line", "Go."),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    text = tmp_path / "banter.txt"
    try:
        deadline = time.time() + 30
        while not (text.exists() and "] alice: " in text.read_text()):
            assert time.time() < deadline and p.poll() is None, "no first turn"
            time.sleep(0.05)
        orch.killed = True
        orch.proc.kill()
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 3, err
    assert f"cannot reach voxline-orchestrator at {orch.url}" in err and "make run" in err, err
    head, turns, foot = read_text(text)
    assert "# alice: voice rms, left channel" in "\n".join(head), head
    assert foot and "failed" in foot, foot
    assert 1 <= len(turns) < 20
    rate, data = read_wav(tmp_path / "banter.wav")
    check_turns_in_channels(rate, data, turns)


def test_stream_mode_talks_on_ws_chat_paced_by_the_orchestrator(world, tmp_path):
    """--stream: each bot keeps one /ws/chat socket; the reply's audio is
    placed where the orchestrator started it, and the turn ends when the
    orchestrator says it has played."""
    orch, nats, upstream, _ = world
    upstream.reset()
    r = run_banter(world, tmp_path, "--turns", 3, "--stream", "--first-line", "Hey.")
    assert r.returncode == 0, r.stderr
    head, turns, foot = read_text(tmp_path / "banter.txt")
    assert [n for _, n, _ in turns] == ["alice", "bob", "alice"], turns
    lines = ["Hey."] + [t for _, _, t in turns[:-1]]
    assert last_user_lines(upstream) == lines
    for (_, name, text), line in zip(turns, lines):
        assert text == echo(line), (name, text, line)
    assert foot and "3 turns" in foot
    rate, data = read_wav(tmp_path / "banter.wav")
    lengths = check_turns_in_channels(rate, data, turns)
    starts = [s for s, _, _ in turns]
    for k in range(2):
        assert starts[k] + lengths[k] <= starts[k + 1] + 0.02, (starts, lengths)
    systems = [next(m["content"] for m in q["body"]["messages"] if m["role"] == "system")
               for q in upstream.requests()]
    assert systems == [PROMPTS["alice"], PROMPTS["bob"], PROMPTS["alice"]], systems
    # alice's second turn is in the same conversation as her first.
    assert len(upstream.requests()[2]["body"]["messages"]) >= 4
    print(f"\nbanter --stream: {r.stderr.strip()}")
