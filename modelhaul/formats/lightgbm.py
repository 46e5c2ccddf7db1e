"""LightGBM text models (``Booster.save_model``: ``.txt``, ``.lgb``, ``.model``).

The header (everything before ``Tree=0``) says the objective, classes, features and the size of
every tree, so parsing reads only the header and checks the file is long enough to hold the trees.
"""

from __future__ import annotations

from pathlib import Path

from modelhaul.formats.base import CONTENT, NO, ParsedModel, Probe, fail, tensor

_HEADER_LIMIT = 16 << 20


def sniff(p: Probe) -> int:
    return CONTENT if not p.is_zip and looks_like(p.head) else NO


def looks_like(head: bytes) -> bool:
    return head.startswith((b"tree\n", b"tree\r\n"))


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    header: dict[str, str] = {}
    consumed = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                consumed += len(raw)
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("Tree=") or consumed > _HEADER_LIMIT:
                    break
                key, sep, value = line.partition("=")
                if sep:
                    header[key] = value
            size = fh.seek(0, 2)
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None
    if "max_feature_idx" not in header:
        raise fail(path, "not a LightGBM text model (no max_feature_idx in the header); the file is corrupt "
                         "or truncated")
    tree_sizes = [int(x) for x in header.get("tree_sizes", "").split() if x.isdigit()]
    if tree_sizes and size < consumed + sum(tree_sizes) - len(raw):
        raise fail(path, f"LightGBM model declares {sum(tree_sizes)} bytes of trees but the file has only "
                         f"{size} bytes: it is truncated")
    n_features = int(header["max_feature_idx"]) + 1
    n_class = int(header.get("num_class", "1"))
    objective = header.get("objective", "")
    classifier = objective.split(" ", 1)[0] in ("binary", "multiclass", "multiclassova", "cross_entropy")
    if classifier:
        outputs = [tensor("label", "int64", [-1]), tensor("probabilities", "float32", [-1, max(n_class, 2)])]
    else:
        outputs = [tensor("variable", "float32", [-1, 1])]
    return ParsedModel(format="LightGBM", framework="LightGBM", path=path,
                       inputs=[tensor("input", "float32", [-1, n_features])], outputs=outputs,
                       layers={"Tree": len(tree_sizes)}, framework_version=header.get("version"),
                       details={"objective": objective, "num_class": n_class, "classifier": classifier,
                                "feature_names": header.get("feature_names", "").split()})
