"""systemd_util.py - a Debian rootfs booted with systemd as PID 1 in
systemd-nspawn, for tests/deploy/test_systemd.py.

  rootfs = cached_rootfs(packages)      # build/nspawn/rootfs-<hash>, made once
  with Machine(rootfs, name) as m:      # a copy of it, booted; always stopped
      m.install_deb(path)               # before boot: apt-get install ./x.deb
      m.boot()
      m.run("systemctl", "is-active", "voxline-stt.service")

The rootfs comes from `mmdebstrap --variant=minbase bookworm` with the given
packages; its directory name is a hash of the package list, so a new
dependency of the package makes a new rootfs and nothing else does. A
Machine works on its own copy (build/nspawn/run-<pid>-<name>), so the cache stays
clean. systemd-nspawn runs with --register=no --keep-unit --private-network
(no systemd on the host to register with; the container sees only its own
loopback); commands run inside through `nsenter -t <leader> -a`.
"""
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NSPAWN_DIR = os.path.join(ROOT, "build", "nspawn")
SUITE = "bookworm"
# Bump when the way the rootfs is made changes (not the package list).
ROOTFS_RECIPE = "1"
# Packages every rootfs has besides the package's own Depends.
BASE_PACKAGES = ["systemd", "dbus", "curl"]
INSIDE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
              "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "TERM": "dumb"}


class Fail(Exception):
    """Something the test needs could not be had; the message says why."""


def need_tools(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise Fail("missing %s: `make deps` installs them (deploy/deploy.mk)"
                   % ", ".join(missing))


def deb_depends(deb):
    """Package names of the .deb's Depends (first of each alternative)."""
    out = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True,
                         capture_output=True, text=True).stdout
    names = []
    for dep in out.split(","):
        name = dep.split("|")[0].split("(")[0].strip()
        if name:
            names.append(name)
    return names


