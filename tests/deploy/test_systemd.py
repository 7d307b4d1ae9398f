"""voxline installed from its .deb under a real systemd (PID 1 in
systemd-nspawn), checked the way an operator would, with systemctl and curl
run inside the container:

  - every unit passes `systemd-analyze security --offline` at 2.5 or lower;
  - the package installs with `apt-get install ./voxline_*.deb`;
  - each daemon, the orchestrator included, starts from the shipped files
    alone, on the first request to its socket (socket activation);
  - `systemctl status` shows the daemon's STATUS= text;
  - the LLM unit serves a GGUF model named in an env file drop-in;
  - `systemctl stop` during a long request lets it finish with 200 (drain);
  - `systemctl kill -s KILL` is followed by a restart;
  - a frozen serving loop (--debug-freeze, then SIGUSR2) is restarted by
    the watchdog;
  - the sockets' address is the one setting of /etc/voxline/listen.conf;
  - `make install` to /usr/local gives units that work the same.

The rootfs (mmdebstrap minbase bookworm + systemd, dbus, curl and the
package's Depends; ~2 min, needs the Debian mirror) is cached under
build/nspawn/ by a hash of its package list; each run boots a copy of it,
which is always stopped and removed. Needs root.
"""
import array
import json
import math
import os
import random
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from systemd_util import ROOT, Fail, Machine, cached_rootfs, deb_depends, need_tools  # noqa: E402

BIN = os.environ.get("VOXLINE_BIN", os.path.join(ROOT, "build", "bin"))
BUILD = os.path.dirname(os.path.abspath(BIN))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
UNIT_DIR = os.path.join(ROOT, "deploy", "systemd")
MACHINE = "voxline-test-systemd"
DAEMONS = {"vad": 3001, "stt": 3002, "tts": 3003, "llm": 3004, "orchestrator": 3000}
MAX_EXPOSURE = 2.5
LONG_AUDIO_S = 15          # pocketsphinx: ~2 s on a quiet machine, 20-50 s at load 17
DRAIN_S = 120              # the test's drain budget: far above that


def fail_on(fn, *args):
    try:
        return fn(*args)
    except Fail as e:
        pytest.fail(str(e), pytrace=False)


def wait_for(what, pred, timeout=30, step=0.2):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def json_of(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}


def long_wav(path, seconds):
    """16 kHz mono PCM16: tone bursts in noise, enough for a long decode."""
    import wave
    sr = 16000
    rng = random.Random(1)
    samples = array.array("h")
    for i in range(sr * seconds):
        t = i / sr
        v = 0.05 * rng.gauss(0, 1)
        if int(t * 2) % 2 == 0:
            v += 0.3 * math.sin(2 * math.pi * (180 + 40 * int(t)) * t)
        samples.append(max(-32000, min(32000, int(v * 20000))))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(samples.tobytes())


# ---- fixtures -----------------------------------------------------------

def make_args():
    build = os.path.relpath(BUILD, ROOT) if BUILD.startswith(ROOT + os.sep) else BUILD
    return ["make", "-C", ROOT, "--no-print-directory", "BUILD=" + build]


@pytest.fixture(scope="module")
def deb():
    """The package, made by `make deb` for the build under test."""
    if os.geteuid() != 0:
        pytest.fail("test_systemd needs root (systemd-nspawn)", pytrace=False)
    fail_on(need_tools, "make", "dpkg-deb", "dpkg-shlibdeps", "systemd-analyze")
    r = subprocess.run(make_args() + ["deb"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, "make deb failed:\n" + r.stdout[-3000:] + r.stderr[-3000:]
    debs = sorted(f for f in os.listdir(BUILD) if re.match(r"voxline_.*\.deb$", f))
    assert debs, "make deb made no %s/voxline_*.deb" % BUILD
    return os.path.join(BUILD, debs[-1])


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("systemd-assets")
    model = d / "tiny.gguf"
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), str(model)],
                   check=True, capture_output=True, timeout=120)
    wav = d / "long.wav"
    long_wav(str(wav), LONG_AUDIO_S)
    return {"model": str(model), "wav": str(wav)}


