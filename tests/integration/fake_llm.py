"""tests/llm_upstream.py (the scripted OpenAI / Ollama upstream) run as a
subprocess for the integration tests, with its /debug routes as methods.

    u = LlmUpstream(); start("llm", "--url", u.url); ...; u.requests(); u.stop()

Import with `from fake_llm import LlmUpstream` (pytest puts this folder,
the one of conftest.py, on sys.path)."""
import http.client
import json
import os
import subprocess

from conftest import PYTHON, ROOT

UPSTREAM = os.path.join(ROOT, "tests", "llm_upstream.py")


class LlmUpstream:
    """One tests/llm_upstream.py process on a free loopback port."""

    def __init__(self):
        self.proc = subprocess.Popen([PYTHON, UPSTREAM, "--port", "0"],
                                     stdout=subprocess.PIPE)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path)
        body = c.getresponse().read()
        c.close()
        return json.loads(body) if body else None

    def requests(self, request_id=None):
        """The chat requests it got (each with its "body"), oldest first;
        only those with that X-Request-Id when request_id is given."""
        recs = self._call("GET", "/debug/requests")
        return [r for r in recs
                if request_id is None or r.get("request_id") == request_id]

    def closes(self):
        """The requests whose client left before the end."""
        return self._call("GET", "/debug/closes")

    def reset(self):
        self._call("POST", "/debug/reset")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
