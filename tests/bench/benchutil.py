"""Helpers for benchmarks: start daemons (same as the tests' conftest),
read resident memory, percentiles, wrk."""
import os
import re
import subprocess
import tempfile

from conftest import Daemon  # noqa: F401  (tests/integration on sys.path)


def start(bin_dir, name, *args, env=None):
    exe = name if os.path.sep in name else os.path.join(bin_dir, "voxline-" + name)
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{os.path.basename(exe)}-",
                                      suffix=".log", delete=False).name
    e = dict(os.environ)
    e.update(env or {})
    d = Daemon([exe, "--port", "0", *map(str, args)], log, e)
    d.wait_ready()
    return d


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def wrk(url, threads=2, conns=50, seconds=10):
    """Runs wrk; returns (requests/s, p50 ms, p99 ms, errors)."""
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s",
                          "--latency", url], capture_output=True, text=True).stdout

    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return (float(rps.group(1)) if rps else 0.0, ms("50"), ms("99"),
            (int(errs.group(1)) if errs else 0, sock.group(1) if sock else ""))
