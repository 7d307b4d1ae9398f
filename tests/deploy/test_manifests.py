"""Kubernetes manifests, Prometheus config and rules, the Grafana dashboard
(issue 9, items 8 and 9), checked with real tools on the shipped files:

- deploy/k8s/*.yaml against the Kubernetes API schema with the validators of
  the npm package kubernetes-models (the API's OpenAPI schemas compiled into
  it: offline; installed in build/npm/ by deploy/container.mk), plus unknown
  fields (which those validators, like the API server's non-strict mode,
  let through) against the field lists of Debian's python3-kubernetes
  models; then what the issue asks of them: readiness /readyz, liveness
  /livez, requests and limits, grace > --drain-s, no preStop, the LLM on GPU
  nodes, a Service and a PodDisruptionBudget per Deployment that select its
  pods, and every ConfigMap key a flag the daemon has (its --help).
- deploy/prometheus: `promtool check config`, `promtool check rules`,
  `promtool test rules` (the alerts fire on synthetic series).
- the real daemons (VOXLINE_BIN) on loopback serve a spoken turn; every
  metric name (and label matcher) used by the dashboard and the rules exists
  in their /metrics; Debian's prometheus scrapes them with the shipped
  scrape config (targets moved to loopback) and every dashboard query
  evaluates there, the voice-to-voice and per-stage panels with data.

Time: ~30 s (daemons start, one turn, Prometheus scrapes for a few seconds).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
import yaml

from lb_util import bin_path, free_ports, need

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VOXLINE_BIN", os.path.join(ROOT, "build", "bin"))
PYTHON = "/usr/bin/python3"
K8S = os.path.join(ROOT, "deploy", "k8s")
PROM = os.path.join(ROOT, "deploy", "prometheus")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "voxline.json")
NPM_DIR = os.path.join(ROOT, "build", "npm")
K8S_MODELS = os.path.join(NPM_DIR, "node_modules", "kubernetes-models")
DAEMONS = ("orchestrator", "vad", "stt", "tts", "llm")
PORTS = {"orchestrator": 3000, "vad": 3001, "stt": 3002, "tts": 3003, "llm": 3004}


def http(method, url, body=None, headers=None, timeout=60):
    assert url.startswith("http://127.0.0.1:"), url
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------- Kubernetes

def k8s_docs():
    docs = []
    for f in sorted(os.listdir(K8S)):
        if not f.endswith(".yaml") or f == "kustomization.yaml":
            continue
        with open(os.path.join(K8S, f)) as fh:
            for d in yaml.safe_load_all(fh):
                if d:
                    docs.append((f, d))
    return docs


def by_kind(kind):
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == kind}


NODE_VALIDATE = r"""
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const root = process.argv[2];
const docs = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const [file, d] of docs) {
  const [group, version] = d.apiVersion.includes("/") ? d.apiVersion.split("/") : [null, d.apiVersion];
  const mod = pathToFileURL(`${root}/${group ? group + "/" : ""}${version}/${d.kind}.js`).href;
  let Model;
  try { Model = (await import(mod))[d.kind]; } catch (e) {
    console.log(`${file}: ${d.kind} ${d.apiVersion}: no schema (${e.message})`); bad++; continue;
  }
  try { new Model(d).validate(); console.log(`${file}: ${d.kind}/${d.metadata.name}: valid`); }
  catch (e) { console.log(`${file}: ${d.kind}/${d.metadata.name}: INVALID ${e.message}`); bad++; }
}
process.exit(bad ? 1 : 0);
"""


def test_k8s_schema():
    """Every manifest against the Kubernetes API's OpenAPI schema."""
    need("node")
    assert os.path.exists(os.path.join(K8S_MODELS, "package.json")), \
        f"kubernetes-models is not installed in {NPM_DIR} (run `make k8s-validator`; " \
        f"`make test-deploy` does)"
    docs = [(f, d) for f, d in k8s_docs()]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "validate.mjs")
        with open(script, "w") as f:
            f.write(NODE_VALIDATE)
        p = subprocess.run(["node", script, K8S_MODELS], input=json.dumps(docs),
                           capture_output=True, text=True, timeout=120)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": valid") == len(docs), p.stdout
    # the validator is real: a wrong type is refused
    bad = [("bad.yaml", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                         "spec": {"replicas": "two", "selector": {}, "template": {}}})]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "validate.mjs")
        with open(script, "w") as f:
            f.write(NODE_VALIDATE)
        p = subprocess.run(["node", script, K8S_MODELS], input=json.dumps(bad),
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "replicas must be integer" in p.stdout, p.stdout + p.stderr


def _walk(obj, typename, path, errs):
    import kubernetes.client as kc
    if obj is None:
        return
    if typename.startswith("list["):
        assert isinstance(obj, list), f"{path}: expected a list"
        for i, x in enumerate(obj):
            _walk(x, typename[5:-1], f"{path}[{i}]", errs)
        return
    if typename.startswith("dict("):
        inner = typename[5:-1].split(",", 1)[1].strip()
        for k, v in obj.items():
            _walk(v, inner, f"{path}.{k}", errs)
        return
    if typename in ("str", "int", "bool", "float", "object", "datetime", "date"):
        want = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(typename)
        if want and not isinstance(obj, want):
            errs.append(f"{path}: {obj!r} is not {typename}")
        return
    cls = getattr(kc, typename)
    rev = {j: p for p, j in cls.attribute_map.items()}
    if not isinstance(obj, dict):
        errs.append(f"{path}: expected an object ({typename})")
        return
    for k, v in obj.items():
        if k not in rev:
            errs.append(f"{path}.{k}: no such field in {typename}")
        else:
            _walk(v, cls.openapi_types[rev[k]], f"{path}.{k}", errs)


def test_k8s_no_unknown_fields():
    """A misspelt field (say `readinesProbe`) would be dropped silently by the
    API server; every field must exist in the API's models."""
    errs = []
    for f, d in k8s_docs():
        version = d["apiVersion"].split("/")[-1]
        _walk(d, version.capitalize() + d["kind"], f"{f}:{d['kind']}", errs)
    assert not errs, "\n".join(errs)
    errs = []
    _walk({"spec": {"replicass": 2}}, "V1Deployment", "probe", errs)
    assert errs, "the unknown-field check finds nothing"


def daemon_flags(name):
    p = subprocess.run([bin_path(name), "--help"], capture_output=True, text=True, timeout=10)
    return set(re.findall(r"env (VOXLINE_[A-Z0-9_]+)", p.stdout + p.stderr))


def test_k8s_deployments():
    deps, svcs, pdbs = by_kind("Deployment"), by_kind("Service"), by_kind("PodDisruptionBudget")
    cms = by_kind("ConfigMap")
    assert set(deps) == {f"voxline-{d}" for d in DAEMONS}, sorted(deps)
    cm = cms["voxline-config"]["data"]
    flags = {d: daemon_flags(d) for d in DAEMONS}
    for key in cm:
        svc = key.split("_")[1].lower()
        assert svc in flags, f"ConfigMap key {key}: no daemon {svc}"
        assert key in flags[svc], f"ConfigMap key {key}: voxline-{svc} has no such flag"
    for d in DAEMONS:
        name = f"voxline-{d}"
        dep = deps[name]
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        sel = dep["spec"]["selector"]["matchLabels"]
        assert all(labels.get(k) == v for k, v in sel.items()), (name, sel, labels)
        (c,) = pod["containers"]
        assert c["command"] == [name], c["command"]
        port = c["ports"][0]
        assert port["containerPort"] == PORTS[d] and port["name"] == "http"
        assert c["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/healthz")
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert "lifecycle" not in c, f"{name}: the daemons drain on SIGTERM; no preStop"
        for k in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][k]), (name, k)
        drain = int(cm.get(f"VOXLINE_{d.upper()}_DRAIN_S", 15))
        delay = int(cm.get(f"VOXLINE_{d.upper()}_DRAIN_DELAY_S", 5))
        assert delay < drain < pod["terminationGracePeriodSeconds"], (name, delay, drain)
        assert {"configMapRef": {"name": "voxline-config"}} in c["envFrom"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        # Service links would set VOXLINE_<SVC>_PORT=tcp://... (the Service
        # voxline-<svc>), which the daemons read as their --port flag.
        assert pod.get("enableServiceLinks") is False, name
        assert any(m["mountPath"] == "/var/lib/voxline" for m in c["volumeMounts"])
        # Service and PDB select exactly these pods
        svc = svcs[name]
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
        assert svc["spec"]["ports"][0]["port"] == PORTS[d]
        assert svc["spec"]["ports"][0]["targetPort"] in ("http", PORTS[d])
        pdb = pdbs[name]
        assert pdb["spec"]["selector"]["matchLabels"] == sel
        assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])
        gpu = d == "llm"
        assert ("nodeSelector" in pod and "tolerations" in pod) == gpu, name
    # the orchestrator finds the others through their Services
    for d in ("vad", "stt", "tts", "llm"):
        assert cm[f"VOXLINE_ORCHESTRATOR_{d.upper()}_URL"] == f"http://voxline-{d}:{PORTS[d]}"
    # the llm's GPU resource is offered, commented, in its file
    assert "nvidia.com/gpu" in open(os.path.join(K8S, "llm.yaml")).read()
    # kustomization lists every file
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml")
    assert sorted(kust["resources"]) == files