def rootfs_key(packages):
    text = "\n".join([ROOTFS_RECIPE, SUITE, "minbase"] + sorted(set(packages)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_rootfs(packages, log=print):
    """Path of a rootfs with BASE_PACKAGES + packages, made if missing
    (~2 min, needs the Debian mirror). Older rootfs-* dirs are removed."""
    need_tools("mmdebstrap")
    packages = sorted(set(BASE_PACKAGES + list(packages)))
    os.makedirs(NSPAWN_DIR, exist_ok=True)
    path = os.path.join(NSPAWN_DIR, "rootfs-" + rootfs_key(packages))
    with open(os.path.join(NSPAWN_DIR, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(os.path.join(path, "usr")):
            return path
        for old in os.listdir(NSPAWN_DIR):
            if old.startswith("rootfs-"):
                shutil.rmtree(os.path.join(NSPAWN_DIR, old), ignore_errors=True)
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.time()
        r = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                            "--include=" + ",".join(packages), SUITE, tmp],
                           capture_output=True, text=True, timeout=1200)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise Fail("mmdebstrap failed (exit %d):\n%s" % (r.returncode,
                                                              r.stderr[-4000:]))
        os.rename(tmp, path)
        log("rootfs %s made in %.0f s" % (os.path.basename(path), time.time() - t0))
        return path


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _mounts_under(path):
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4]
            if mnt == path or mnt.startswith(path + "/"):
                out.append(mnt)
    return out


def _reap_stale_runs():
    """Removes run-* copies of earlier runs whose nspawn is gone; stops an
    nspawn of an earlier run of this test that is still up (its pid file)."""
    if not os.path.isdir(NSPAWN_DIR):
        return
    for name in os.listdir(NSPAWN_DIR):
        if name.startswith("run-") and name.endswith(".console") and \
                not os.path.isdir(os.path.join(NSPAWN_DIR, name[:-len(".console")])):
            os.unlink(os.path.join(NSPAWN_DIR, name))
    for name in os.listdir(NSPAWN_DIR):
        if not name.startswith("run-") or "." in name:
            continue
        run = os.path.join(NSPAWN_DIR, name)
        try:
            with open(run + ".pid") as f:
                pid = int(f.read())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
            if b"systemd-nspawn" in cmdline and run.encode() in cmdline:
                for leader in _children(pid):
                    os.kill(leader, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
                time.sleep(1)
        except (OSError, ValueError):
            pass
        if not _mounts_under(run):
            shutil.rmtree(run, ignore_errors=True)
            for f in (run + ".pid", run + ".console"):
                try:
                    os.unlink(f)
                except OSError:
                    pass


class Machine:
    """A copy of a rootfs, booted with systemd-nspawn --boot. Use as a
    context manager: the container is always stopped and the copy removed."""

    def __init__(self, rootfs, name, log=print):
        need_tools("systemd-nspawn", "nsenter")
        self.rootfs = rootfs
        self.name = name
        self.log = log
        self.dir = os.path.join(NSPAWN_DIR, "run-%d-%s" % (os.getpid(), name))
        self.console = self.dir + ".console"
        self.proc = None
        self.leader = None

    # ---- lifecycle ----

    def __enter__(self):
        _reap_stale_runs()
        shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", self.rootfs, self.dir], check=True)
        return self

    def __exit__(self, *exc):
        self.stop()
        if _mounts_under(self.dir):
            subprocess.run(["umount", "-R", "-l", self.dir])
        shutil.rmtree(self.dir, ignore_errors=True)
        for f in (self.dir + ".pid",):
            try:
                os.unlink(f)
            except OSError:
                pass
        return False

    def _nspawn(self, *args):
        return ["systemd-nspawn", "--quiet", "--directory", self.dir,
                "--register=no", "--keep-unit", "--private-network",
                "--machine", self.name, *args]

    def path(self, inside):
        """Host path of a file inside the container's tree."""
        return os.path.join(self.dir, inside.lstrip("/"))

    def put(self, src, inside, mode=0o644):
        dst = self.path(inside)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)

    def write(self, inside, text, mode=0o644):
        """Writes a file in the container's tree (host side: works booted
        or not, as the tree is a plain directory)."""
        dst = self.path(inside)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, mode)

    def install_deb(self, deb):
        """`apt-get install ./x.deb` in the (not yet booted) container, as a
        user would; the rootfs already has its dependencies."""
        r = subprocess.run(self._nspawn(
            "--bind-ro=%s:/srv/install/%s" % (deb, os.path.basename(deb)),
            "--setenv=DEBIAN_FRONTEND=noninteractive",
            "apt-get", "install", "-y", "-q", "--no-install-recommends",
            "/srv/install/" + os.path.basename(deb)),
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise Fail("apt-get install %s in the container failed:\n%s%s"
                       % (deb, r.stdout[-3000:], r.stderr[-3000:]))
        return r.stdout

    def boot(self, timeout=90):
        """Starts systemd as PID 1 and waits for `is-system-running`."""
        con = open(self.console, "w")
        self.proc = subprocess.Popen(self._nspawn("--boot", "--console=passive"),
                                     stdin=subprocess.DEVNULL, stdout=con,
                                     stderr=subprocess.STDOUT)
        con.close()
        with open(self.dir + ".pid", "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.time() + timeout
        while time.time() < deadline and self.leader is None:
            if self.proc.poll() is not None:
                raise Fail("systemd-nspawn exited %d at boot:\n%s"
                           % (self.proc.returncode, self.console_text()))
            for c in _children(self.proc.pid):
                if _comm(c) == "systemd":
                    self.leader = c
            time.sleep(0.1)
        if self.leader is None:
            raise Fail("no systemd in the container after %ds:\n%s"
                       % (timeout, self.console_text()))
        state = ""
        while time.time() < deadline:
            r = self.run("systemctl", "is-system-running", check=False, timeout=10)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.3)
        raise Fail("systemd in the container not up after %ds (state %r):\n%s"
                   % (timeout, state, self.console_text()))

    def stop(self, timeout=30):
        """Powers the container off: `systemctl poweroff -ff` inside (no
        stop of any process: the copy is thrown away), then
        SIGTERM to nspawn, then SIGKILL to nspawn and the container's PID 1
        (which takes every process in its PID namespace with it)."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.leader and _alive(self.leader):
            try:
                subprocess.run(self.cmd("systemctl", "poweroff", "--force", "--force"),
                               env=INSIDE_ENV,
                               capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if self.leader and _alive(self.leader):
                    os.kill(self.leader, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ---- inside ----

    def cmd(self, *argv):
        """argv to run inside the booted container."""
        assert self.leader, "container not booted"
        return ["nsenter", "-t", str(self.leader), "-a", *argv]

    def run(self, *argv, check=True, timeout=60):
        r = subprocess.run(self.cmd(*argv), env=INSIDE_ENV, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError("inside: %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(argv), r.returncode, r.stdout[-3000:],
                                    r.stderr[-3000:]))
        return r

    def popen(self, *argv):
        return subprocess.Popen(self.cmd(*argv), env=INSIDE_ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)

    def systemctl(self, *args, check=True, timeout=60):
        return self.run("systemctl", "--no-pager", *args, check=check, timeout=timeout)

    def show(self, unit, *props):
        """systemctl show values as a dict."""
        r = self.systemctl("show", unit, "-p", ",".join(props))
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def curl(self, url, *args, timeout=60):
        """(status, body) of a request made inside the container; status 0
        when curl could not connect (body is then curl's error)."""
        r = self.run("curl", "-sS", "-m", str(timeout), "-w", "\n%{http_code}", *args, url,
                     check=False, timeout=timeout + 10)
        body, _, code = r.stdout.rpartition("\n")
        try:
            status = int(code)
        except ValueError:
            status = 0
        return (status, body if status else r.stderr.strip())

    def journal(self, unit):
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", unit,
                        check=False).stdout
