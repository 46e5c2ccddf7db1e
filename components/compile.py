"""Regenerate (or check) the compiled YAML: ``python -m modelhaul.components.compile [--check | --image IMG]``.

Without options it rewrites the checked-in YAML (the published runtime: each pod pip-installs the
pinned modelhaul release). The YAML is what users load without modelhaul's Python code, so it must
match the source exactly; ``--check`` prints a diff and exits 1 on drift (the test suite does the
same). ``--image IMG`` compiles every component and the pipeline to run on ``IMG`` (an image
built from the repository's ``Dockerfile``), with no install at pod start, into ``--out``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from modelhaul.components import COMPONENTS, PIPELINE, yaml_path
from modelhaul.components.runtime import Runtime


def compiled_text(name: str, runtime: Runtime | None = None) -> str:
    """The YAML that compiling component or pipeline ``name`` on ``runtime`` (default: published) gives now."""
    from kfp import compiler

    if name == PIPELINE:
        from modelhaul.components.pipeline import build_pipeline

        obj = build_pipeline(runtime)
    else:
        from modelhaul.components.factory import build

        obj = build(name, runtime)
    with tempfile.TemporaryDirectory(prefix="modelhaul-compile-") as d:
        out = Path(d) / f"{name}.yaml"
        compiler.Compiler().compile(obj, str(out))
        return out.read_text()


def compile_all(out_dir: str | Path, runtime: Runtime | None = None) -> list[Path]:
    """Write every component's and the pipeline's YAML on ``runtime`` into ``out_dir``; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (*COMPONENTS, PIPELINE):
        path = out / f"{name}.yaml"
        path.write_text(compiled_text(name, runtime))
        written.append(path)
    return written


def drift(name: str) -> str:
    """A unified diff from the checked-in YAML of ``name`` to a fresh compile; empty when in sync."""
    path = yaml_path(name)
    old = path.read_text() if path.exists() else ""
    new = compiled_text(name)
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"{path.name} (checked in)", f"{path.name} (compiled)"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m modelhaul.components.compile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="do not write; exit 1 when any checked-in YAML is stale")
    mode.add_argument("--image", metavar="IMG",
                      help="run every component on this image (modelhaul baked in): no pip install at pod start")
    ap.add_argument("--out", metavar="DIR", default="modelhaul-kfp",
                    help="with --image: the directory to write the YAML into (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.image is not None:
        from modelhaul.components.runtime import image

        for path in compile_all(args.out, image(args.image)):
            print(f"wrote {path}")
        return 0
    stale = 0
    for name in (*COMPONENTS, PIPELINE):
        if args.check:
            diff = drift(name)
            if diff:
                stale += 1
                sys.stdout.write(diff)
        else:
            yaml_path(name).write_text(compiled_text(name))
            print(f"wrote {yaml_path(name).name}")
    if stale:
        print(f"{stale} compiled YAML file(s) out of date: run python -m modelhaul.components.compile",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
