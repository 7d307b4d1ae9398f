"""The NATS JetStream worker mode (--nats, common/vx_jobs.c, docs/jobs.md)
and the voxline-jobs pipeline tool, against a real `nats-server -js` that
each test starts on a free loopback port with its store in the test's temp
dir. The client side is tests/nats_client.py (the protocol, written here:
Debian has no python3-nats)."""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import BIN, TOOLS, Daemon
from fake_llm import LlmUpstream
from speech import SENTENCES, VOICE, read_wav, speak, wav_bytes, words

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from nats_client import Nats  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"
ACK_WAIT = ["--nats-ack-wait-s", "2"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NatsServer:
    """nats-server -js on loopback; restartable on the same port and store."""

    def __init__(self, tmp, max_payload=None):
        assert os.path.exists(NATS_SERVER), \
            "nats-server is missing: run `make deps` (Debian package nats-server)"
        self.port = free_port()
        self.store = str(tmp / "jetstream")
        self.conf = None
        if max_payload:
            self.conf = str(tmp / "nats.conf")
            with open(self.conf, "w") as f:
                f.write(f"max_payload: {max_payload}\n")
        self.log = str(tmp / "nats-server.log")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        argv = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", self.store]
        if self.conf:
            argv += ["-c", self.conf]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                nc = Nats(self.port, timeout=2)
                r = nc.js("INFO")
                nc.close()
                if "error" not in r:
                    return
            except (OSError, AssertionError, Exception):
                pass
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start:\n" + open(self.log).read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def nats(tmp_path):
    srv = NatsServer(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def client(nats):
    nc = Nats(nats.port)
    yield nc
    nc.close()


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    """Three test sentences as 16 kHz WAV bytes."""
    pcm = speak(SENTENCES[:3], str(tmp_path_factory.mktemp("speech")))
    return [(t, wav_bytes(pcm[t])) for t in SENTENCES[:3]]


@pytest.fixture
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


def send_job(nc, svc, request=None, audio=None, job_id=None, reply=None):
    """Publishes a job; returns (id, reply subject)."""
    job_id = job_id or f"t-{uuid.uuid4().hex[:12]}"
    job = {"id": job_id, "reply": reply or f"test.reply.{job_id}",
           "request": request or {}}
    if audio is not None:
        job["audio"] = audio
    ack = nc.js_publish(f"voxline.{svc}.jobs", json.dumps(job).encode(),
                        {"Nats-Msg-Id": job_id})
    assert ack["stream"] == f"VOXLINE_{svc.upper()}"
    return job_id, job["reply"]


def inline(wav):
    return {"base64": base64.b64encode(wav).decode(), "content_type": "audio/wav"}


def results(q, n, timeout):
    """n messages from q (decoded), waiting at most timeout in all."""
    out, end = [], time.time() + timeout
    while len(out) < n:
        left = end - time.time()
        assert left > 0, f"only {len(out)} of {n} results in {timeout} s: {out}"
        try:
            out.append(q.get(timeout=left).json())
        except Exception:
            pass
    return out


def one_result(nc, svc, timeout=20, **kw):
    job_id = kw.pop("job_id", None) or f"t-{uuid.uuid4().hex[:12]}"
    sid, q = nc.subscribe(f"test.reply.{job_id}")
    nc.flush()
    send_job(nc, svc, job_id=job_id, **kw)
    r = results(q, 1, timeout)[0]
    nc.unsubscribe(sid)
    assert r["id"] == job_id and r["service"] == svc
    return r


def metric(d, outcome, want=None):
    """voxline_jobs_total{outcome}; with want, waits a little for it (the
    count comes just after the answer is published)."""
    end = time.time() + 3
    while True:
        body = d.get("/metrics").body.decode()
        m = re.search(r'^voxline_jobs_total\{outcome="%s"\} (\d+)' % outcome,
                      body, re.M)
        n = int(m.group(1)) if m else 0
        if want is None or n == want or time.time() > end:
            return n
        time.sleep(0.05)


def worker_daemon(name, tmp_path, *args):
    """A daemon this test may kill -9 itself (not the fixture's)."""
    exe = os.path.join(BIN, "voxline-" + name)
    env = dict(os.environ)
    env[f"VOXLINE_{name.upper()}_DRAIN_DELAY_S"] = "0"
    d = Daemon([exe, "--port", "0", *map(str, args)],
               str(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.log"), env)
    d.wait_ready()
    return d


def wait_consumer(nc, svc, timeout=10):
    """Until the worker made its stream and consumer."""
    end = time.time() + timeout
    while time.time() < end:
        r = nc.js(f"CONSUMER.INFO.VOXLINE_{svc.upper()}.workers")
        if "error" not in r:
            return r
        time.sleep(0.05)
    raise AssertionError(f"no consumer for {svc}: {r}")


# ---- each service, one job ----

def test_each_service_answers_a_job_as_its_http_route(nats, client, start,
                                                       sentences, upstream):
    text, wav = sentences[0]
    stt = start("stt", "--nats", nats.url, *ACK_WAIT)
    tts = start("tts", "--nats", nats.url, *ACK_WAIT)
    vad = start("vad", "--nats", nats.url, *ACK_WAIT)
    llm = start("llm", "--url", upstream.url, "--nats", nats.url, *ACK_WAIT)
    for svc in ("stt", "tts", "vad", "llm"):
        wait_consumer(client, svc)

    r = one_result(client, "stt", audio=inline(wav), request={"language": "en"})
    assert r["status"] == "ok", r
    http = stt.post_file("/transcribe", wav).json()
    assert r["result"]["text"] == http["text"]
    assert set(words(r["result"]["text"])) & set(words(text)), r

    r = one_result(client, "tts", request={"text": "Hello from the queue.",
                                           "voice": VOICE})
    assert r["status"] == "ok", r
    audio = base64.b64decode(r["audio"]["base64"])
    rate, ch, pcm = read_wav(audio)
    assert (rate, ch) == (16000, 1) and len(pcm) > 8000
    assert r["result"]["duration_ms"] == len(pcm) * 1000 // rate
    http = tts.post_json("/synthesize", {"text": "Hello from the queue.",
                                         "voice": VOICE})
    assert len(http.body) == len(audio)    # the same engine call and encoder

    r = one_result(client, "vad", audio=inline(wav))
    assert r["status"] == "ok", r
    http = vad.post_file("/detect", wav).json()
    assert r["result"]["segments"] == http["segments"] and http["segments"]

    r = one_result(client, "llm", request={
        "messages": [{"role": "user", "content": "hello queue"}]})
    assert r["status"] == "ok", r
    assert r["result"]["message"]["content"] == "You said: hello queue."
    assert r["result"]["finish_reason"] == "stop"

    # A bad request is answered with its error, acked, not retried.
    r = one_result(client, "tts", request={"text": ""})
    assert r["status"] == "error" and r["error"]["code"] == "empty_text", r
    assert r["attempt"] == 1
    for d in (stt, tts, vad, llm):
        assert d.get("/healthz").status == 200      # HTTP keeps serving
        assert metric(d, "ok", 2 if d is tts else 1) >= 1
    assert metric(tts, "error", 1) == 1 and metric(tts, "retry") == 0


# ---- two workers, one queue ----

def test_two_workers_share_one_queue_each_job_answered_once(nats, client, start):
    a = start("tts", "--nats", nats.url, "--workers", "1", "--queue", "1", *ACK_WAIT)
    b = start("tts", "--nats", nats.url, "--workers", "1", "--queue", "1", *ACK_WAIT)
    wait_consumer(client, "tts")
    sid, q = client.subscribe("test.shared.>")
    client.flush()
    n = 16
    ids = {send_job(client, "tts", {"text": f"Job number {i} of the shared "
                                    "queue, a sentence long enough to take a "
                                    "little while to speak."},
                    job_id=f"shared-{i}", reply=f"test.shared.{i}")[0]
           for i in range(n)}
    got = results(q, n, 40)
    assert sorted(r["id"] for r in got) == sorted(ids)
    assert all(r["status"] == "ok" for r in got)
    workers = {r["worker"] for r in got}
    assert len(workers) == 2, workers
    end = time.time() + 3
    while metric(a, "ok") + metric(b, "ok") < n and time.time() < end:
        time.sleep(0.05)
    assert metric(a, "ok") + metric(b, "ok") == n
    time.sleep(0.5)
    assert q.empty()   # no second answer to any job


# ---- kill -9 mid-job ----

def test_worker_killed_mid_job_other_worker_answers_exactly_once(
        nats, client, upstream, start, tmp_path):
    a = worker_daemon("llm", tmp_path, "--url", upstream.url, "--nats", nats.url,
                      *ACK_WAIT)
    wait_consumer(client, "llm")
    job_id = "kill-" + uuid.uuid4().hex[:8]
    sid, q = client.subscribe(f"test.reply.{job_id}")
    client.flush()
    # "#slow": a token every 50 ms; 60 tokens = 3 s, longer than ack-wait (2 s),
    # so the surviving worker also has to keep it alive with +WPI.
    send_job(client, "llm", {"messages": [{"role": "user", "content": "go #slow"}],
                             "max_tokens": 60}, job_id=job_id)
    end = time.time() + 10
    while not upstream.requests() and time.time() < end:
        time.sleep(0.05)
    assert upstream.requests(), "worker A never started the job"
    b = start("llm", "--url", upstream.url, "--nats", nats.url, *ACK_WAIT)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(5)
    a.stop()
    got = results(q, 1, 20)
    assert got[0]["status"] == "ok", got
    assert got[0]["worker"].endswith(f":{b.proc.pid}")
    assert got[0]["attempt"] == 2
    assert got[0]["result"]["finish_reason"] == "length"
    time.sleep(2.5)      # past another ack-wait: no redelivery, no 2nd answer
    assert q.empty()
    assert metric(b, "ok", 1) == 1 and metric(b, "retry") == 0
    info = client.js("CONSUMER.INFO.VOXLINE_LLM.workers")
    assert info["num_ack_pending"] == 0 and info["num_pending"] == 0


# ---- poison ----

def test_poison_job_goes_to_the_dead_letter_subject(nats, client, upstream, start):
    llm = start("llm", "--url", upstream.url, "--nats", nats.url,
                "--nats-max-deliver", "2", *ACK_WAIT)
    wait_consumer(client, "llm")
    dsid, dead = client.subscribe("voxline.llm.dead")
    client.flush()
    # The upstream answers 500 every time: retried once, then dead.
    r = one_result(client, "llm", job_id="poison-1", request={
        "messages": [{"role": "user", "content": "boom #error500"}]})
    assert r["status"] == "error" and r["attempt"] == 2, r
    d = results(dead, 1, 10)[0]
    assert d["id"] == "poison-1" and d["attempt"] == 2
    assert d["error"]["status"] >= 500 and d["error"]["message"]
    assert d["job"]["request"]["messages"][0]["content"] == "boom #error500"
    assert len(upstream.requests()) == 2
    # Not even JSON: dead at once, nobody to answer.
    client.js_publish("voxline.llm.jobs", b"\x00 not a job")
    d = results(dead, 1, 10)[0]
    assert d["error"]["code"] == "bad_job" and d["attempt"] == 1
    assert metric(llm, "dead", 2) == 2 and metric(llm, "retry") == 1
    # The dead letters are kept in their own stream.
    info = client.js("STREAM.INFO.VOXLINE_LLM_DEAD")
    assert info["state"]["messages"] == 2


# ---- the NATS server restarts ----

def test_workers_reconnect_after_nats_server_restart(nats, client, start):
    tts = start("tts", "--nats", nats.url, *ACK_WAIT)
    wait_consumer(client, "tts")
    assert one_result(client, "tts", request={"text": "Before."})["status"] == "ok"
    client.close()
    nats.stop()
    assert tts.get("/healthz").status == 200     # HTTP does not care
    time.sleep(1)
    nats.start()
    nc = Nats(nats.port)
    try:
        r = one_result(nc, "tts", timeout=30, request={"text": "After the restart."})
        assert r["status"] == "ok", r
        assert tts.wait_log("reconnected"), tts.log()
    finally:
        nc.close()


# ---- audio through the object store ----

def test_large_audio_goes_through_the_object_store(start, tmp_path, sentences):
    srv = NatsServer(tmp_path, max_payload=64 * 1024)
    nc = Nats(srv.port)
    try:
        assert nc.info["max_payload"] == 64 * 1024
        stt = start("stt", "--nats", srv.url, *ACK_WAIT)
        tts = start("tts", "--nats", srv.url, *ACK_WAIT)
        wait_consumer(nc, "stt")
        wait_consumer(nc, "tts")
        text, wav = sentences[1]
        assert len(wav) > 64 * 1024
        nc.obj_ensure("voxline-audio")
        nc.obj_put("voxline-audio", "question-1.wav", wav)
        r = one_result(nc, "stt", audio={"object": "question-1.wav",
                                         "content_type": "audio/wav"})
        assert r["status"] == "ok", r
        assert r["result"]["text"] == stt.post_file("/transcribe", wav).json()["text"]
        # A long answer does not fit a message either: it comes back as an object.
        long_text = " ".join(SENTENCES)
        r = one_result(nc, "tts", request={"text": long_text})
        assert r["status"] == "ok" and "object" in r["audio"], r
        audio = nc.obj_get(r["audio"]["bucket"], r["audio"]["object"])
        assert len(audio) == len(tts.post_json("/synthesize",
                                               {"text": long_text}).body)
        assert audio[:4] == b"RIFF"
        # A missing object is the caller's error, not a retry.
        r = one_result(nc, "stt", audio={"object": "nope.wav"})
        assert r["status"] == "error" and r["error"]["code"] == "bad_audio", r
    finally:
        nc.close()
        srv.stop()


# ---- the pipeline tool ----

def test_voxline_jobs_answers_recordings_through_chained_jobs(
        nats, client, upstream, start, sentences, tmp_path):
    tool = os.path.join(TOOLS, "voxline-jobs")
    assert os.path.exists(tool), f"{tool} is not built (make all)"
    start("stt", "--nats", nats.url, *ACK_WAIT)
    start("stt", "--nats", nats.url, *ACK_WAIT)
    start("llm", "--url", upstream.url, "--nats", nats.url, *ACK_WAIT)
    start("tts", "--nats", nats.url, *ACK_WAIT)
    for svc in ("stt", "llm", "tts"):
        wait_consumer(client, svc)
    files = []
    for i, (_, wav) in enumerate(sentences):
        p = tmp_path / f"question{i}.wav"
        p.write_bytes(wav)
        files.append(str(p))
    out = tmp_path / "answers"
    proc = subprocess.run([tool, "--nats", nats.url, "--out", str(out),
                           "--timeout-s", "60", *files],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert len(lines) == 3
    for i, (text, _) in enumerate(sentences):
        rec = lines[i]
        assert rec["status"] == "ok", rec
        assert set(words(rec["question"])) & set(words(text)), rec
        assert rec["answer"] == f"You said: {rec['question']}."
        rate, ch, pcm = read_wav((out / f"question{i}.answer.wav").read_bytes())
        assert rate > 0 and len(pcm) > rate // 2
        txt = (out / f"question{i}.txt").read_text()
        assert txt == f"Q: {rec['question']}\nA: {rec['answer']}\n"
    # Every stage was a job: 3 of each, all acked.
    for svc in ("stt", "llm", "tts"):
        info = client.js(f"CONSUMER.INFO.VOXLINE_{svc.upper()}.workers")
        assert info["delivered"]["stream_seq"] == 3
        assert info["num_ack_pending"] == 0


# ---- SIGTERM ----

def test_sigterm_stops_fetching_finishes_the_job_in_hand_then_exits(
        nats, client, upstream, tmp_path):
    w = worker_daemon("llm", tmp_path, "--url", upstream.url, "--nats", nats.url,
                      *ACK_WAIT)
    wait_consumer(client, "llm")
    sid, q = client.subscribe("test.term.>")
    client.flush()
    send_job(client, "llm", {"messages": [{"role": "user", "content": "a #slow"}],
                             "max_tokens": 40}, job_id="term-1",
             reply="test.term.1")
    end = time.time() + 10
    while not upstream.requests() and time.time() < end:
        time.sleep(0.05)
    w.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # Sent after SIGTERM: this worker must leave it in the queue.
    send_job(client, "llm", {"messages": [{"role": "user", "content": "later"}]},
             job_id="term-2", reply="test.term.2")
    assert w.proc.wait(15) == 0, w.log()[-2000:]
    w.stop()
    got = results(q, 1, 5)
    assert got[0]["id"] == "term-1" and got[0]["status"] == "ok", got
    assert "term-2" not in [r["body"]["messages"][0]["content"]
                            for r in upstream.requests()]
    time.sleep(0.5)
    assert q.empty()
    # term-2 waits for another worker: handed back at once (NAK), or, when
    # it reached a pull the worker made before SIGTERM but no longer read,
    # after ack-wait.
    w2 = worker_daemon("llm", tmp_path, "--url", upstream.url, "--nats",
                       nats.url, *ACK_WAIT)
    try:
        got = results(q, 1, 10)
        assert got[0]["id"] == "term-2" and got[0]["status"] == "ok", got
        assert got[0]["worker"].endswith(f":{w2.proc.pid}")
    finally:
        assert w2.stop() == 0
