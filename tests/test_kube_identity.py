"""modelhaul acts as the identity kubectl would, for every way of naming a kubeconfig (issue 22).

Against the real kube-apiserver (tests/fixtures/cluster.py): two kubeconfig files, ``admin.yaml``
(the cluster's admin) and ``nobody.yaml`` (a ServiceAccount token with no rights, whose context
``local`` shadows the admin's context of the same name). ``kubectl auth whoami`` is the reference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from modelhaul.errors import DeployError
from modelhaul.serving import access, kube
from modelhaul.serving.cluster import find_cluster


@pytest.fixture(scope="module")
def files(kube_cluster, tmp_path_factory) -> dict[str, str]:
    ns = kube_cluster.namespace("who")
    kube_cluster.kubectl("-n", ns, "create", "serviceaccount", "nobody")
    token = kube_cluster.kubectl("-n", ns, "create", "token", "nobody").stdout.strip()
    d = tmp_path_factory.mktemp("kubeconfigs")
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    nobody = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
              "users": [{"name": "nobody", "user": {"token": token}}],
              "contexts": [{"name": "local", "context": {"cluster": "local", "user": "nobody"}},
                           {"name": "nobody", "context": {"cluster": "local", "user": "nobody"}}],
              "current-context": "nobody"}
    both = {**admin, "users": admin["users"] + nobody["users"],
            "contexts": admin["contexts"] + [nobody["contexts"][1]]}
    out = {}
    for name, data in (("admin", admin), ("nobody", nobody), ("both", both)):
        (d / f"{name}.yaml").write_text(yaml.safe_dump(data))
        out[name] = str(d / f"{name}.yaml")
    out["missing"] = str(d / "missing.yaml")
    out["sa"] = f"system:serviceaccount:{ns}:nobody"
    return out


def kubectl_whoami(env_kubeconfig: str | None, flags: list[str]) -> str:
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    if env_kubeconfig is not None:
        env["KUBECONFIG"] = env_kubeconfig
    r = subprocess.run(["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", *flags],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def modelhaul_whoami(monkeypatch, env_kubeconfig: str | None, kubeconfig: str | None, context: str | None) -> str:
    if env_kubeconfig is None:
        monkeypatch.delenv("KUBECONFIG", raising=False)
    else:
        monkeypatch.setenv("KUBECONFIG", env_kubeconfig)
    with kube.connect(kubeconfig, context) as api:
        return access.whoami(api)


FORMS = [  # (KUBECONFIG, --kubeconfig, --context, who)
    ("nobody:admin", None, None, "sa"),  # the first file's current-context wins (the security bug)
    ("admin:nobody", None, None, "admin"),
    ("nobody:admin", None, "local", "sa"),  # the first file that names context "local" wins
    ("admin:nobody", None, "local", "admin"),
    ("missing:nobody:admin", None, None, "sa"),  # a missing file in the list is skipped
    ("nobody", "admin", None, "admin"),  # --kubeconfig replaces the list
    (None, "both", "nobody", "sa"),  # --context picks a token user in one file
    (None, "both", None, "admin"),
]


@pytest.mark.parametrize(("listed", "flag", "context", "who"), FORMS)
def test_modelhaul_is_who_kubectl_is(files, monkeypatch, listed, flag, context, who):
    env_value = os.pathsep.join(files[p] for p in listed.split(":")) if listed else None
    flags = (["--kubeconfig", files[flag]] if flag else []) + (["--context", context] if context else [])
    expected = files["sa"] if who == "sa" else "admin"

    assert kubectl_whoami(env_value, flags) == expected
    assert modelhaul_whoami(monkeypatch, env_value, files[flag] if flag else None, context) == expected


def test_a_narrowing_first_kubeconfig_is_not_widened_by_a_later_one(files, kube_cluster, monkeypatch):
    """KUBECONFIG=nobody:admin: kubectl is refused, and so is a deploy; nothing is created."""
    ns = kube_cluster.namespace()
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([files["nobody"], files["admin"]]))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg", "namespace": ns},
              "stringData": {"MODELHAUL_USERNAME": "u"}}

    found = find_cluster()
    assert found is not None and found.context == "nobody"
    with pytest.raises(DeployError, match=r"refused \(403\)"):
        kube.apply_and_wait([secret], wait=False)
    assert kube_cluster.get("Secret", "reg", ns) is None


def test_a_missing_context_names_the_files(files, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([files["nobody"], files["admin"]]))
    with pytest.raises(DeployError, match=r"KUBECONFIG=.*has no context 'deployer'"), kube.connect(None, "deployer"):
        pass
    with pytest.raises(DeployError, match=r"kubeconfig .*missing.yaml: no such file"), kube.connect(files["missing"]):
        pass


def test_relative_certificate_paths_are_read_beside_their_file(kube_cluster, tmp_path, monkeypatch):
    """A file that names its CA by a relative path works from any working directory, as with kubectl."""
    import base64

    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster.pop("certificate-authority-data")))
    cluster["certificate-authority"] = "ca.crt"
    (tmp_path / "rel.yaml").write_text(yaml.safe_dump(admin))
    monkeypatch.chdir("/")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "rel.yaml"))
    with kube.connect() as api:
        assert access.whoami(api) == "admin"


def test_an_exec_plugin_user_is_the_same_identity_for_kubectl_and_modelhaul(files, tmp_path, monkeypatch):
    """A user whose token comes from an exec credential plugin (as cloud CLIs do)."""
    import stat

    token = yaml.safe_load(Path(files["nobody"]).read_text())["users"][0]["user"]["token"]
    plugin = tmp_path / "credential-plugin"
    plugin.write_text("#!/bin/sh\necho '" + json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
        "status": {"token": token}}) + "'\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    cfg = yaml.safe_load(Path(files["nobody"]).read_text())
    cfg["users"] = [{"name": "nobody", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin), "interactiveMode": "Never"}}}]
    (tmp_path / "exec.yaml").write_text(yaml.safe_dump(cfg))

    assert kubectl_whoami(str(tmp_path / "exec.yaml"), []) == files["sa"]
    assert modelhaul_whoami(monkeypatch, str(tmp_path / "exec.yaml"), None, None) == files["sa"]
