"""Refresh the CRD schemas modelhaul vendors (``modelhaul/serving/schemas/``), run by hand.

Usage: ``python devtools/vendor_crd_schemas.py [CRD_DIR] [--check]``. ``CRD_DIR`` holds the CRD
files each serving target's row names (``crd.file`` in ``modelhaul/serving/targets.py``; default
``../shared/crds`` beside the checkout). Each schema is written as compact JSON with every
``description`` removed; ``--check`` writes nothing and exits 1 naming the stale ones. Run it after
adding a target or moving to a new operator release, and commit the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from modelhaul.serving import targets
from modelhaul.serving.validate import vendored_dir

CRD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "crds"


def compact_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version`` in a CRD, with every ``description`` removed."""
    for v in crd.get("spec", {}).get("versions", []):
        if v.get("name") == version:
            return _strip_descriptions(v["schema"]["openAPIV3Schema"])
    raise SystemExit(f"CRD {crd.get('metadata', {}).get('name')}: no version {version!r}")


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_descriptions(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "description":
            continue
        if k == "properties":  # a map of field names: a field may itself be called "description"
            out[k] = {name: _strip_descriptions(s) for name, s in v.items()}
        else:
            out[k] = _strip_descriptions(v)
    return out


def schemas_from_crds(crd_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{vendored file name: compact schema}`` computed from the CRD files in ``crd_dir``."""
    import yaml

    out = {}
    for row in targets.TABLE.values():
        with open(Path(crd_dir) / row.crd.file, encoding="utf-8") as f:
            crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        out[row.crd.vendored] = compact_schema(crd, row.crd.version)
    return out


def dumps_schema(schema: dict[str, Any]) -> str:
    """The vendored file's exact text (sorted keys, compact, final newline): stable diffs."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    """(Re)write the vendored schemas, or with ``--check`` say which are stale (exit 1)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if len(args) > 1:
        print("usage: python devtools/vendor_crd_schemas.py [CRD_DIR] [--check]", file=sys.stderr)
        return 2
    out_dir = Path(str(vendored_dir()))
    stale = []
    for name, schema in schemas_from_crds(args[0] if args else CRD_DIR).items():
        text = dumps_schema(schema)
        target = out_dir / name
        if check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {name} ({len(text)} bytes)")
    if stale:
        print(f"stale vendored schemas: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