@pytest.fixture(scope="module")
def box(deb, assets):
    t0 = time.time()
    rootfs = fail_on(cached_rootfs, deb_depends(deb))
    t1 = time.time()
    with Machine(rootfs, MACHINE) as m:
        fail_on(m.install_deb, deb)
        m.put(assets["model"], "/srv/voxline/tiny.gguf")
        m.put(assets["wav"], "/srv/voxline/long.wav")
        fail_on(m.boot)
        print("\nrootfs %.1f s, copy + install + boot %.1f s" % (t1 - t0, time.time() - t1))
        yield m
        failed = m.systemctl("--failed", "--plain", "--no-legend", check=False).stdout
        print("failed units at the end:", failed.strip() or "none")


def start_socket(m, name):
    m.systemctl("enable", "--now", "voxline-%s.socket" % name)


def restart_with_dropin(m, name, text):
    """Adds /etc/systemd/system/voxline-NAME.service.d/50-test.conf and
    restarts the service (daemon-reload first)."""
    m.write("/etc/systemd/system/voxline-%s.service.d/50-test.conf" % name, text)
    m.systemctl("daemon-reload")
    m.systemctl("restart", "voxline-%s.service" % name, timeout=120)
    wait_active(m, name)


def wait_active(m, name, timeout=60):
    wait_for("voxline-%s.service active" % name,
             lambda: m.show("voxline-%s.service" % name, "ActiveState")["ActiveState"] == "active",
             timeout)


def main_pid(m, name):
    return int(m.show("voxline-%s.service" % name, "MainPID")["MainPID"])


# ---- tests --------------------------------------------------------------

