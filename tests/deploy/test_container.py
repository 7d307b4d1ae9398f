"""Containers, built and run (issue 9, item 7).

Builds the base image (mmdebstrap | podman import, cached in
build/container/ and in podman's store) and the voxline image from
deploy/container/Containerfile, then starts the two host roles with
podman-compose from the shipped compose files:

  "cpu"  (compose.cpu.yaml): vad, stt, tts, orchestrator on the project's own
         bridge network, ports published on 127.0.0.1 (free ports)
  "gpu"  (compose.gpu.yaml): voxline-llm with the built-in GGUF engine on a
         tiny random-weight model (tests/gguf/mkgguf.py), its port published
         on the cpu network's gateway address, which is where the cpu
         orchestrator reaches it (VOXLINE_ORCHESTRATOR_LLM_URL)

and checks: every container becomes healthy through the image's HEALTHCHECK
(`podman healthcheck run`), runs as the unprivileged user, the orchestrator
keeps its database in the /var/lib/voxline volume, and one request per daemon
through the published ports gets a real answer (a spoken turn through the
orchestrator crosses all five daemons).

Traffic goes only to 127.0.0.1 and to the gateway of the bridge network this
test created, checked with `ip route get` to be a local address on that
bridge. Everything the test starts is removed at the end.

Time: cold (no base, no image) ~1.5 min base + 5-8 min image build on 2
cores; cached (image layers in podman's store) ~1 min for the whole test;
after a source change the compile layer is rebuilt (~3 min).
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

import container_util as cu
from lb_util import free_ports

ROOT = cu.ROOT
PYTHON = "/usr/bin/python3"
COMPOSE_CPU = os.path.join(ROOT, "deploy", "container", "compose.cpu.yaml")
COMPOSE_GPU = os.path.join(ROOT, "deploy", "container", "compose.gpu.yaml")
TAG = "localhost/voxline:test"
PROJ_CPU = "vxtest-cpu"
PROJ_GPU = "vxtest-gpu"
CPU_SERVICES = ("vad", "stt", "tts", "orchestrator")


def http(method, url, body=None, headers=None, timeout=60):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def multipart(field, filename, data, ctype):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def cleanup_project(proj):
    """Removes every container (with its anonymous volumes), named volume and
    network of a compose project of this test, leftovers of an earlier run too."""
    env = cu.podman_env()
    ids = cu.run("cleanup", ["podman", "ps", "-aq", "--filter",
                             f"label=io.podman.compose.project={proj}"],
                 check=False, quiet=True, env=env).stdout.split()
    if ids:
        cu.run("cleanup", ["podman", "rm", "-f", "-v", "-t", "2", *ids], check=False, env=env)
    vols = cu.run("cleanup", ["podman", "volume", "ls", "-q", "--filter",
                              f"name=^{proj}_"], check=False, quiet=True, env=env).stdout.split()
    if vols:
        cu.run("cleanup", ["podman", "volume", "rm", "-f", *vols], check=False, env=env)
    cu.run("cleanup", ["podman", "network", "rm", "-f", f"{proj}_default"],
           check=False, quiet=True, env=env)


def compose(step, proj, file, env, *args, timeout=300):
    return cu.run(step, ["podman-compose", "-p", proj, "-f", file, *args],
                  env=env, timeout=timeout)


def gateway_of(network):
    p = cu.run("network inspect", ["podman", "network", "inspect", network])
    info = json.loads(p.stdout)[0]
    subnets = info.get("subnets") or []
    assert subnets and subnets[0].get("gateway"), f"no gateway on {network}: {info}"
    return subnets[0]["gateway"], info.get("network_interface")


def check_local_on(addr, ifname):
    """The address is this machine's own, on the bridge this test made:
    traffic to it never leaves through a default route."""
    r = subprocess.run(["ip", "route", "get", addr], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("local "), \
        f"{addr} is not a local address: {r.stdout}{r.stderr}"
    a = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", ifname],
                       capture_output=True, text=True)
    assert f" {addr}/" in a.stdout, f"{addr} is not on {ifname}: {a.stdout}{a.stderr}"


def wait_healthy(name, timeout=120):
    """Runs the image's HEALTHCHECK until it passes; returns the seconds taken."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = cu.run("healthcheck", ["podman", "healthcheck", "run", name],
                      check=False, quiet=True)
        if last.returncode == 0:
            st = cu.run("inspect", ["podman", "inspect", "--format",
                                    "{{.State.Health.Status}}", name], quiet=True)
            assert st.stdout.strip() == "healthy", st.stdout
            return time.monotonic() - t0
        time.sleep(1)
    logs = cu.run("logs", ["podman", "logs", "--tail", "30", name], check=False, quiet=True)
    raise cu.StepFailed(f"step 'healthy': {name} not healthy after {timeout}s: "
                        f"{last.stdout}{last.stderr}\nlogs:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def image():
    cu.need("podman", "podman-compose", "mmdebstrap", "runc", "curl")
    t0 = time.monotonic()
    base, how = cu.ensure_base()
    t_base = time.monotonic() - t0
    t_img = cu.build_image(TAG, base)
    cu.log(f"base {base} from {how} in {t_base:.0f} s; image {TAG} in {t_img:.0f} s")
    return TAG


@pytest.fixture(scope="module")
def model_dir():
    d = os.path.join(cu.CACHE, "models")
    path = os.path.join(d, "tiny.gguf")
    if not os.path.exists(path):
        os.makedirs(d, exist_ok=True)
        subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"),
                        path + ".tmp"], check=True, capture_output=True, timeout=120)
        os.replace(path + ".tmp", path)
    return d