def test_compose_files_use_real_flags():
    """Environment keys the compose files give the daemons are their flags."""
    flags = {d: daemon_flags(d) for d in DAEMONS}
    for f in ("compose.cpu.yaml", "compose.gpu.yaml"):
        doc = yaml.safe_load(open(os.path.join(ROOT, "deploy", "container", f)))
        for name, svc in doc["services"].items():
            assert svc["command"] == [f"voxline-{name}"], (f, name)
            env = svc.get("environment") or {}
            keys = list(env) if isinstance(env, dict) else [e.split("=")[0].split()[0] for e in env]
            for k in keys:
                assert k in flags[name], f"{f}: {name}: {k} is not a flag of voxline-{name}"


# ---------------------------------------------------------------- Prometheus

def promtool(*args):
    need("promtool")
    p = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=PROM)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_promtool_config_and_rules():
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in promtool("check", "rules", "voxline.rules.yml")
    assert "SUCCESS" in promtool("test", "rules", "voxline.rules.test.yml")
    cfg = yaml.safe_load(open(os.path.join(PROM, "prometheus.yml")))
    jobs = {j["job_name"] for j in cfg["scrape_configs"]}
    assert {f"voxline-{d}" for d in DAEMONS} <= jobs, jobs
    alerts = {r["alert"] for g in yaml.safe_load(open(os.path.join(PROM, "voxline.rules.yml")))["groups"]
              for r in g["rules"] if "alert" in r}
    for a in ("VoxlineDaemonDown", "VoxlineErrorRate", "VoxlineRejecting",
              "VoxlineVoiceToVoiceSlow"):
        assert a in alerts, alerts


