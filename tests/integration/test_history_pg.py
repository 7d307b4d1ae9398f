"""The conversation store on PostgreSQL: build/tests/test_orch_history (the
SQLite unit test's checks, plus reconnect, statement_timeout and failed-open
cases) against a throwaway PostgreSQL server from Debian's packages, on
loopback and a Unix socket in a temp folder (tests/deploy/pg_util.py),
always stopped. About 10 s. The multi-orchestrator scenario (HAProxy,
kill -9, server restart) is tests/deploy/test_postgres.py."""
import os
import subprocess
import sys

from conftest import BIN, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "deploy"))
from pg_util import PgServer  # noqa: E402

TEST = os.path.join(os.path.dirname(BIN), "tests", "test_orch_history")


def test_history_store_checks_pass_on_postgresql():
    assert os.access(TEST, os.X_OK), f"{TEST} is not built (make integration builds it)"
    with PgServer() as pg:
        base = pg.url().rsplit("/", 1)[0]
        r = subprocess.run([TEST], env=dict(os.environ, VOXLINE_TEST_PG=base),
                           capture_output=True, text=True, timeout=300)
        print(r.stdout, r.stderr)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + pg.log()
        assert "backend: postgresql" in r.stdout and " 0 failed" in r.stdout
        # every case's database was dropped
        assert pg.sql("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'vxh_%'") == "0"
