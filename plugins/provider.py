"""Provider metadata for Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow calls :func:`get_provider_info` while it is still reading its own configuration, so this
module must import nothing from Airflow (or anything heavy): it returns a literal dict. Connection
form fields are declared here (``conn-fields``), the way Airflow 3.2+ wants them, so the UI shows
them without importing the hooks.
"""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import BUNDLE_FORMATS

_PKG = "modelhaul.operators"
_INTEGRATION = "modelhaul"


def _str(label: str, description: str | None = None, *, secret: bool = False, multiline: bool = False,
         examples: list[str] | None = None) -> dict[str, Any]:
    """A text field; ``examples`` are what the UI offers as you type (its only placeholder for extra fields)."""
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    elif multiline:  # a textarea: pasted YAML keeps its line breaks
        schema["format"] = "multiline"
    if examples:
        schema["examples"] = examples
    field: dict[str, Any] = {"label": label, "schema": schema}
    if description:
        field["description"] = description
    return field


def _bool(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["boolean", "null"], "default": False},
            "description": description}


def get_provider_info() -> dict[str, Any]:
    """Hooks, operators, sensors, triggers, links and connection types modelhaul contributes."""
    return {
        "package-name": "modelhaul",
        "name": "modelhaul",
        "description": "Train with MLflow, ship through an OCI registry, serve on Seldon Core or KServe.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": _INTEGRATION, "tags": ["software"]}],
        "hooks": [{"integration-name": _INTEGRATION,  # one module per connection type
                   "python-modules": [f"{_PKG}.{m}_hook" for m in ("registry", "mlflow", "kubernetes")]}],
        "operators": [{"integration-name": _INTEGRATION,
                       "python-modules": [f"{_PKG}.{m}_model" for m in ("train", "package", "parse", "convert", "sign",
                                                                        "deploy", "promote", "rollback")]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers"]}],
        "extra-links": [
            f"{_PKG}.links.MLflowRunLink",
            f"{_PKG}.links.RegistryArtifactLink",
            f"{_PKG}.links.DeploymentLink",
        ],
        "asset-uris": [{"schemes": ["modelhaul"], "handler": None}],
        "plugins": [{"name": "modelhaul", "plugin-class": "modelhaul.plugins.plugin.ModelhaulPlugin"}],
        "connection-types": [
            {
                "connection-type": "modelhaul_registry",
                "hook-class-name": f"{_PKG}.registry_hook.RegistryHook",
                "hook-name": "OCI registry (modelhaul)",
                "conn-fields": {
                    "plain_http": _bool("Plain HTTP", "The registry speaks HTTP without TLS."),
                    "insecure": _bool("Skip TLS verification", "Accept any certificate (testing only)."),
                    "ca_file": _str("CA file", "PEM bundle (a path on the workers) that signed the registry's "
                                    "certificate.", examples=["/etc/ssl/certs/registry-ca.pem"]),
                    "bundle_format": {
                        "label": "Default bundle format",
                        "schema": {"type": ["string", "null"], "enum": [*BUNDLE_FORMATS, None],
                                   "default": "modelpack"},
                        "description": "Format of pushed models: CNCF ModelPack, KitOps ModelKit or ormb.",
                    },
                },
                # the port goes with the host (host:port), as in every image reference
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Registry (host[:port])", "login": "Username"},
                    "placeholders": {"host": "registry.example.com:5000", "login": "robot$ci",
                                     "password": "password or access token"},
                },
            },
            {
                "connection-type": "modelhaul_mlflow",
                "hook-class-name": f"{_PKG}.mlflow_hook.MLflowHook",
                "hook-name": "MLflow tracking (modelhaul)",
                "conn-fields": {
                    "tracking_uri": _str("Tracking URI (instead of the server)",
                                         "A tracking URI that is not a web server; when set, the tracking server "
                                         "above is not used.", examples=["databricks", "sqlite:////data/mlflow.db"]),
                    "token": _str("Token", "Bearer token (MLFLOW_TRACKING_TOKEN), instead of username and password.",
                                  secret=True),
                    "insecure": _bool("Skip TLS verification", "Accept any certificate (testing only)."),
                },
                # one place for the server: its whole URL (scheme, port and path prefix included); connections
                # made with the separate fields (extra ``scheme``, port, schema) still work
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Tracking server URL", "login": "Username"},
                    "placeholders": {"host": "https://mlflow.example.com:5000", "login": "basic-auth user"},
                },
            },
            {
                "connection-type": "modelhaul_kubernetes",
                "hook-class-name": f"{_PKG}.kubernetes_hook.KubernetesClusterHook",
                "hook-name": "Kubernetes cluster (modelhaul)",
                "conn-fields": {
                    "kube_config_path": _str("Kubeconfig path", "A kubeconfig file on the workers.",
                                             examples=["/home/airflow/.kube/config"]),
                    "kube_config": _str("Kubeconfig (inline)", "Paste the kubeconfig's YAML or JSON as it is; it is "
                                        "written to a private temp file only where a task runs.", multiline=True),
                    "cluster_context": _str("Context", "Kubeconfig context (default: its current context).",
                                            examples=["kind-kind", "prod-admin"]),
                    "in_cluster": _bool("In cluster", "Use the pod's service account (workers run in the cluster)."),
                    "namespace": _str("Namespace", "Default namespace for deployments.",
                                      examples=["default", "models"]),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port", "extra"],
                    "relabeling": {},
                },
            },
        ],
        "config": {
            "modelhaul": {
                "description": "Options for the modelhaul operators.",
                "options": {
                    "registry_link_template": {
                        "description": "URL of a model artifact in the registry's UI, with "
                                       "{scheme} {registry} {repository} {tag} {digest}; empty: no link (a "
                                       "registry's API is no page for a browser).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://harbor.example.com/harbor/projects/{repository}/{digest}",
                        "default": "",
                    },
                },
            },
        },
    }
