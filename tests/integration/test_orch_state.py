"""Where voxline-orchestrator keeps its state (issue 9, item 1): never
relative to the working directory. Without --db: voxline.db in the first
folder of $STATE_DIRECTORY (systemd's StateDirectory=), else in
/var/lib/voxline; when that cannot be made or opened it exits naming the
path and the flag to set. A PostgreSQL URL is never logged with its
password."""
import os
import subprocess

from conftest import BIN

ORCH = os.path.join(BIN, "voxline-orchestrator")


def env_without_db(**extra):
    e = {k: v for k, v in os.environ.items()
         if k not in ("VOXLINE_ORCHESTRATOR_DB", "STATE_DIRECTORY")}
    e.update(extra)
    return e


def run_failing(argv, env, cwd):
    """Runs a start that must fail; (exit code, log)."""
    p = subprocess.run([ORCH, "--port", "0", *argv], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def test_state_directory_first_folder_holds_the_store(start, tmp_path):
    a, b, cwd = tmp_path / "a", tmp_path / "b", tmp_path / "cwd"
    for d in (a, b, cwd):
        d.mkdir()
    orch = start(ORCH, env=env_without_db(STATE_DIRECTORY=f"{a}:{b}"))
    assert f"db {a}/voxline.db (sqlite)" in orch.log()
    assert (a / "voxline.db").exists()
    assert not os.listdir(b) and not os.listdir(cwd)
    # no stages run here: the turn fails at the LLM, the conversation is stored
    r = orch.post_json("/chat", {"text": "hi", "conversation_id": "s1"})
    assert r.status == 502 and r.json()["error"]["code"] == "unavailable", r
    assert orch.get("/conversations/s1").status == 200


def test_a_state_folder_that_cannot_be_made_is_named_with_the_flag(tmp_path):
    code, log = run_failing([], env_without_db(STATE_DIRECTORY="/proc/voxline-test"),
                            tmp_path)
    assert code != 0
    assert "/proc/voxline-test" in log and "--db" in log and "VOXLINE_ORCHESTRATOR_DB" in log
    assert not os.listdir(tmp_path)


def test_an_unusable_db_path_is_named_with_the_flag(tmp_path):
    code, log = run_failing(["--db", str(tmp_path / "missing" / "x.db")], env_without_db(),
                            tmp_path)
    assert code != 0
    assert str(tmp_path / "missing" / "x.db") in log and "VOXLINE_ORCHESTRATOR_DB" in log


def test_an_unreachable_postgresql_is_named_without_its_password(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    url = f"postgresql://vx:hunter2secret@127.0.0.1:{port}/voxline"
    code, log = run_failing(["--db", url], env_without_db(), tmp_path)
    assert code != 0
    assert f"postgresql://vx:***@127.0.0.1:{port}/voxline" in log
    assert "hunter2secret" not in log and "--db" in log
    assert "Connection refused" in log   # libpq's own words
