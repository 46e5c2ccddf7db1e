"""Which runtime image serves a model on each target, and which ONNX models it can load.

The operators pick the image, not modelhaul: Seldon Core v1 from its ConfigMap
``seldon-system/seldon-config`` (``predictor_servers``), KServe from the ClusterServingRuntime.
Their defaults (below) are the images the released charts name; a cluster's own choice is read
from it when it lets us. An ONNX model is loaded by the ONNX Runtime inside Triton, which refuses
a newer IR version or opset than it knows, so:

* ``convert`` (no ``--opset``) writes the newest opset every default runtime reads;
* ``deploy`` refuses, before applying anything, an ONNX model newer than the runtime that would
  serve it, naming both.

Only facts checked against the releases are in the tables; an image not listed is not checked.
"""

from __future__ import annotations

import re
from typing import Any

from modelhaul.errors import DeployError

#: Triton release -> the ONNX Runtime of its onnxruntime backend
TRITON_ORT = {"21.08": "1.8.1", "23.05": "1.15.0"}
#: ONNX Runtime (major.minor) -> (newest IR version, newest ai.onnx opset) it loads
ORT_READS = {"1.8": (7, 14), "1.15": (9, 19)}
_TRITON_TAG = re.compile(r"tritonserver:(\d\d\.\d\d)")


def onnx_limits(image: str) -> tuple[str, int, int] | None:
    """``(ONNX Runtime version, newest IR, newest opset)`` of a Triton image, None when not known."""
    m = _TRITON_TAG.search(image or "")
    ort = TRITON_ORT.get(m.group(1)) if m else None
    if not ort:
        return None
    return (ort, *ORT_READS[".".join(ort.split(".")[:2])])


def opset_for(target: str | None = None) -> int:
    """The newest opset the default ONNX runtime of ``target`` (of every target: None) reads."""
    from modelhaul.serving import targets

    images = [targets.get(target).onnx_image] if target else [t.onnx_image for t in targets.TABLE.values()]
    return min(limits[2] for limits in map(onnx_limits, images) if limits)


def onnx_image(target: str, api: Any = None, request: Any = None) -> str:
    """The image that will serve an ONNX model: the cluster's choice when readable, else the default."""
    from modelhaul.serving import targets

    row = targets.get(target)
    if api is not None:
        try:
            return row.cluster_onnx_image(api, request)
        except Exception:  # noqa: BLE001 - not readable here: the release's default
            pass
    return row.onnx_image


def onnx_image_of(target: str, *, kubeconfig: str | None, context: str | None, in_cluster: bool) -> str:
    """:func:`onnx_image` of the cluster ``kubeconfig``/``context`` names."""
    from modelhaul.serving.kube import _request, connect

    with connect(kubeconfig, context, in_cluster) as api:
        return onnx_image(target, api, _request)


def check_loadable(ref: str, labels: dict[str, str], image: str) -> None:
    """:class:`DeployError` when the ONNX model (its config labels) is newer than ``image`` reads."""
    limits = onnx_limits(image)
    ir, opset = labels.get("modelhaul.onnx-ir"), labels.get("modelhaul.opset")
    if not limits or not (ir or opset):
        return
    ort, max_ir, max_opset = limits
    if (ir and int(ir) > max_ir) or (opset and int(opset) > max_opset):
        raise DeployError(
            f"{ref}: ONNX IR {ir or '?'} / opset {opset or '?'} is newer than the runtime {image} loads (ONNX Runtime "
            f"{ort}: IR <= {max_ir}, opset <= {max_opset}); convert it again with --opset {max_opset}, or serve "
            "it on a newer runtime image")
