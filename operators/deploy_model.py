"""Airflow: serve a model on Seldon Core or KServe (``steps.deploy``), its arguments declared in the core."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelhaul.declarations import DEPLOY, parse_bool
from modelhaul.operators._compat import AirflowException
from modelhaul.operators.base import RegistryStepOperator, declared_operator, default_deferrable
from modelhaul.operators.kubernetes_hook import kube_settings
from modelhaul.operators.lineage import artifact_dataset
from modelhaul.operators.links import DeploymentLink, RegistryArtifactLink, persist_links

# the step's declaration (registry access comes from the registry connection); namespace and
# in_cluster default to None here: "from the kubernetes connection"
_DeclaredDeploy = declared_operator("_DeclaredDeploy", RegistryStepOperator, DEPLOY,
                                    defaults={"namespace": None, "in_cluster": None}, module=__name__)


class DeployModelOperator(_DeclaredDeploy):
    """Serve the model on Seldon Core v1 or KServe, optionally as a canary (``steps.deploy``).

    Its step arguments (and ``template_fields``) are the deploy declaration of
    :mod:`modelhaul.declarations`, under the names ``deployment_name`` (``name``), ``kube_context``
    (``context``) and ``wait_for_ready`` (``wait``).
    The cluster comes from ``kubeconfig``/``kube_context``/``in_cluster`` or the ``kubernetes`` connection;
    with none configured (or ``render_only``) the manifests are written to ``render_dir``. With
    ``deferrable`` the worker applies the manifests and hands the readiness wait to the triggerer.
    A canary with no stable model to run beside (the first rollout) deploys nothing (``state``
    ``Skipped``): the promote step serves the model once it passes its gate.
    The XCom result also carries ``render_dir`` and the cluster settings, so that promote and
    rollback act on the same deployment.
    XCom: ``{ref, digest, target, name, namespace, canary_percent, manifests, applied, state, url}``.
    """

    step = "deploy"
    operator_extra_links = (DeploymentLink(), RegistryArtifactLink())

    def __init__(self, *, render_only: bool = False, kube_conn_id: str | None = "kubernetes_default",
                 poll_interval: float = 5.0, deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.render_only = render_only
        self.kube_conn_id = kube_conn_id
        self.poll_interval = poll_interval
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        kube = kube_settings(self.kube_conn_id, kubeconfig=self.kubeconfig or None,
                             context=self.kube_context or None, in_cluster=self.in_cluster)
        wait_for_ready = parse_bool(self.wait_for_ready, "wait_for_ready")
        render = parse_bool(self.render_only, "render_only") or not kube.configured
        defer = parse_bool(self.deferrable, "deferrable") and wait_for_ready and not render
        env, given = self.connected(reg)
        if render:  # the credentials only read the registry: a render directory never holds a secret
            user, password = given.pop("username"), given.pop("password")
            if user and password:
                env = {**env, "MODELHAUL_USERNAME": user, "MODELHAUL_PASSWORD": password}
        # the cluster comes from the kubernetes connection too; rendering reaches none
        cluster = {"kubeconfig": None, "context": None, "in_cluster": False} if render else kube.step_kwargs()
        result = self.call_step(env, **self.step_arguments(
            **given, namespace=self.namespace or kube.namespace or "default",
            render_dir=self.render_dir if render else None, **cluster,
            wait=wait_for_ready and not defer and not render))
        if result.get("secret_hint"):
            self.log.info("the manifests refer to the Secret %s; create it in the cluster with: %s",
                          result.get("registry_secret"), result["secret_hint"])
        # the step result names how to reach the deployment again; promote/rollback should wait for
        # readiness even when this task handed its own wait to the triggerer
        result["wait"] = wait_for_ready
        if not render:
            result.update(kube.portable())  # a connection id, never a temp file of this worker
        self._set_lineage([artifact_dataset(result.get("ref"))], [], result)
        persist_links(context, result)
        if defer and result.get("applied"):
            from modelhaul.declarations import kind_of
            from modelhaul.operators.triggers import DeploymentReadyTrigger

            self.defer(
                trigger=DeploymentReadyTrigger(
                    kind=kind_of(result.get("target") or self.target), name=result["name"],
                    namespace=result.get("namespace") or "default", poll_interval=float(self.poll_interval),
                    carry=result, **kube.portable()),
                method_name="execute_complete",
                timeout=timedelta(seconds=float(self.timeout)),
            )
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the deployment serves (return it) or failed (raise)."""
        deployment = dict(event.get("carry") or {})
        if event.get("status") != "ready":
            raise AirflowException(f"deployment {deployment.get('namespace')}/{deployment.get('name')} "
                                   f"did not become ready: {event.get('state')} {event.get('message') or ''}")
        return {**deployment, "state": event.get("state"), "url": event.get("url") or deployment.get("url")}