def test_image_basics(image):
    """Non-root, the state volume, the HEALTHCHECK and all five daemons."""
    p = cu.run("inspect image", ["podman", "image", "inspect", image])
    cfg = json.loads(p.stdout)[0]["Config"]
    assert cfg["User"] == "voxline", cfg
    assert "/var/lib/voxline" in (cfg.get("Volumes") or {}), cfg
    info = json.loads(p.stdout)[0]
    hc = info.get("Healthcheck") or cfg.get("Healthcheck")
    assert hc and "voxline-healthcheck" in " ".join(hc["Test"]), \
        f"no HEALTHCHECK in the image (built without --format docker?): {hc}"
    out = cu.run("run", ["podman", "run", "--rm", "--network", "none", image, "sh", "-c",
                         "id -u; readlink -f /bin/sh; ls /usr/local/bin; "
                         "stat -c %U /var/lib/voxline"]).stdout.split()
    assert out[0] == "10001", out
    assert out[1].endswith("dash"), out
    for d in ("vad", "stt", "tts", "llm", "orchestrator"):
        assert f"voxline-{d}" in out, out
    assert out[-1] == "voxline", out


def test_roles_healthy_and_serving(image, model_dir):
    ports = dict(zip(("orchestrator", "vad", "stt", "tts", "llm"), free_ports(5)))
    for proj in (PROJ_CPU, PROJ_GPU):
        cleanup_project(proj)
    env = cu.podman_env()
    env_cpu = dict(env, VOXLINE_IMAGE=image, VOXLINE_PUBLISH_ADDR="127.0.0.1",
                   VOXLINE_ORCHESTRATOR_HOST_PORT=str(ports["orchestrator"]),
                   VOXLINE_VAD_HOST_PORT=str(ports["vad"]),
                   VOXLINE_STT_HOST_PORT=str(ports["stt"]),
                   VOXLINE_TTS_HOST_PORT=str(ports["tts"]))
    try:
        # The cpu project's network first: the gpu role publishes on its gateway.
        cu.run("network create", ["podman", "network", "create", f"{PROJ_CPU}_default"])
        gw, ifname = gateway_of(f"{PROJ_CPU}_default")
        llm_url = f"http://{gw}:{ports['llm']}"
        env_cpu["VOXLINE_ORCHESTRATOR_LLM_URL"] = llm_url
        t0 = time.monotonic()
        compose("compose up (cpu)", PROJ_CPU, COMPOSE_CPU, env_cpu, "up", "-d")
        check_local_on(gw, ifname)
        env_gpu = dict(env, VOXLINE_IMAGE=image, VOXLINE_PUBLISH_ADDR=gw,
                       VOXLINE_LLM_HOST_PORT=str(ports["llm"]),
                       VOXLINE_LLM_MODEL="/models/tiny.gguf", VOXLINE_MODELS_DIR=model_dir)
        compose("compose up (gpu)", PROJ_GPU, COMPOSE_GPU, env_gpu, "up", "-d")

        names = {s: f"{PROJ_CPU}_{s}_1" for s in CPU_SERVICES}
        names["llm"] = f"{PROJ_GPU}_llm_1"
        for s, n in names.items():
            dt = wait_healthy(n)
            cu.log(f"{n} healthy after {dt:.1f} s")
        cu.log(f"both roles up and healthy in {time.monotonic() - t0:.0f} s")
        for s, n in names.items():
            uid = cu.run("exec", ["podman", "exec", n, "id", "-u"]).stdout.strip()
            assert uid == "10001", (n, uid)
            ro = cu.run("inspect", ["podman", "inspect", "--format",
                                    "{{.HostConfig.ReadonlyRootfs}}", n]).stdout.strip()
            assert ro == "true", f"{n}: root filesystem not read-only ({ro})"

        base = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
        base["llm"] = llm_url
        # The orchestrator sees all four upstreams healthy, the LLM across roles.
        deadline = time.monotonic() + 60
        while True:
            st, body, _ = http("GET", base["orchestrator"] + "/healthz")
            h = json.loads(body)
            ups = h.get("upstreams", {})
            if st == 200 and all(ups.get(k, {}).get("healthy") for k in
                                 ("vad", "stt", "tts", "llm")):
                break
            assert time.monotonic() < deadline, f"orchestrator upstreams: {h}"
            time.sleep(1)

        # tts
        st, wav, hd = http("POST", base["tts"] + "/synthesize",
                           json.dumps({"text": "hello world"}).encode(),
                           {"Content-Type": "application/json"})
        assert st == 200 and wav[:4] == b"RIFF" and len(wav) > 10000, (st, wav[:200])
        # vad
        st, body, _ = http("POST", base["vad"] + "/detect", wav, {"Content-Type": "audio/wav"})
        assert st == 200, body
        assert json.loads(body)["segments"], body
        # stt
        st, body, _ = http("POST", base["stt"] + "/transcribe", wav,
                           {"Content-Type": "audio/wav"})
        assert st == 200, body
        assert "hello" in json.loads(body)["text"], body
        # llm (gpu role, through its published port on the cpu bridge's gateway)
        st, body, _ = http("POST", base["llm"] + "/v1/chat/completions",
                           json.dumps({"messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 4}).encode(),
                           {"Content-Type": "application/json"})
        assert st == 200, body
        assert json.loads(body)["choices"][0]["message"]["content"], body
        # orchestrator: one spoken turn through vad/stt (cpu) -> llm (gpu) -> tts
        mp, hdrs = multipart("file", "hello.wav", wav, "audio/wav")
        st, body, _ = http("POST", base["orchestrator"] + "/chat", mp, hdrs, timeout=120)
        assert st == 200, body
        turn = json.loads(body)
        assert "hello" in turn["transcript"], turn
        assert turn.get("reply"), turn
        # its history is in the state volume
        ls = cu.run("exec", ["podman", "exec", names["orchestrator"], "sh", "-c",
                             "stat -c '%U %s' /var/lib/voxline/voxline.db"]).stdout.split()
        assert ls[0] == "voxline" and int(ls[1]) > 0, ls
        st, body, _ = http("GET", base["orchestrator"] + "/conversations")
        assert st == 200 and turn["conversation_id"] in body.decode(), body

        # podman stop: SIGTERM, the daemon drains and exits by itself (0) well
        # inside stop_grace_period.
        t1 = time.monotonic()
        cu.run("stop", ["podman", "stop", "-t", "30", names["vad"]])
        took = time.monotonic() - t1
        code = cu.run("inspect", ["podman", "inspect", "--format", "{{.State.ExitCode}}",
                                  names["vad"]]).stdout.strip()
        cu.log(f"vad stopped in {took:.1f} s, exit {code}")
        assert code == "0", f"voxline-vad exited {code} on SIGTERM"
        assert took < 25, took
    finally:
        for proj in (PROJ_GPU, PROJ_CPU):
            cleanup_project(proj)


def test_drain_turns_healthcheck_unhealthy(image):
    """SIGTERM: the HEALTHCHECK fails at once (/healthz 503 "draining") while
    the daemon still serves through its published port, then it exits 0 by
    itself. (A container of its own: podman refuses `healthcheck run` on a
    container it is stopping, and a compose restart policy would restart a
    killed one.)"""
    (port,) = free_ports(1)
    name = f"vxtest-drain-{os.getpid()}"
    cu.run("cleanup", ["podman", "rm", "-f", "-v", name], check=False, quiet=True)
    try:
        cu.run("run", ["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3003",
                       "-e", "VOXLINE_TTS_DRAIN_DELAY_S=3", "-e", "VOXLINE_TTS_DRAIN_S=10",
                       image, "voxline-tts"])
        wait_healthy(name)
        t0 = time.monotonic()
        cu.run("kill", ["podman", "kill", "--signal", "TERM", name])
        hc = cu.run("healthcheck", ["podman", "healthcheck", "run", name], check=False)
        assert hc.returncode != 0 and "unhealthy" in hc.stdout + hc.stderr, \
            f"draining voxline-tts still healthy: {hc.returncode} {hc.stdout}{hc.stderr}"
        st, body, _ = http("POST", f"http://127.0.0.1:{port}/synthesize",
                           json.dumps({"text": "still here"}).encode(),
                           {"Content-Type": "application/json"})
        assert st == 200 and body[:4] == b"RIFF", f"draining voxline-tts stopped serving: {st}"
        code = cu.run("wait", ["podman", "wait", name], timeout=60).stdout.strip()
        took = time.monotonic() - t0
        cu.log(f"tts drained and exited in {took:.1f} s, exit {code}")
        assert code == "0", f"voxline-tts exited {code} on SIGTERM"
        assert 2.5 < took < 15, took
    finally:
        cu.run("cleanup", ["podman", "rm", "-f", "-v", "-t", "1", name], check=False, quiet=True)
