"""The deferrable wait: poll a SeldonDeployment / InferenceService until it serves, in the triggerer.

The status read (``modelhaul.steps.deployment_status``) is a blocking Kubernetes call, so each poll
runs in a thread; the worker slot is free for the whole wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DeploymentReadyTrigger(BaseTrigger):
    """Fire ``{status: ready|failed|error, ...status fields, carry}`` once the resource settles.

    Errors reading the status are retried; ``max_errors`` in a row end the wait with ``error``.
    ``carry`` (small JSON, no secrets) comes back in the event, so the resumed task needs no state
    of its own: the deploy operator carries its step result through the wait this way. With
    ``kube_conn_id`` the cluster is read from that connection in the triggerer process.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        namespace: str = "default",
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        poll_interval: float = 10.0,
        max_errors: int = 5,
        carry: dict[str, Any] | None = None,
        kube_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.context = context
        self.in_cluster = in_cluster
        self.poll_interval = poll_interval
        self.max_errors = max_errors
        self.carry = carry
        self.kube_conn_id = kube_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "name": self.name,
                "namespace": self.namespace,
                "kubeconfig": self.kubeconfig,
                "context": self.context,
                "in_cluster": self.in_cluster,
                "poll_interval": self.poll_interval,
                "max_errors": self.max_errors,
                "carry": self.carry,
                "kube_conn_id": self.kube_conn_id,
            },
        )

    def _status(self) -> dict[str, Any]:
        from modelhaul import steps
        from modelhaul.declarations import STATUS, step_arguments
        from modelhaul.operators.kubernetes_hook import kube_here

        held = self.serialize()[1]  # what this trigger holds, as it travels to the triggerer
        # a connection id is resolved here, in the triggerer: an inline kubeconfig has no file here yet
        return steps.deployment_status(**step_arguments(STATUS, {**held, "target": self.kind, **kube_here(held)}))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        errors = 0
        where = f"{self.kind} {self.namespace}/{self.name}"
        while True:
            try:
                status = await asyncio.to_thread(self._status)
                errors = 0
            except Exception as exc:  # the API server may blip; give up only after a streak
                errors += 1
                self.log.warning("reading %s failed (%d/%d): %s", where, errors, self.max_errors, exc)
                if errors >= self.max_errors:
                    yield TriggerEvent({"status": "error", "message": f"{where}: {exc}", "carry": self.carry})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            event = {k: status.get(k) for k in
                     ("state", "ready", "message", "url", "observed_generation", "generation")}
            event["carry"] = self.carry
            if status["outcome"] in ("ready", "failed"):
                yield TriggerEvent({"status": status["outcome"], **event})
                return
            self.log.info("%s: %s (%s)", where, status.get("state"), status.get("message") or "waiting")
            await asyncio.sleep(self.poll_interval)
