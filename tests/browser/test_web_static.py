"""The page's files as the orchestrator serves them: content types, ETag
and Cache-Control, 304 on revalidation, the favicon, the built-in copy when
--web-root has none, a JSON 404 for anything else."""
import urllib.error
import urllib.request

FILES = {"/": "text/html", "/static/app.js": "text/javascript", "/static/audio.js": "text/javascript",
         "/static/chart.js": "text/javascript", "/static/mic-worklet.js": "text/javascript",
         "/static/style.css": "text/css", "/static/favicon.svg": "image/svg+xml",
         "/favicon.ico": "image/svg+xml"}


def get(url, headers=None):
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}))
        return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_files_types_and_caching(stack):
    orch = stack.orch("--web-root", "/nonexistent")   # the built-in copies
    total = 0
    for path, ctype in FILES.items():
        status, h, body = get(orch.url + path)
        assert status == 200 and h["Content-Type"].startswith(ctype), (path, status, h["Content-Type"])
        assert h["Cache-Control"] == "no-cache" and h["ETag"].startswith('"'), (path, dict(h))
        assert h["X-Content-Type-Options"] == "nosniff"
        status, h2, body2 = get(orch.url + path, {"If-None-Match": h["ETag"]})
        assert status == 304 and body2 == b"" and h2["ETag"] == h["ETag"], (path, status)
        assert get(orch.url + path, {"If-None-Match": '"other"'})[0] == 200
        total += len(body) if path != "/favicon.ico" else 0
    assert total < 100 * 1024, total   # the whole page, uncompressed
    for bad in ("/static/", "/static/nope.js", "/static/../main.c", "/static/web.mk", "/index.htm"):
        status, h, body = get(orch.url + bad)
        assert status == 404 and h["Content-Type"] == "application/json", (bad, status)


def test_web_root_overrides_per_file(stack, tmp_path):
    (tmp_path / "style.css").write_text("body { color: red }\n")
    orch = stack.orch("--web-root", str(tmp_path))
    status, h, body = get(orch.url + "/static/style.css")
    assert status == 200 and body == b"body { color: red }\n"
    status, h, body = get(orch.url + "/static/app.js")   # not in the folder: built-in
    assert status == 200 and b"/ws/chat" in body
