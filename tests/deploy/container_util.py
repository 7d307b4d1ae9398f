#!/usr/bin/python3
"""Helpers of the container test (test_container.py) and `make container-image`:
podman set up for this kind of machine, the Debian base image made with
mmdebstrap and imported (cached as build/container/voxline-base.tar and in
podman's own store), and the voxline image built from
deploy/container/Containerfile.

Every step that can fail raises StepFailed naming the step, the command and
its error text, so a test that cannot run says exactly why.

    python3 tests/deploy/container_util.py build     # base + image, timed

Machine facts this works around (found on the CI machine, a Firecracker VM
with cgroup v1 + a cgroup2 mount, "hybrid"):
  - crun 1.8 refuses hybrid cgroups ("cgroups in hybrid mode not supported"):
    runc is used instead (containers.conf below).
  - podman's default ulimits as root (nofile 1048576, nproc 4194304) are over
    this machine's hard limits (setrlimit: Operation not permitted): the
    limits are set to the hard nofile limit and at most 32768 processes.
  - no systemd as PID 1: podman cannot start its healthcheck timers (it logs
    "unable to get systemd connection"); `podman healthcheck run` runs the
    image's HEALTHCHECK on demand and updates the container's health state.
"""
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(ROOT, "build", "container")
CONTAINERFILE = os.path.join(ROOT, "deploy", "container", "Containerfile")
BASE_IMAGE = "localhost/voxline-base:bookworm"
BASE_TAR = os.path.join(CACHE, "voxline-base.tar")
IMAGE = "localhost/voxline:latest"


class StepFailed(AssertionError):
    pass


def log(msg):
    print(f"[container] {msg}", file=sys.stderr, flush=True)


def ulimits():
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return nofile, nproc


def podman_env():
    """Environment for podman and podman-compose: CONTAINERS_CONF pointing at
    a containers.conf (runc, ulimits within this machine's hard limits)."""
    os.makedirs(CACHE, exist_ok=True)
    nofile, nproc = ulimits()
    conf = os.path.join(CACHE, "containers.conf")
    text = ("# written by tests/deploy/container_util.py\n"
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n')
    if not os.path.exists(conf) or open(conf).read() != text:
        with open(conf + ".tmp", "w") as f:
            f.write(text)
        os.replace(conf + ".tmp", conf)
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = conf
    return env


def need(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        raise StepFailed(f"step 'tools': not installed: {missing} (run `make deps`)")


def run(step, argv, timeout=600, check=True, env=None, quiet=False, **kw):
    """Runs argv; on failure raises StepFailed with the step, command and the
    last lines of its output."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=env or podman_env(), **kw)
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
               else (e.stdout or ""))
        raise StepFailed(f"step {step!r}: {' '.join(argv)} timed out after {timeout}s\n"
                         f"{out[-2000:]}") from None
    dt = time.monotonic() - t0
    if not quiet:
        log(f"{step}: {' '.join(argv[:4])}{' ...' if len(argv) > 4 else ''} "
            f"-> {p.returncode} ({dt:.1f} s)")
    if check and p.returncode != 0:
        tail = (p.stdout[-1500:] + "\n" + p.stderr[-2500:]).strip()
        raise StepFailed(f"step {step!r} failed: {' '.join(argv)}\nexit {p.returncode}\n{tail}")
    return p


def image_exists(name):
    return run("image exists", ["podman", "image", "exists", name], check=False,
               quiet=True).returncode == 0


def ensure_base():
    """The Debian bookworm base image, from podman's store, else from the
    cached tar, else made with mmdebstrap (~1-2 min). Returns its name and
    how it was had ("store", "tar", "mmdebstrap")."""
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE, "store"
    how = "tar"
    if not os.path.exists(BASE_TAR):
        need("mmdebstrap")
        os.makedirs(CACHE, exist_ok=True)
        tmp = BASE_TAR + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        run("base: mmdebstrap", ["mmdebstrap", "--variant=minbase", "--format=tar",
                                 "bookworm", tmp],
            timeout=900)
        os.replace(tmp, BASE_TAR)
        how = "mmdebstrap"
    run("base: podman import", ["podman", "import",
                                "--change", "CMD [\"/bin/bash\"]", BASE_TAR, BASE_IMAGE],
        timeout=300)
    return BASE_IMAGE, how


def build_image(tag=IMAGE, base=None):
    """podman build of deploy/container/Containerfile on the imported base.
    Returns seconds taken."""
    need("podman")
    base = base or ensure_base()[0]
    nofile, nproc = ulimits()
    t0 = time.monotonic()
    run("image: podman build",
        ["podman", "build", "--format", "docker", "--layers",
         "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}",
         "--build-arg", f"BASE={base}", "-t", tag, "-f", CONTAINERFILE, ROOT],
        timeout=1800)
    return time.monotonic() - t0


def main():
    if len(sys.argv) != 2 or sys.argv[1] != "build":
        print(__doc__)
        return 2
    need("podman", "mmdebstrap")
    t0 = time.monotonic()
    base, how = ensure_base()
    tb = time.monotonic() - t0
    ti = build_image(IMAGE, base)
    print(f"base {base} ({how}, {tb:.0f} s); image {IMAGE} built in {ti:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepFailed as e:
        print(e, file=sys.stderr)
        sys.exit(1)
