"""A throwaway PostgreSQL server for tests, from Debian's packages
(postgresql, installed by `make deps`): its own data folder in a temp dir,
listening on 127.0.0.1 at a free port and on a Unix socket in that folder,
always stopped and deleted by the caller (a context manager).

    with PgServer() as pg:
        pg.sql("CREATE DATABASE x")
        url = pg.url("x")            # postgresql://voxline:...@127.0.0.1:PORT/x
        pg.restart()                  # fast shutdown + start, same port
        pg.crash()                    # immediate shutdown (then pg.start())

PostgreSQL refuses to run as root. As root the server runs as the
`postgres` system user (created by Debian's postgresql-common) through
`runuser -u postgres`; as any other user, as that user. Host connections
need the password (scram-sha-256); the Unix socket trusts local users
(only the owner of the temp folder reaches it)."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

USER = "voxline"
PASSWORD = "vx-test-secret"


def pg_bin(name):
    """The newest installed /usr/lib/postgresql/<v>/bin/<name>; fails
    with the reason when the server packages are missing."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found under /usr/lib/postgresql: "
                           "install the Debian package postgresql (`make deps`)")
    return found[-1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    def __init__(self, port=None):
        self.root = os.geteuid() == 0
        self.port = port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="voxline-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "postgres.log")
        self.proc = None
        os.chmod(self.tmp, 0o700)
        if self.root:
            shutil.chown(self.tmp, "postgres", "postgres")
        try:
            self._initdb()
            self.start()
        except BaseException:
            self.close()
            raise

    def _as_owner(self, argv):
        return ["runuser", "-u", "postgres", "--", *argv] if self.root else argv

    def _initdb(self):
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.root:
            shutil.chown(pwfile, "postgres", "postgres")
        r = subprocess.run(self._as_owner([
            pg_bin("initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync"]), capture_output=True, text=True)
        os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout + r.stderr)

    def start(self, timeout=60):
        """Starts the postmaster and waits until it accepts connections."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._as_owner([
            pg_bin("postgres"), "-D", self.data, "-p", str(self.port),
            "-k", self.tmp, "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "max_connections=100",
            "-c", "log_min_messages=warning"]),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited at start:\n" + self.log())
            r = subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1",
                                "-p", str(self.port), "-t", "2"],
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("postgres did not accept connections:\n" + self.log())

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self, sig=signal.SIGINT, timeout=30):
        """SIGINT: fast shutdown (clients are disconnected); SIGQUIT:
        immediate. Waits for the postmaster (and runuser) to exit."""
        pid = self.postmaster_pid()
        if pid and self.proc and self.proc.poll() is None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def crash(self):
        """Immediate shutdown (SIGQUIT): no checkpoint, clients cut off;
        the next start recovers from the WAL."""
        self.stop(signal.SIGQUIT)

    def sql(self, statement, db="postgres"):
        """Runs SQL through psql on the Unix socket; returns its output
        (tuples only, unaligned)."""
        r = subprocess.run([pg_bin("psql"), "-h", self.tmp, "-p", str(self.port),
                            "-U", USER, "-d", db, "-v", "ON_ERROR_STOP=1",
                            "-At", "-c", statement], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {r.stderr}")
        return r.stdout.strip()

    def url(self, db="postgres", password=True, **params):
        auth = f"{USER}:{PASSWORD}" if password else USER
        q = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}" + ("?" + q if q else "")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
