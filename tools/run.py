#!/usr/bin/env python3
"""make run: starts every built voxline daemon on localhost in the
foreground, each on its default port, and stops them all on Ctrl-C (or when
one of them exits). Logs from all daemons go to this terminal.

The language model: the first models/*.gguf found is served with the
built-in engine; otherwise voxline-llm talks to an OpenAI-compatible server
at $VOXLINE_LLM_URL (default http://127.0.0.1:8080, llama.cpp's server).
Extra flags per daemon: VOXLINE_RUN_<NAME>_ARGS, e.g. VOXLINE_RUN_TTS_ARGS="--voice kal".

State (the orchestrator's conversation history) stays in the build folder,
next to --bin: build/run/voxline.db for build/bin - never in the checkout.
"""
import argparse
import glob
import os
import shlex
import signal
import subprocess
import sys
import time

ORDER = [("vad", 3001), ("stt", 3002), ("tts", 3003), ("llm", 3004),
         ("orchestrator", 3000)]


def llm_args(root):
    models = sorted(glob.glob(os.path.join(root, "models", "*.gguf")))
    if models:
        return ["--engine", "gguf", "--model", models[0]]
    url = os.environ.get("VOXLINE_LLM_URL", "http://127.0.0.1:8080")
    print(f"run: no models/*.gguf (see `make models`); voxline-llm will use the "
          f"OpenAI-compatible server at {url}", file=sys.stderr)
    return ["--engine", "openai", "--url", url]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    a = ap.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    state = os.path.join(os.path.dirname(os.path.abspath(a.bin)), "run")
    os.makedirs(state, exist_ok=True)
    procs = []
    for name, port in ORDER:
        exe = os.path.join(a.bin, "voxline-" + name)
        if not os.path.exists(exe):
            continue
        args = [exe, "--port", str(port)]
        if name == "llm":
            args += llm_args(root)
        if name == "orchestrator":
            args += ["--vad-url", "http://127.0.0.1:3001",
                     "--stt-url", "http://127.0.0.1:3002",
                     "--llm-url", "http://127.0.0.1:3004",
                     "--tts-url", "http://127.0.0.1:3003",
                     "--db", os.path.join(state, "voxline.db")]
        args += shlex.split(os.environ.get(f"VOXLINE_RUN_{name.upper()}_ARGS", ""))
        print("run:", " ".join(args), file=sys.stderr, flush=True)
        procs.append((name, subprocess.Popen(args)))
    if not procs:
        print("run: nothing built; run `make` first", file=sys.stderr)
        return 1
    print("run: all started; Ctrl-C stops them", file=sys.stderr, flush=True)
    stop = {"now": False}

    def on_signal(sig, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    while not stop["now"]:
        for name, p in procs:
            if p.poll() is not None:
                print(f"run: voxline-{name} exited with {p.returncode}; stopping all",
                      file=sys.stderr)
                stop["now"] = True
                rc = 1
        time.sleep(0.2)
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for _, p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
