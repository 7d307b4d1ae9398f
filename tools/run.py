#!/usr/bin/env python3
"""make run: starts every built voxline daemon on localhost in the
foreground, each on its default port, and stops them all on Ctrl-C (or when
one of them exits). Logs from all daemons go to this terminal.

The language model: the first models/*.gguf found is served with the
built-in engine; otherwise voxline-llm talks to an OpenAI-compatible server
at $VOXLINE_LLM_URL (default http://127.0.0.1:8080, llama.cpp's server).
With neither, everything still starts (the page works and says what is
missing) and one block on the terminal says how to fix it: `make models`
(offered on the spot when this runs on a terminal), or VOXLINE_LLM_URL.
Once the daemons are up a block says where the page is.
Extra flags per daemon: VOXLINE_RUN_<NAME>_ARGS, e.g. VOXLINE_RUN_TTS_ARGS="--voice kal".

State (the orchestrator's conversation history) stays in the build folder,
next to --bin: build/run/voxline.db for build/bin - never in the checkout.

Options (tests use them): --models DIR (default models/ of the checkout),
--port-base N (default 3000: orchestrator N, vad N+1 ... llm N+4),
--state DIR, --no-prompt (never offer the download).
"""
import argparse
import glob
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ORDER = [("vad", 1), ("stt", 2), ("tts", 3), ("llm", 4), ("orchestrator", 0)]
DEFAULT_LLM_URL = "http://127.0.0.1:8080"
RULE = "=" * 74


def say(text=""):
    print(text, file=sys.stderr, flush=True)


def answers(url, timeout=1.5):
    """True when anything HTTP answers at url (any status)."""
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def find_model(models_dir):
    models = sorted(glob.glob(os.path.join(models_dir, "*.gguf")))
    return models[0] if models else None


def offer_download(root, models_dir):
    """On a terminal: asks, then runs `make models`. The model path or None."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    say(RULE)
    say(" No language model: no %s/*.gguf and no LLM server." % os.path.relpath(models_dir))
    try:
        a = input(" Download the default one now (Qwen2.5 0.5B Instruct, ~0.7 GB,"
                  " `make models`)? [y/N] ")
    except EOFError:
        a = ""
    say(RULE)
    if a.strip().lower() not in ("y", "yes"):
        return None
    if subprocess.call(["make", "-C", root, "--no-print-directory", "models"]) != 0:
        say("run: the download did not finish (see above); starting without a model")
        return None
    return find_model(models_dir)


def llm_args(root, models_dir, prompt):
    """voxline-llm's flags and, when it has nothing to serve, the problem."""
    model = find_model(models_dir)
    if model:
        return ["--engine", "gguf", "--model", model], None, "built-in engine, " + model
    set_url = os.environ.get("VOXLINE_LLM_URL")
    url = set_url or DEFAULT_LLM_URL
    if answers(url.rstrip("/") + "/v1/models"):
        return ["--engine", "openai", "--url", url], None, "OpenAI-compatible server at " + url
    if prompt:
        model = offer_download(root, models_dir)
        if model:
            return ["--engine", "gguf", "--model", model], None, "built-in engine, " + model
    why = ("no %s/*.gguf, and nothing answers at %s%s" %
           (os.path.relpath(models_dir), url, " (VOXLINE_LLM_URL)" if set_url else ""))
    return ["--engine", "openai", "--url", url], why, None


def no_model_block(page, why):
    return "\n".join([
        "", RULE,
        " voxline is running at %s, but it has NO LANGUAGE MODEL:" % page,
        " %s." % why,
        " Replies fail until you fix it (the page says so too). Either:",
        "",
        "   1. download the default model (Qwen2.5 0.5B Instruct, ~0.7 GB;",
        "      resumable, checksum-verified), then Ctrl-C and start again:",
        "        make models && make run",
        "   2. or use an OpenAI-compatible server you run:",
        "        VOXLINE_LLM_URL=http://127.0.0.1:8080 make run    # llama.cpp llama-server",
        "        VOXLINE_LLM_URL=http://127.0.0.1:11434 make run   # Ollama",
        "        VOXLINE_LLM_URL=http://127.0.0.1:8000 make run    # vLLM",
        RULE, ""])


def ready_block(page, llm):
    return "\n".join([
        "", RULE,
        " voxline is running: open %s in a browser." % page,
        " LLM: %s. Ctrl-C stops everything." % llm,
        RULE, ""])


def wait_up(url, procs, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if answers(url + "/livez", timeout=1):
            return True
        if any(p.poll() is not None for _, p in procs):
            return False
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--models", default=None)
    ap.add_argument("--port-base", type=int, default=3000)
    ap.add_argument("--state", default=None)
    ap.add_argument("--no-prompt", action="store_true")
    a = ap.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    models_dir = os.path.abspath(a.models or os.path.join(root, "models"))
    state = a.state or os.path.join(os.path.dirname(os.path.abspath(a.bin)), "run")
    os.makedirs(state, exist_ok=True)
    port = {name: a.port_base + off for name, off in ORDER}
    url = {name: "http://127.0.0.1:%d" % p for name, p in port.items()}
    problem, llm_desc = None, None
    procs = []
    for name, _ in ORDER:
        exe = os.path.join(a.bin, "voxline-" + name)
        if not os.path.exists(exe):
            continue
        args = [exe, "--port", str(port[name])]
        if name == "llm":
            extra, problem, llm_desc = llm_args(root, models_dir, not a.no_prompt)
            args += extra
        if name == "orchestrator":
            args += ["--vad-url", url["vad"], "--stt-url", url["stt"],
                     "--llm-url", url["llm"], "--tts-url", url["tts"],
                     "--db", os.path.join(state, "voxline.db")]
        args += shlex.split(os.environ.get(f"VOXLINE_RUN_{name.upper()}_ARGS", ""))
        say("run: " + " ".join(args))
        procs.append((name, subprocess.Popen(args)))
    if not procs:
        say("run: nothing built; run `make` first")
        return 1
    stop = {"now": False}

    def on_signal(sig, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    page = url["orchestrator"]
    if wait_up(page, procs):
        time.sleep(0.5)   # let the start-up log lines land first
        say(no_model_block(page, problem) if problem else
            ready_block(page, llm_desc or "voxline-llm"))
    else:
        say("run: all started; Ctrl-C stops them")
    rc = 0
    while not stop["now"]:
        for name, p in procs:
            if p.poll() is not None:
                say(f"run: voxline-{name} exited with {p.returncode}; stopping all")
                stop["now"] = True
                rc = 1
        time.sleep(0.2)
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for _, p in procs:
        try:
            p.wait(25)
        except subprocess.TimeoutExpired:
            p.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
