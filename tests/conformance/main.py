#!/usr/bin/env python3
"""Starts comfyd the way ComfyUI's test suite starts ComfyUI.

ComfyUI's tests/execution suite runs `python main.py --output-directory D --listen L --port P
--extra-model-paths-config tests/execution/extra_model_paths.yaml --cpu [--cache-lru N]` from
the root of a ComfyUI checkout. Put this file there as main.py (a copy or a symbolic link):
it makes a base directory whose custom_nodes/ holds comfyd's testing pack (ComfyUI's
testing-pack, in C), then replaces itself with `comfyd serve` and the mapped flags, so the
suite's p.kill() stops comfyd itself.

Where things are found (environment variables override):
  COMFYD_BIN            the comfyd binary (default: build/debug/comfyd, else
                        build/release/comfyd, of the comfyd checkout this file lives in)
  COMFYD_TESTING_PACK   testing_pack.so (default: next to the binary's build tree, in
                        tests/conformance/testing_pack/)
  COMFYD_BASE           the base directory (default: /tmp/comfyd-conformance-<port>); it is
                        emptied at each start, as ComfyUI's in-memory state is

Standard library only. Flags the suite passes that comfyd does not need are dropped; unknown
flags are ignored.
"""
import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))  # tests/conformance -> the comfyd checkout


def find_binary():
    env = os.environ.get("COMFYD_BIN")
    if env:
        return env
    for kind in ("debug", "release"):
        path = os.path.join(REPO, "build", kind, "comfyd")
        if os.access(path, os.X_OK):
            return path
    sys.exit("main.py: comfyd not found; build it (make build) or set COMFYD_BIN")


def find_pack(binary):
    env = os.environ.get("COMFYD_TESTING_PACK")
    if env:
        return env
    candidates = [os.path.join(os.path.dirname(binary), "tests", "conformance", "testing_pack", "testing_pack.so")]
    for kind in ("debug", "release"):
        candidates.append(os.path.join(REPO, "build", kind, "tests", "conformance", "testing_pack", "testing_pack.so"))
    for path in candidates:
        if os.path.exists(path):
            return path
    sys.exit("main.py: testing_pack.so not found; build comfyd with its tests or set COMFYD_TESTING_PACK")


def main(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--listen", nargs="?", const="0.0.0.0,::", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8188)
    p.add_argument("--output-directory")
    p.add_argument("--input-directory")
    p.add_argument("--temp-directory")
    p.add_argument("--base-directory")
    p.add_argument("--extra-model-paths-config", nargs="+", action="append")
    p.add_argument("--cache-lru", type=int)
    p.add_argument("--cache-classic", action="store_true")
    p.add_argument("--cache-none", action="store_true")
    p.add_argument("--disable-metadata", action="store_true")
    p.add_argument("--verbose", nargs="?", const="DEBUG")
    args, _unknown = p.parse_known_args(argv)

    binary = find_binary()
    pack = find_pack(binary)
    base = args.base_directory or os.environ.get("COMFYD_BASE") or "/tmp/comfyd-conformance-%d" % args.port
    if not args.base_directory:
        shutil.rmtree(base, ignore_errors=True)
    pack_dir = os.path.join(base, "custom_nodes", "testing-pack")
    os.makedirs(pack_dir, exist_ok=True)
    target = os.path.join(pack_dir, "testing_pack.so")
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(os.path.abspath(pack), target)

    cmd = [binary, "serve", "--listen", args.listen, "--port", str(args.port), "--base-directory", base]
    for flag in ("output_directory", "input_directory", "temp_directory"):
        value = getattr(args, flag)
        if value:
            cmd += ["--" + flag.replace("_", "-"), os.path.abspath(value)]
    for group in args.extra_model_paths_config or []:
        cmd += ["--extra-model-paths-config"] + group
    if args.cache_lru is not None:
        cmd += ["--cache-lru", str(args.cache_lru)]
    if args.cache_none:
        cmd.append("--cache-none")
    if args.disable_metadata:
        cmd.append("--disable-metadata")
    if args.verbose:
        cmd += ["--verbose", args.verbose]
    sys.stdout.flush()
    os.execv(binary, cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
