"""Sensors: a tag that moves to a new digest, and a deployment that becomes ready."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from modelhaul.operators._compat import AirflowException, BaseSensorOperator, PokeReturnValue
from modelhaul.operators.base import default_deferrable
from modelhaul.operators.kubernetes_hook import KubeSettings, kube_settings
from modelhaul.operators.links import DeploymentLink, RegistryArtifactLink
from modelhaul.operators.registry_hook import RegistryHook


class ModelArtifactSensor(BaseSensorOperator):
    """Wait until ``ref`` (a tag) exists and points at a digest other than ``not_digest``.

    Typical use: ``not_digest`` is the digest the last run deployed, so the sensor fires when a new
    model is pushed under the tag. XCom: ``{ref, digest}`` of what the tag points at now.
    """

    template_fields: Sequence[str] = ("ref", "not_digest")
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, not_digest: str | None = None,
                 registry_conn_id: str | None = RegistryHook.default_conn_name,
                 layout_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.not_digest = not_digest
        self.registry_conn_id = registry_conn_id
        self.layout_root = layout_root

    def poke(self, context: Any) -> PokeReturnValue:
        from modelhaul import steps

        hook = RegistryHook(self.registry_conn_id)
        settings = hook.get_conn()
        ref = hook.qualify(self.ref, self.layout_root, settings)
        found = steps.try_resolve(ref=ref, **settings.step_kwargs())
        pinned, digest = (found["ref"], found["digest"]) if found else (None, None)
        if digest is None:
            self.log.info("%s: no such tag yet", ref)
            return PokeReturnValue(is_done=False)
        if self.not_digest and digest == self.not_digest:
            self.log.info("%s still points at %s", ref, digest)
            return PokeReturnValue(is_done=False)
        self.log.info("%s points at %s", ref, digest)
        return PokeReturnValue(is_done=True, xcom_value={"ref": pinned, "digest": digest})


class DeploymentReadySensor(BaseSensorOperator):
    """Wait until a SeldonDeployment / InferenceService serves its latest spec.

    ``target`` is ``seldon`` or ``kserve`` (or a kind). Deferrable by default when Airflow's
    ``[operators] default_deferrable`` is on: the wait then runs in the triggerer.
    """

    template_fields: Sequence[str] = ("deployment_name", "namespace", "target", "kubeconfig", "kube_context")
    operator_extra_links = (DeploymentLink(),)

    def __init__(self, *, deployment_name: str, target: str = "seldon", namespace: str | None = None,
                 kube_conn_id: str | None = "kubernetes_default", kubeconfig: str | None = None,
                 kube_context: str | None = None, in_cluster: bool | None = None,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_name = deployment_name
        self.target = target
        self.namespace = namespace
        self.kube_conn_id = kube_conn_id
        self.kubeconfig = kubeconfig
        self.kube_context = kube_context
        self.in_cluster = in_cluster
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _settings(self) -> KubeSettings:
        return kube_settings(self.kube_conn_id, kubeconfig=self.kubeconfig or None,
                             context=self.kube_context or None, in_cluster=self.in_cluster)

    def _where(self) -> tuple[dict[str, Any], str]:
        kube = self._settings()
        return kube.step_kwargs(), self.namespace or kube.namespace or "default"

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from modelhaul.declarations import kind_of
        from modelhaul.operators.triggers import DeploymentReadyTrigger

        first = self.poke(context)  # already serving: no trip through the triggerer
        if first.is_done:
            return first.xcom_value
        kube = self._settings()
        self.defer(
            trigger=DeploymentReadyTrigger(kind=kind_of(self.target), name=self.deployment_name,
                                           namespace=self.namespace or kube.namespace or "default",
                                           poll_interval=float(self.poke_interval), **kube.portable()),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def poke(self, context: Any) -> PokeReturnValue:
        from modelhaul import steps
        from modelhaul.declarations import STATUS, step_arguments

        kube, namespace = self._where()  # resolved with the kubernetes connection
        status = steps.deployment_status(**{**step_arguments(STATUS, self, by_attr=True),
                                            **step_arguments(STATUS, {"namespace": namespace, **kube})})
        if status["outcome"] == "failed":
            raise AirflowException(
                f"{self.deployment_name}: {status.get('state')} {status.get('message') or ''}")
        if status["outcome"] == "ready":
            return PokeReturnValue(is_done=True, xcom_value=_status_xcom(status))
        self.log.info("%s: %s", self.deployment_name, status.get("state"))
        return PokeReturnValue(is_done=False)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "ready":
            state = event.get("state") or event.get("status")
            raise AirflowException(
                f"{self.deployment_name} did not become ready: {state} {event.get('message') or ''}")
        return _status_xcom(event)


def _status_xcom(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in ("state", "ready", "url", "message", "observed_generation",
                                       "generation")}