@pytest.mark.parametrize("unit", sorted("voxline-%s.service" % d for d in DAEMONS))
def test_unit_exposure_is_at_most_2_5(unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        os.path.join(UNIT_DIR, unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m, "systemd-analyze security said:\n" + r.stdout + r.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_package_installs_as_a_user_would(box, deb):
    st = box.run("dpkg-query", "-W", "-f=${Status} ${Version}", "voxline").stdout
    assert st.startswith("install ok installed"), st
    depends = deb_depends(deb)
    for pkg in ("pocketsphinx-en-us", "libmicrohttpd12", "libwebsockets17", "libflite1"):
        assert pkg in depends, depends
    conffiles = box.run("dpkg-query", "-W", "-f=${Conffiles}", "voxline").stdout
    for name in DAEMONS:
        assert "/etc/voxline/%s.env" % name in conffiles, conffiles
    # Nothing made by hand: no voxline user, no state dir before a start.
    assert box.run("getent", "passwd", "voxline", check=False).returncode != 0
    assert not os.path.exists(box.path("/var/lib/voxline"))
    for name in DAEMONS:
        box.run("test", "-x", "/usr/bin/voxline-" + name)
        box.systemctl("cat", "voxline-%s.service" % name)


def test_each_daemon_starts_on_the_first_request_to_its_socket(box):
    """Shipped files alone: no drop-in, the env files as installed. The
    orchestrator comes last: its health checks would wake the others."""
    for name in ["vad", "stt", "tts", "llm", "orchestrator"]:
        start_socket(box, name)
        svc = "voxline-%s.service" % name
        assert box.show(svc, "ActiveState")["ActiveState"] == "inactive", \
            "%s runs before any request" % svc
        status, body = box.curl("http://127.0.0.1:%d/livez" % DAEMONS[name])
        assert status == 200, "%s: %s %s\n%s" % (name, status, body, box.journal(svc)[-3000:])
        wait_active(box, name)
        props = box.show(svc, "TriggeredBy", "NRestarts", "Type")
        assert "voxline-%s.socket" % name in props["TriggeredBy"], props
        assert props["Type"] == "notify" and props["NRestarts"] == "0", props
    for name in ["vad", "stt", "tts", "orchestrator"]:
        status, body = box.curl("http://127.0.0.1:%d/healthz" % DAEMONS[name])
        assert status == 200, "%s /healthz: %s %s" % (name, status, body)
    # The LLM without a model or URL runs and says why it is not ready.
    status, body = box.curl("http://127.0.0.1:3004/healthz")
    assert status == 503 and "unavailable" in body, (status, body)
    # The orchestrator's page and its history under the state directory.
    status, body = box.curl("http://127.0.0.1:3000/")
    assert status == 200 and "<html" in body.lower(), (status, body[:200])
    box.run("test", "-s", "/var/lib/private/voxline/voxline.db")
    # One state directory, one user: all five run as the same dynamic user
    # that owns it (else each start would chown it from under the others).
    uids = {}
    for name in DAEMONS:
        pid = main_pid(box, name)
        status = box.run("cat", "/proc/%d/status" % pid).stdout
        uids[name] = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    owner = box.run("stat", "-c", "%u", "/var/lib/private/voxline/",
                    "/var/lib/private/voxline/voxline.db").stdout.split()
    assert len(set(uids.values())) == 1 and set(owner) == set(uids.values()), (uids, owner)
    box.systemctl("restart", "voxline-llm.service")
    wait_active(box, "llm")
    assert box.curl("http://127.0.0.1:3000/healthz")[0] == 200
    owner2 = box.run("stat", "-c", "%u", "/var/lib/private/voxline/voxline.db").stdout.split()
    assert owner2 == owner[1:], (owner, owner2)
    # Quiet the orchestrator again, so its checks do not restart the
    # daemons the tests below stop.
    box.systemctl("stop", "voxline-orchestrator.socket", "voxline-orchestrator.service")


def test_status_shows_the_daemons_status_text(box):
    for name in ["vad", "stt", "tts", "llm"]:
        start_socket(box, name)
        box.curl("http://127.0.0.1:%d/livez" % DAEMONS[name])
        wait_active(box, name)
        svc = "voxline-%s.service" % name
        text = box.show(svc, "StatusText")["StatusText"]
        assert text, "%s sent no STATUS=" % svc
        out = box.systemctl("status", svc, check=False).stdout
        assert 'Status: "%s"' % text in out, out


def test_llm_serves_the_model_of_an_env_file_dropin(box):
    box.write("/etc/voxline/llm-test.env",
              "VOXLINE_LLM_MODEL=/srv/voxline/tiny.gguf\nVOXLINE_LLM_CTX=256\n")
    start_socket(box, "llm")
    restart_with_dropin(box, "llm", "[Service]\nEnvironmentFile=/etc/voxline/llm-test.env\n")
    wait_for("voxline-llm ready", lambda: box.curl("http://127.0.0.1:3004/healthz")[0] == 200)
    status, body = box.curl("http://127.0.0.1:3004/generate", "-H",
                            "Content-Type: application/json", "-d",
                            '{"messages":[{"role":"user","content":"hi"}],"max_tokens":8}')
    assert status == 200 and '"message"' in body, (status, body)


def test_a_spoken_turn_crosses_all_five_sandboxed_units(box):
    """Speech made by voxline-tts, sent to the orchestrator's POST /chat:
    VAD, STT, the LLM (the GGUF of the drop-in above), TTS and the history
    store all work inside their sandboxes (syscall filter, W^X, ...)."""
    for name in DAEMONS:
        start_socket(box, name)
    status, body = box.curl("http://127.0.0.1:3003/synthesize", "-o", "/tmp/question.wav",
                            "-H", "Content-Type: application/json",
                            "-d", '{"text":"What is the weather like today?"}')
    assert status == 200, (status, body)
    status, body = box.curl("http://127.0.0.1:3000/chat", "-F", "file=@/tmp/question.wav",
                            "-F", "conversation_id=systemd-1", timeout=120)
    journals = "".join(box.journal("voxline-%s.service" % n)[-1500:] for n in DAEMONS)
    assert status == 200, (status, body[:500], journals)
    j = json.loads(body)
    assert "weather" in j["transcript"].lower(), j["transcript"]
    status, body = box.curl("http://127.0.0.1:3000/conversations/systemd-1")
    assert status == 200 and json.loads(body)["turns"][0]["content"] == j["transcript"], body
    box.systemctl("stop", "voxline-orchestrator.socket", "voxline-orchestrator.service")


def test_stop_during_a_long_request_lets_it_finish_with_200(box):
    """SIGTERM from `systemctl stop` starts the drain: the request in
    flight is answered, then the daemon exits cleanly."""
    start_socket(box, "stt")
    restart_with_dropin(box, "stt", "[Service]\nEnvironment=VOXLINE_STT_DRAIN_DELAY_S=1"
                        " VOXLINE_STT_DRAIN_S=%d\nTimeoutStopSec=%d\n" % (DRAIN_S, DRAIN_S + 30))
    pid = main_pid(box, "stt")
    req = box.popen("curl", "-sS", "-m", "120", "-w", "\n%{http_code}",
                    "-F", "file=@/srv/voxline/long.wav", "http://127.0.0.1:3002/transcribe")
    try:
        wait_for("the transcription in flight",
                 lambda: json_of(box.curl("http://127.0.0.1:3002/healthz")[1]).get("busy", 0) > 0,
                 20, 0.1)
        assert req.poll() is None, "the request ended before the stop: " + req.stdout.read()
        t0 = time.time()
        box.systemctl("stop", "voxline-stt.service", timeout=DRAIN_S + 60)
        stop_s = time.time() - t0
        out, err = req.communicate(timeout=60)
    finally:
        if req.poll() is None:
            req.kill()
            req.wait()
    body, _, code = out.rpartition("\n")
    journal = box.journal("voxline-stt.service")[-3000:]
    assert code == "200", "after stop: %r %r %r%s\n%s" % (
        code, body[:300], err, " (the machine is too slow: the request outlasted the"
        " %d s drain)" % DRAIN_S if "drain time is up" in journal else "", journal)
    assert '"text"' in body, body[:300]
    props = box.show("voxline-stt.service", "ActiveState", "Result", "ExecMainStatus",
                     "ExecMainPID")
    assert props["ExecMainPID"] == str(pid), props
    assert props["Result"] == "success" and props["ExecMainStatus"] == "0", (props, journal)
    assert stop_s < DRAIN_S + 5, "stop took %.1f s" % stop_s
    # The socket stayed: the next request starts the daemon again.
    assert box.curl("http://127.0.0.1:3002/livez")[0] == 200
    assert main_pid(box, "stt") not in (0, pid)


def test_kill_is_followed_by_a_restart(box):
    start_socket(box, "vad")
    box.curl("http://127.0.0.1:3001/livez")
    wait_active(box, "vad")
    pid = main_pid(box, "vad")
    before = int(box.show("voxline-vad.service", "NRestarts")["NRestarts"])
    box.systemctl("kill", "-s", "KILL", "voxline-vad.service")
    wait_for("a new voxline-vad", lambda: main_pid(box, "vad") not in (0, pid)
             and box.show("voxline-vad.service", "ActiveState")["ActiveState"] == "active")
    assert int(box.show("voxline-vad.service", "NRestarts")["NRestarts"]) == before + 1
    assert box.curl("http://127.0.0.1:3001/healthz")[0] == 200


def test_watchdog_restarts_a_frozen_loop(box):
    """--debug-freeze: SIGUSR2 freezes the loop that serves requests and
    pings the watchdog; systemd must notice within WatchdogSec and restart."""
    start_socket(box, "tts")
    restart_with_dropin(box, "tts", "[Service]\nWatchdogSec=3\n"
                        "Environment=VOXLINE_TTS_DEBUG_FREEZE=true\n")
    pid = main_pid(box, "tts")
    before = int(box.show("voxline-tts.service", "NRestarts")["NRestarts"])
    time.sleep(5)   # longer than WatchdogSec: the pings keep it alive
    assert main_pid(box, "tts") == pid, "restarted while serving:\n" + \
        box.journal("voxline-tts.service")[-3000:]
    box.systemctl("kill", "--kill-who=main", "-s", "USR2", "voxline-tts.service")
    wait_for("voxline-tts restarted", lambda: main_pid(box, "tts") not in (0, pid)
             and box.show("voxline-tts.service", "ActiveState")["ActiveState"] == "active", 30)
    journal = box.journal("voxline-tts.service")
    assert "Watchdog timeout" in journal, \
        "restarted, but not by the watchdog:\n" + journal[-3000:]
    assert int(box.show("voxline-tts.service", "NRestarts")["NRestarts"]) == before + 1
    assert box.curl("http://127.0.0.1:3003/healthz")[0] == 200


def test_listen_address_is_one_setting(box):
    """/etc/voxline/listen.conf moves every socket (the generator's
    drop-ins); without it the units' 127.0.0.1:PORT stands."""
    shipped = open(box.path("/etc/voxline/listen.conf")).read()
    assert re.search(r"^VOXLINE_LISTEN_ADDRESS=127\.0\.0\.1$", shipped, re.M), shipped
    try:
        box.write("/etc/voxline/listen.conf", "VOXLINE_LISTEN_ADDRESS=127.0.0.2\n")
        box.systemctl("daemon-reload")
        for name, port in DAEMONS.items():
            listen = box.show("voxline-%s.socket" % name, "Listen")["Listen"]
            assert listen == "127.0.0.2:%d (Stream)" % port, (name, listen)
        box.systemctl("stop", "voxline-vad.service", "voxline-vad.socket")
        box.systemctl("start", "voxline-vad.socket")
        assert box.curl("http://127.0.0.2:3001/livez")[0] == 200
        assert box.curl("http://127.0.0.1:3001/livez", timeout=5)[0] == 0
    finally:
        box.write("/etc/voxline/listen.conf", shipped)
        box.systemctl("daemon-reload")
        box.systemctl("stop", "voxline-vad.service", "voxline-vad.socket")
        box.systemctl("start", "voxline-vad.socket")
    assert box.show("voxline-vad.socket", "Listen")["Listen"] == "127.0.0.1:3001 (Stream)"
    assert box.curl("http://127.0.0.1:3001/livez")[0] == 200


def test_make_install_into_usr_local_works_too(deb):
    """`make install` (PREFIX=/usr/local) into another copy of the rootfs:
    systemd finds the units and the generator under /usr/local/lib, and the
    units run the binaries under /usr/local/bin."""
    rootfs = fail_on(cached_rootfs, deb_depends(deb))
    with Machine(rootfs, MACHINE + "-make") as m:
        r = subprocess.run(make_args() + ["install", "DESTDIR=" + m.dir],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, "make install failed:\n" + r.stdout[-3000:] + r.stderr[-3000:]
        m.write("/etc/voxline/listen.conf", "VOXLINE_LISTEN_ADDRESS=127.0.0.3\n")
        fail_on(m.boot)
        m.systemctl("enable", "--now", "voxline-vad.socket", "voxline-orchestrator.socket")
        assert m.curl("http://127.0.0.3:3001/healthz")[0] == 200
        status, body = m.curl("http://127.0.0.3:3000/")
        assert status == 200 and "<html" in body.lower(), (status, body[:200])
        exe = m.run("readlink", "/proc/%d/exe" % main_pid(m, "vad")).stdout.strip()
        assert exe == "/usr/local/bin/voxline-vad", exe
        path = m.show("voxline-vad.service", "FragmentPath")["FragmentPath"]
        assert path == "/usr/local/lib/systemd/system/voxline-vad.service", path
