"""Two kinds of host, on one machine: network namespaces "cpu", "gpu" and
"gpu2" (named vxt-<role>-<pid>), joined by veth pairs this test creates and
always deletes. voxline-llm (on tests/llm_upstream.py, the scripted OpenAI
upstream, run in the same namespace) listens on each gpu namespace's own
address; VAD, STT, TTS and the orchestrator run in "cpu", the orchestrator
given both LLM hosts (--llm-url a,b). Every request is sent from inside a
namespace (`ip netns exec`); before anything is sent the test checks with
`ip route get` that each address is reached through the test's own veth (or
the namespace's loopback), never a default route.

Spoken turns (POST /chat with a WAV flite made) go through the orchestrator.
Then one gpu link is taken down during a turn: the turn ends within the
stage timeout with a 502/504 JSON error naming the LLM stage, the next turn
is served by the other gpu host; link back up: the host rejoins (its
generation counter rises again)."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from lb_util import Daemon, LlmUpstream, Netns, bin_path, need, sh, stop_all, wait_until

STAGE_TIMEOUT_S = 5
QUESTION = "what is the weather like in paris today"
# 10.213.<n>.0/30: one point-to-point subnet per gpu link, inside the test's
# own namespaces only.
GPU = {"gpu": ("vxg1", "10.213.1.1", "10.213.1.2"),
       "gpu2": ("vxg2", "10.213.2.1", "10.213.2.2")}
LLM_PORT, UPSTREAM_PORT = 3004, 3014
PORTS = {"orchestrator": 3000, "vad": 3001, "stt": 3002, "tts": 3003}


class Hosts:
    def __init__(self, tmp):
        need("ip", "curl")
        assert os.geteuid() == 0, "network namespaces need root"
        self.tmp = tmp
        self.procs = []
        self.net = Netns(f"vxt-{os.getpid()}")
        self.ns = {}

    def setup(self):
        pid = os.getpid()
        # Namespaces an earlier run left when it was killed (its pid is gone).
        for name in sh("ip", "netns", "list").split():
            m = re.fullmatch(r"vxt-(cpu|gpu|gpu2)-(\d+)", name)
            if m and not os.path.exists(f"/proc/{m.group(2)}"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for role in ("cpu", "gpu", "gpu2"):
            name = f"vxt-{role}-{pid}"
            sh("ip", "netns", "add", name)
            self.net.names.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            self.ns[role] = name
        for role, (dev, cpu_addr, gpu_addr) in GPU.items():
            self.net.link(self.ns["cpu"], dev, cpu_addr, self.ns[role], "vxc", gpu_addr)
        self.check_routes()
        self.llm = {}
        for role, (_, _, gpu_addr) in GPU.items():
            px = self.net.exec_prefix(self.ns[role])
            self.procs.append(LlmUpstream(f"upstream-{role}", self.tmp, UPSTREAM_PORT, px))
            d = Daemon(f"llm-{role}", "llm", LLM_PORT, self.tmp, "--engine", "openai",
                       "--url", f"http://127.0.0.1:{UPSTREAM_PORT}", host=gpu_addr, prefix=px)
            self.procs.append(d)
            self.llm[role] = d
        cpx = self.net.exec_prefix(self.ns["cpu"])
        self.cpu = {}
        for svc in ("vad", "stt", "tts"):
            self.cpu[svc] = Daemon(svc, svc, PORTS[svc], self.tmp, prefix=cpx)
            self.procs.append(self.cpu[svc])
        llm_urls = ",".join(f"http://{GPU[r][2]}:{LLM_PORT}" for r in ("gpu", "gpu2"))
        self.orch = Daemon("orchestrator", "orchestrator", PORTS["orchestrator"], self.tmp,
                           "--vad-url", f"http://127.0.0.1:{PORTS['vad']}",
                           "--stt-url", f"http://127.0.0.1:{PORTS['stt']}",
                           "--tts-url", f"http://127.0.0.1:{PORTS['tts']}",
                           "--llm-url", llm_urls,
                           # ~1.5 s replies (a token every 50 ms): a turn is
                           # in progress long enough to cut its link.
                           "--llm-model", "slow", "--max-tokens", "30",
                           "--stage-timeout-s", STAGE_TIMEOUT_S, "--health-interval-s", "1",
                           "--db", os.path.join(str(self.tmp), "orch.db"), prefix=cpx)
        self.procs.append(self.orch)
        # The cpu namespace asks the gpu hosts (through the checked veths).
        for d in [*self.llm.values(), *self.cpu.values(), self.orch]:
            d.wait_ready()

    def check_routes(self):
        """Each address the test or a daemon sends to goes out by the test's
        own device: the veth to its gpu host, or loopback."""
        cpu = self.ns["cpu"]
        for role, (dev, _, gpu_addr) in GPU.items():
            got = self.net.route_dev(cpu, gpu_addr)
            assert got == dev, f"{gpu_addr} from {cpu} leaves by {got!r}, not {dev}"
            assert self.net.route_dev(self.ns[role], gpu_addr) == "lo"
            assert self.net.route_dev(self.ns[role], "127.0.0.1") == "lo"
        assert self.net.route_dev(cpu, "127.0.0.1") == "lo"
        for ns in self.ns.values():
            r = subprocess.run(["ip", "-n", ns, "route", "show", "default"],
                               capture_output=True, text=True)
            assert r.stdout.strip() == "", f"{ns} has a default route: {r.stdout}"

    def in_cpu(self, *argv, timeout=120):
        return subprocess.run([*self.net.exec_prefix(self.ns["cpu"]), *map(str, argv)],
                              capture_output=True, timeout=timeout)

    def curl_cpu(self, *args, timeout=120):
        """curl inside "cpu": (status, body bytes)."""
        r = self.in_cpu("curl", "-s", "-o", "-", "-w", "\n%{http_code}",
                        "--max-time", str(timeout), *args, timeout=timeout + 10)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code or 0), body

    def generations(self, role):
        """voxline_llm_generations_total of a gpu host, asked from "cpu"."""
        self.check_routes_for(role)
        st, body = self.curl_cpu(f"http://{GPU[role][2]}:{LLM_PORT}/metrics", timeout=5)
        assert st == 200, (st, body[:200])
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.decode().splitlines()
                   if ln.startswith("voxline_llm_generations_total"))

    def check_routes_for(self, role):
        dev, _, addr = GPU[role]
        got = self.net.route_dev(self.ns["cpu"], addr)
        assert got == dev, f"{addr} now leaves by {got!r}, not {dev}"

    def llm_health(self):
        st, body = self.curl_cpu(f"http://127.0.0.1:{PORTS['orchestrator']}/info", timeout=5)
        info = json.loads(body)
        llm = next(u for u in info["upstreams"] if u["name"] == "llm")
        return {i["url"]: i["healthy"] for i in llm["instances"]}

    def close(self):
        bad = [f"{p.name} exited {rc}:\n{p.log()[-1500:]}"
               for p, (alive, rc) in stop_all(self.procs).items()
               if isinstance(p, Daemon) and alive and rc not in (0, None)]
        for ns in self.net.names:
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        errors = self.net.delete()
        return bad + errors


@pytest.fixture
def hosts(tmp_path, request):
    h = Hosts(tmp_path)
    closed = []

    def fin():
        if not closed:
            closed.append(True)
            h.close()
    request.addfinalizer(fin)      # namespaces and veths go, pass or fail
    t0 = time.monotonic()
    h.setup()
    print(f"\n# namespaces, veths and 7 daemons ready in {time.monotonic() - t0:.1f} s")
    yield h
    closed.append(True)
    bad = h.close()
    left = [n for n in sh("ip", "netns", "list").split() if n.startswith("vxt-") and
            n.endswith(f"-{os.getpid()}")]
    assert not left, f"namespaces left behind: {left}"
    assert not bad, "\n".join(bad)


def spoken_turn(h, wav, timeout=60):
    """POST /chat with the WAV from inside "cpu": (status, json, seconds)."""
    t0 = time.monotonic()
    st, body = h.curl_cpu("-F", f"file=@{wav};type=audio/wav",
                          f"http://127.0.0.1:{PORTS['orchestrator']}/chat", timeout=timeout)
    took = time.monotonic() - t0
    try:
        j = json.loads(body)
    except ValueError:
        j = {"_raw": body[:300]}
    return st, j, took


def cut(h, victim, side, up):
    """near: the cpu end of the link (its route goes: connects fail at once);
    far: the gpu end (the cpu end loses carrier, its route stays: packets
    vanish, connects time out)."""
    if side == "near":
        h.net.set_link(h.ns["cpu"], GPU[victim][0], up=up)
    else:
        h.net.set_link(h.ns[victim], "vxc", up=up)


@pytest.mark.parametrize("side", ["near", "far"])
def test_turns_across_two_gpu_hosts_survive_a_link_down(hosts, side):
    h = hosts
    t_start = time.monotonic()
    wav = os.path.join(str(h.tmp), "question.wav")
    st, body = h.curl_cpu("-H", "Content-Type: application/json", "-d",
                          json.dumps({"text": QUESTION, "sample_rate": 16000}),
                          f"http://127.0.0.1:{PORTS['tts']}/synthesize")
    assert st == 200 and body[:4] == b"RIFF", (st, body[:200])
    with open(wav, "wb") as f:
        f.write(body)

    # Spoken turns: both gpu hosts serve (the orchestrator balances).
    gens0 = {r: h.generations(r) for r in GPU}
    for i in range(4):
        st, j, took = spoken_turn(h, wav)
        assert st == 200, (st, j)
        assert "weather" in j["transcript"] or "paris" in j["transcript"], j["transcript"]
        assert j["reply"].startswith("w1 w2"), j["reply"]
        assert j["audio_base64"]
        print(f"# turn {i + 1}: 200 in {took:.1f} s, transcript {j['transcript']!r}")
    gens1 = {r: h.generations(r) for r in GPU}
    served = {r: gens1[r] - gens0[r] for r in GPU}
    print(f"# generations per gpu host over 4 turns: {served}")
    assert all(v >= 1 for v in served.values()), served

    # A turn in progress; its gpu link goes down while the LLM writes. The
    # near case asks by POST /chat (a 502/504 JSON error), the far case by
    # /ws/chat with voxline-client (an "error" event).
    if side == "near":
        argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "90",
                "-F", f"file=@{wav};type=audio/wav",
                f"http://127.0.0.1:{PORTS['orchestrator']}/chat"]
    else:
        argv = [bin_path("client"), "--url",
                f"ws://127.0.0.1:{PORTS['orchestrator']}/ws/chat", "--file", wav,
                "--speed", "4", "--timeout-s", "60"]
    bg = subprocess.Popen([*h.net.exec_prefix(h.ns["cpu"]), *argv],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def busy_host():
            for r in GPU:
                st, body = h.curl_cpu(f"http://{GPU[r][2]}:{LLM_PORT}/metrics", timeout=5)
                for ln in body.decode().splitlines():
                    if ln.startswith("voxline_websockets_open ") and float(ln.split()[1]) > 0:
                        return r
            return None
        victim = wait_until(busy_host, 60, "an LLM generation in progress", step=0.05)
        other = next(r for r in GPU if r != victim)
        cut(h, victim, side, up=False)
        t_down = time.monotonic()
        out, err_out = bg.communicate(timeout=STAGE_TIMEOUT_S * 4 + 30)
    finally:
        if bg.poll() is None:
            bg.kill()
            bg.wait()
    took = time.monotonic() - t_down
    if side == "near":
        body, _, code = out.rpartition(b"\n")
        print(f"# near end of the link to {victim} down during a turn (POST /chat): "
              f"HTTP {code.decode()} after {took:.1f} s: {body[:200]!r}")
        assert int(code) in (502, 504), (code, body)
        err = json.loads(body)["error"]
        assert err["message"].startswith("llm:"), err
    else:
        events = [json.loads(ln) for ln in out.decode().splitlines() if ln.strip()]
        errors = [e for e in events if e.get("type") == "error"]
        print(f"# far end of the link to {victim} down during a turn (/ws/chat): client exit "
              f"{bg.returncode} after {took:.1f} s, error events {errors}")
        assert errors and errors[0]["stage"] == "llm", (events, err_out[-500:])
        assert bg.returncode == 1, (bg.returncode, err_out[-500:])
    # The stage timeout counts from the last token; generous on a busy machine.
    assert took <= 2 * STAGE_TIMEOUT_S + 2, f"the error came {took:.1f} s after the link went down"

    # The next turn is served by the other host.
    g_other = h.generations(other)
    st, j, took = spoken_turn(h, wav)
    print(f"# next turn: {st} in {took:.1f} s; health seen by the orchestrator: "
          f"{h.llm_health()}")
    assert st == 200, (st, j)
    assert h.generations(other) > g_other
    # The down host is marked so.
    health = wait_until(lambda: (lambda hl: hl if not hl[f"ws://{GPU[victim][2]}:{LLM_PORT}"
                                                       "/ws/generate"] else None)(h.llm_health()),
                        10, f"{victim} marked unhealthy")
    assert health[f"ws://{GPU[other][2]}:{LLM_PORT}/ws/generate"]

    # Link back up: the host rejoins and serves again.
    cut(h, victim, side, up=True)
    h.check_routes()
    t_up = time.monotonic()
    wait_until(lambda: all(h.llm_health().values()), 20, f"{victim} healthy again")
    rejoin_s = time.monotonic() - t_up
    g_victim = h.generations(victim)
    for i in range(4):
        st, j, _ = spoken_turn(h, wav)
        assert st == 200, (st, j)
        if h.generations(victim) > g_victim:
            break
    print(f"# link up: {victim} healthy after {rejoin_s:.1f} s, served again after "
          f"{i + 1} turn(s); test took {time.monotonic() - t_start:.1f} s")
    assert h.generations(victim) > g_victim, f"{victim} did not rejoin"
