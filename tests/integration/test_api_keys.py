"""--api-key covers WebSocket upgrades as it covers HTTP routes, on every
daemon: no key or a wrong one is answered 401 (JSON, WWW-Authenticate:
Bearer) before any handshake, the right one upgrades. A keyed stack works
end to end when the orchestrator has --upstream-api-key (its WebSocket
links and its GET /voices carry the key) and fails naming the stage when
it has not; voxline-client takes --api-key; the phone routes stay open
(a provider cannot send a key: Twilio's signature is their check)."""
import json
import os
import socket
import subprocess

import pytest

from conftest import BIN
from fake_llm import LlmUpstream

CLIENT = os.path.join(BIN, "voxline-client")
KEY = "stage-k3y"
ORCH_KEY = "orch-k3y"


@pytest.fixture(scope="module")
def upstream():
    u = LlmUpstream()
    yield u
    u.stop()


def refused(url, headers=None):
    """The HTTP status a WebSocket upgrade to url (ws://host:port/path) is
    refused with, its headers (lower-case names) and body; None when it
    upgrades (101)."""
    hostport, path = url[len("ws://"):].split("/", 1)
    host, port = hostport.rsplit(":", 1)
    req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n%s\r\n") % (
               path, hostport, "".join(h + "\r\n" for h in headers or []))
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        if status == 101:
            return None
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (l.split(":", 1) for l in lines[1:] if ":" in l)}
        want = int(hdrs.get("content-length", "0"))
        while len(body) < want:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        return status, hdrs, body


def keyed_stages(start, upstream):
    k = ("--api-key", KEY)
    return {
        "vad": start("vad", *k),
        "stt": start("stt", *k),
        "tts": start("tts", *k),
        "llm": start("llm", "--engine", "openai", "--url", upstream.url, *k),
    }


def orchestrator(start, tmp_path, st, *args):
    return start("orchestrator", "--vad-url", st["vad"].url,
                 "--stt-url", st["stt"].url, "--tts-url", st["tts"].url,
                 "--llm-url", st["llm"].url, "--db", str(tmp_path / "o.db"),
                 "--health-interval-s", "1", "--stage-timeout-s", "10", *args)


def test_every_service_websocket_needs_the_key(start, upstream):
    upstream.reset()
    st = keyed_stages(start, upstream)
    paths = {"vad": "/ws/detect", "stt": "/ws/transcribe",
             "tts": "/ws/synthesize", "llm": "/ws/generate"}
    for name, d in st.items():
        url = d.ws_url + paths[name]
        for hdr in ([], ["Authorization: Bearer wrong"], ["Authorization: " + KEY]):
            got = refused(url, hdr)
            assert got is not None, (name, hdr)
            status, headers, body = got
            assert status == 401, (name, hdr, status)
            assert headers.get("www-authenticate") == "Bearer", headers
            assert json.loads(body)["error"]["code"] == "unauthorized", body
        assert refused(url, ["Authorization: Bearer " + KEY]) is None, name
        assert refused(url, ["authorization: bearer " + KEY]) is None, name
        # health stays open, HTTP routes keep their check
        assert d.get("/healthz").status == 200
        assert d.get("/metrics").status == 200


def test_keyed_stack_needs_upstream_key(start, upstream, tmp_path):
    upstream.reset()
    st = keyed_stages(start, upstream)
    orch = orchestrator(start, tmp_path, st, "--api-key", ORCH_KEY,
                        "--upstream-api-key", KEY)
    auth = {"Authorization": "Bearer " + ORCH_KEY}
    r = orch.post_json("/chat", {"text": "hello there"}, headers=auth)
    assert r.status == 200, r.body
    assert r.json()["reply"], r.json()
    assert orch.get("/voices", headers=auth).status == 200
    assert orch.post_json("/chat", {"text": "hi"}).status == 401

    # the orchestrator's own /ws/chat: voxline-client with and without --api-key
    p = subprocess.run([CLIENT, "--url", orch.ws_url + "/ws/chat", "--text",
                        "hello", "--api-key", ORCH_KEY, "--quiet"],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([CLIENT, "--url", orch.ws_url + "/ws/chat", "--text",
                        "hello", "--quiet"], capture_output=True, text=True,
                       timeout=90)
    assert p.returncode != 0, p

    # phone routes are open: the provider cannot send a bearer key
    assert refused(orch.ws_url + "/ws/twilio") is None
    assert refused(orch.ws_url + "/ws/telnyx") is None
    r = orch.post("/twilio/voice", b"CallSid=CA1", "application/x-www-form-urlencoded")
    assert r.status == 200, r.body


def test_stage_key_missing_fails_naming_the_stage(start, upstream, tmp_path):
    upstream.reset()
    st = keyed_stages(start, upstream)
    orch = orchestrator(start, tmp_path, st)
    r = orch.post_json("/chat", {"text": "hello there"})
    assert r.status == 502, r.body
    assert r.json()["error"]["message"].startswith(("vad", "stt", "llm", "tts")), r.body
    assert orch.get("/voices").status == 401


def test_bad_upstream_key_is_refused_at_start(tmp_path):
    p = subprocess.run([os.path.join(BIN, "voxline-orchestrator"), "--port", "0",
                        "--upstream-api-key", "has space",
                        "--db", str(tmp_path / "o.db")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert "--upstream-api-key" in p.stderr, p.stderr
