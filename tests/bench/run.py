#!/usr/bin/env python3
"""make bench: runs every tests/bench/bench_*.py (or those named on the
command line) one after another and prints their figures. Benchmarks print
numbers; they never fail on a wall-clock figure. Each bench_*.py has a
main(bin_dir, tools_dir) function."""
import argparse
import glob
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "..", "build", "bin"))
    ap.add_argument("--tools", default=os.path.join(HERE, "..", "..", "build", "tools"))
    ap.add_argument("only", nargs="*", help="bench names, e.g. http llm")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if a.only:
        files = [f for f in files if any(f"bench_{n}.py" in f for n in a.only)]
    failed = []
    for f in files:
        name = os.path.basename(f)[6:-3]
        print(f"\n=== bench {name} ===", flush=True)
        spec = importlib.util.spec_from_file_location(f"bench_{name}", f)
        mod = importlib.util.module_from_spec(spec)
        t0 = time.time()
        try:
            spec.loader.exec_module(mod)
            mod.main(os.path.abspath(a.bin), os.path.abspath(a.tools))
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"--- {name}: {time.time() - t0:.1f} s", flush=True)
    if failed:
        print("benchmarks that could not run:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
