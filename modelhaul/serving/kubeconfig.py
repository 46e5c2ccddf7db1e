"""Read kubeconfig files exactly as ``kubectl`` does, so modelhaul acts as the identity kubectl would.

The ``kubernetes`` client merges a ``KUBECONFIG`` list differently from kubectl (its
``current-context`` is the one of the *last* file that sets it), so a user who narrows their rights
with a first file would deploy with the rights of a later one. kubectl's rules (client-go's
``ClientConfigLoadingRules``), implemented here:

* ``--kubeconfig FILE`` (``kubeconfig=``): that file only; it must exist;
* else ``$KUBECONFIG``: a list joined with ``os.pathsep``; empty entries and missing files are
  skipped; the *first* file that sets a key wins: each named cluster, user and context, and
  ``current-context``;
* else ``~/.kube/config``.

``--context`` picks the context, else the merged ``current-context``. Relative file paths in a file
(certificate-authority, client-certificate/key, tokenFile) are relative to that file. The merged
dict goes to the client's ``load_kube_config_from_dict``, so exec and auth-provider plugins work
as far as the client supports them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelhaul.errors import DeployError

# (section, entry key, path fields made absolute relative to the file that names them)
_SECTIONS = (("clusters", "cluster", ("certificate-authority",)),
             ("users", "user", ("client-certificate", "client-key", "tokenFile")),
             ("contexts", "context", ()))


@dataclass(frozen=True)
class KubeConfig:
    """The merged kubeconfig, the context to use, and where they came from (for messages)."""

    data: dict[str, Any]
    context: str
    source: str  # the file, or the KUBECONFIG list, as the user named it


def files_of(kubeconfig: str | None, env: Mapping[str, str]) -> tuple[list[str], str]:
    """The files to read, in precedence order, and how to name them in a message."""
    if kubeconfig:
        # modelhaul also accepts a KUBECONFIG-style list here: a deploy result records $KUBECONFIG as is
        parts = [p for p in kubeconfig.split(os.pathsep) if p]
        if len(parts) == 1 and not os.path.isfile(os.path.expanduser(parts[0])):
            raise DeployError(f"kubeconfig {kubeconfig}: no such file")
        return [os.path.expanduser(p) for p in parts], f"kubeconfig {kubeconfig}"
    listed = env.get("KUBECONFIG") or ""
    if listed:
        return [p for p in listed.split(os.pathsep) if p], f"KUBECONFIG={listed}"
    default = os.path.expanduser("~/.kube/config")
    return [default], f"kubeconfig {default}"


def _read(path: str) -> dict[str, Any] | None:
    import yaml

    try:
        with open(path, "rb") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"kubeconfig {path}: cannot be read: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeployError(f"kubeconfig {path}: not a kubeconfig (expected a mapping with clusters, users, contexts)")
    return data


def _absolute(entry: Any, fields: tuple[str, ...], base: str) -> Any:
    if not isinstance(entry, dict):
        return entry
    out = dict(entry)
    for f in fields:
        v = out.get(f)
        if isinstance(v, str) and v and not os.path.isabs(v):
            out[f] = os.path.join(base, os.path.expanduser(v))
    return out


def merge(paths: list[str]) -> tuple[dict[str, Any], list[str]]:
    """kubectl's merge of ``paths`` (first file wins per key); also returns the files that existed."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {s: set() for s, _, _ in _SECTIONS}
    found = []
    for path in paths:
        data = _read(path)
        if data is None:
            continue
        found.append(path)
        base = os.path.dirname(os.path.abspath(path))
        for section, key, fields in _SECTIONS:
            for item in data.get(section) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str) or name in seen[section]:
                    continue
                seen[section].add(name)
                merged[section].append({"name": name, key: _absolute(item.get(key), fields, base)})
        if data.get("current-context") and "current-context" not in merged:
            merged["current-context"] = data["current-context"]
        if isinstance(data.get("preferences"), dict):
            merged.setdefault("preferences", data["preferences"])
    return merged, found


def load(kubeconfig: str | None = None, context: str | None = None,
         env: Mapping[str, str] | None = None) -> KubeConfig | None:
    """The merged kubeconfig and the context kubectl would use; None when no file exists.

    A named context that is missing, or no context at all, is a :class:`DeployError` naming the
    files and the way out.
    """
    env = os.environ if env is None else env
    paths, source = files_of(kubeconfig, env)
    data, found = merge(paths)
    if not found:
        if context:
            raise DeployError(f"--context {context}: no kubeconfig file found ({source})")
        return None
    name = context or data.get("current-context")
    if not name:
        raise DeployError(f"{source} has no current context: pass --context NAME")
    if name not in {c["name"] for c in data["contexts"]}:
        raise DeployError(f"{source} has no context {name!r}; kubectl config get-contexts lists them")
    return KubeConfig(data=data, context=name, source=source)


def client_configuration(kc: KubeConfig) -> Any:
    """A ``kubernetes.client.Configuration`` for ``kc`` (DeployError when the client refuses it)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config_from_dict(kc.data, context=kc.context, client_configuration=cfg,
                                          persist_config=False)
    except Exception as exc:  # ConfigException, missing certificate files, exec plugin failures
        raise DeployError(f"cannot load Kubernetes credentials from the {kc.source}, context {kc.context!r}: "
                          f"{exc}") from None
    return cfg