def dashboard_exprs():
    dash = json.load(open(DASHBOARD))
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def rules_exprs():
    doc = yaml.safe_load(open(os.path.join(PROM, "voxline.rules.yml")))
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in doc["groups"] for r in g["rules"]]


def concrete(expr, rate="30s"):
    """A dashboard expression with Grafana's variables filled in."""
    return (expr.replace("$__rate_interval", rate).replace('=~"$job"', '=~"voxline-.*"')
            .replace('=~"$instance"', '=~".*"'))


@pytest.fixture(scope="module")
def stack():
    """The five daemons on free loopback ports, one spoken turn through the
    orchestrator, and their /metrics texts."""
    for d in DAEMONS:
        bin_path(d)
    tmp = tempfile.mkdtemp(prefix="vx-manifests-")
    model = os.path.join(tmp, "tiny.gguf")
    subprocess.run([PYTHON, os.path.join(ROOT, "tests", "gguf", "mkgguf.py"), model],
                   check=True, capture_output=True, timeout=120)
    ports = dict(zip(DAEMONS, free_ports(len(DAEMONS))))
    url = {d: f"http://127.0.0.1:{p}" for d, p in ports.items()}
    args = {
        "vad": [], "stt": [], "tts": [],
        "llm": ["--engine", "gguf", "--model", model],
        "orchestrator": ["--db", os.path.join(tmp, "voxline.db"),
                         "--vad-url", url["vad"], "--stt-url", url["stt"],
                         "--tts-url", url["tts"], "--llm-url", url["llm"]],
    }
    procs = {}
    try:
        for d in ("vad", "stt", "tts", "llm", "orchestrator"):
            log = open(os.path.join(tmp, f"{d}.log"), "w")
            procs[d] = subprocess.Popen([bin_path(d), "--host", "127.0.0.1", "--port",
                                         str(ports[d]), *args[d]], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        for d in DAEMONS:
            while True:
                assert procs[d].poll() is None, \
                    f"voxline-{d} exited: " + open(os.path.join(tmp, f"{d}.log")).read()[-2000:]
                try:
                    st, body = http("GET", url[d] + "/healthz", timeout=2)
                    if st == 200 and (d != "orchestrator" or all(
                            u.get("healthy") for u in json.loads(body)["upstreams"].values())):
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"voxline-{d} not ready"
                time.sleep(0.2)
        st, wav = http("POST", url["tts"] + "/synthesize",
                       json.dumps({"text": "hello world"}).encode(),
                       {"Content-Type": "application/json"})
        assert st == 200, wav
        assert http("POST", url["vad"] + "/detect", wav, {"Content-Type": "audio/wav"})[0] == 200
        assert http("POST", url["stt"] + "/transcribe", wav, {"Content-Type": "audio/wav"})[0] == 200
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"h.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode() + wav + \
            f"\r\n--{boundary}--\r\n".encode()
        st, turn = http("POST", url["orchestrator"] + "/chat", body,
                        {"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=120)
        assert st == 200, turn
        metrics = {}
        for d in DAEMONS:
            st, text = http("GET", url[d] + "/metrics")
            assert st == 200
            metrics[d] = text.decode()
        yield {"ports": ports, "metrics": metrics, "tmp": tmp}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SELECTOR = re.compile(r"(?<![\w:])(voxline_[a-z0-9_]+)(?![\w:])(\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"')


def series_of(metrics):
    """metric name -> list of label dicts, over every daemon's /metrics."""
    out = {}
    for text in metrics.values():
        for line in text.splitlines():
            m = SAMPLE.match(line)
            if m and not line.startswith("#"):
                out.setdefault(m.group(1), []).append(dict(LABEL.findall(m.group(3) or "")))
    return out


def test_metric_names_exist(stack):
    """Every voxline_* metric (and each label it is matched on) that the
    dashboard and the rules use is served by some daemon."""
    series = series_of(stack["metrics"])
    used = dashboard_exprs() + rules_exprs()
    assert len(used) > 20
    errs = []
    names = set()
    for title, expr in used:
        for m in SELECTOR.finditer(expr):
            name = m.group(1)
            names.add(name)
            if name not in series:
                errs.append(f"{title}: {name} is served by no daemon")
                continue
            have = series[name]
            for lname, op, val in MATCHER.findall(m.group(3) or ""):
                if lname in ("job", "instance"):
                    continue
                if not any(lname in s for s in have):
                    errs.append(f"{title}: {name} has no label {lname}")
                elif op == "=" and not any(s.get(lname) == val for s in have):
                    errs.append(f"{title}: {name}{{{lname}=\"{val}\"}} is never served")
                # (regex matchers are not checked for values: a label such as
                # code="503" appears only once such an answer was counted)
    # recorded series the alerts use are recorded
    records = {n for n, _ in rules_exprs()}
    for title, expr in rules_exprs():
        for r in re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", expr):
            if r not in records:
                errs.append(f"{title}: {r} is recorded by no rule")
    assert not errs, "\n".join(errs)
    # the panels the issue asks for are there
    for want in ("voxline_orch_calls", "voxline_orch_turn_seconds_bucket",
                 "voxline_orch_stage_errors_total", "voxline_rejected_total",
                 "voxline_http_requests_total"):
        assert want in names, want


def test_prometheus_scrapes_and_dashboard_queries(stack):
    """Debian's Prometheus with the shipped scrape config (targets moved to
    the test's loopback ports) scrapes all five jobs; every dashboard and rule
    expression evaluates; the call, voice-to-voice and per-stage panels have
    data."""
    need("prometheus")
    cfg = yaml.safe_load(open(os.path.join(PROM, "prometheus.yml")))
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    cfg["global"]["scrape_timeout"] = "1s"
    cfg["rule_files"] = [os.path.join(PROM, r) for r in cfg.get("rule_files", [])]
    for job in cfg["scrape_configs"]:
        d = job["job_name"].removeprefix("voxline-")
        if d in stack["ports"]:
            for sc in job["static_configs"]:
                sc["targets"] = [f"127.0.0.1:{stack['ports'][d]}"]
    tmp = stack["tmp"]
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        yaml.safe_dump(cfg, f)
    (pport,) = free_ports(1)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml",
                             f"--storage.tsdb.path={tmp}/tsdb",
                             f"--web.listen-address=127.0.0.1:{pport}"],
                            stdout=log, stderr=log)
    base = f"http://127.0.0.1:{pport}"

    def query(q):
        st, body = http("GET", base + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        r = json.loads(body)
        assert st == 200 and r["status"] == "success", (q, r)
        return r["data"]["result"]
    try:
        deadline = time.monotonic() + 60
        while True:
            assert prom.poll() is None, open(os.path.join(tmp, "prometheus.log")).read()[-3000:]
            try:
                up = query('up{job=~"voxline-.*"} == 1')
                # two scrapes of each, so rate() has points
                n = query('count_over_time(up{job=~"voxline-.*"}[1m]) >= 3')
                if len(up) == 5 and len(n) == 5:
                    break
            except (OSError, AssertionError, ValueError):
                pass
            assert time.monotonic() < deadline, "Prometheus did not scrape all five daemons"
            time.sleep(0.5)
        assert sorted(r["metric"]["job"] for r in up) == sorted(f"voxline-{d}" for d in DAEMONS)
        empty = []
        for title, expr in dashboard_exprs() + rules_exprs():
            res = query(concrete(expr, "1m"))
            if not res:
                empty.append(title)
        # rates of the one turn are nonzero over the last minute: these have data
        for title in ("Conversations open", "Voice-to-voice percentiles",
                      "Per-stage latency p95", "Request latency p95 by daemon",
                      "Requests per second by daemon and status", "Daemons up"):
            assert title not in empty, f"dashboard panel {title!r} has no data"
        print("queries without data (no errors/rejections happened):", sorted(set(empty)))
    finally:
        prom.terminate()
        try:
            prom.wait(20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()


def test_dashboard_shape():
    dash = json.load(open(DASHBOARD))
    assert dash["uid"] == "voxline" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for w in ("conversations", "voice-to-voice", "per-stage", "5xx", "rejected"):
        assert w in titles, w
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
