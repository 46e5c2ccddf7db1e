"""The promotion gate: ``metric op value`` conditions over a candidate's metrics, and "beats the
model at the stage". What ``promote`` decides with; it reads metrics only (no service, no model run).

A gate is written the way people say it: ``"accuracy >= 0.9"``, ``"test.f1 > 0.8"`` (a metric
group picked explicitly), ``"loss < 0.3"``; several conditions are a list or joined with ``and``.
Operators: ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``. A malformed expression is a mistake in the
pipeline and raises :class:`GateError`; a metric the model does not have simply fails the gate,
with the reason, because that is a fact about the model, not about the pipeline.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from modelhaul.config import ModelConfig
from modelhaul.errors import GateError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_EXPR = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-/:]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_AND = re.compile(r"\s+and\s+|\s*&&\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One ``metric op threshold`` comparison."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def check(self, config: ModelConfig) -> tuple[bool, str]:
        value = config.metric(self.metric)
        if value is None or math.isnan(value):
            known = sorted({m.name for group in config.metrics.values() for m in group})
            have = f" (it has: {', '.join(known)})" if known else " (it has no metrics)"
            return False, f"{self}: the model has no numeric metric {self.metric!r}{have}"
        ok = OPS[self.op](value, self.threshold)
        return ok, f"{self}: {self.metric} is {value:g}" + ("" if ok else " — not met")


@dataclass
class GateResult:
    """Whether every condition passed, and one line per condition saying why."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


def parse(gate: str | list[str] | None) -> list[Condition]:
    """The conditions of ``gate`` (a string, possibly with ``and``, or a list of them)."""
    if gate is None:
        return []
    exprs = [gate] if isinstance(gate, str) else list(gate)
    out: list[Condition] = []
    for expr in exprs:
        if not isinstance(expr, str):
            raise GateError(f"gate {expr!r}: expected a string like 'accuracy >= 0.9'")
        if not expr.strip():
            raise GateError(f"gate {expr!r} is empty (a template that rendered to nothing?); write a condition "
                            "like 'accuracy >= 0.9', or pass no gate at all to promote without one")
        for part in _AND.split(expr.strip()):
            m = _EXPR.match(part)
            if not m:
                raise GateError(
                    f"gate {part.strip()!r} is malformed: write 'metric op number' with op one of "
                    f"{', '.join(OPS)} (e.g. 'accuracy >= 0.9', 'test.f1 > 0.8')"
                )
            out.append(Condition(m["metric"], m["op"], float(m["value"])))
    return out


def evaluate(gate: str | list[str] | None, config: ModelConfig) -> GateResult:
    """Check every condition of ``gate`` against ``config``'s metrics (an empty gate passes)."""
    results = [c.check(config) for c in parse(gate)]
    return GateResult(all(ok for ok, _ in results), [why for _, why in results])


def parse_beats(metric: str, min_delta: float = 0.0) -> tuple[str, bool]:
    """``(metric name, lower_is_better)`` of a ``beats`` argument; GateError when malformed."""
    lower = isinstance(metric, str) and metric.startswith("-")
    name = metric.lstrip("-+").strip() if isinstance(metric, str) else ""
    if not name or not re.fullmatch(r"[A-Za-z_][\w.\-/:]*", name):
        raise GateError(f"beats {metric!r} is malformed: name one metric, '-metric' when lower is better")
    if min_delta < 0:
        raise GateError(f"min_delta {min_delta} must not be negative")
    return name, lower


def beats(metric: str, candidate: ModelConfig, incumbent: ModelConfig | None, min_delta: float = 0.0
          ) -> tuple[bool, str]:
    """Does ``candidate`` beat ``incumbent`` on ``metric`` by at least ``min_delta``?

    ``metric`` with a leading ``-`` means lower is better (``"-loss"``). No incumbent passes (the
    first model at a stage has nothing to beat); an incumbent without the metric cannot be
    compared and fails, so that a promotion never rests on a comparison that was not made.
    """
    name, lower = parse_beats(metric, min_delta)
    cand = candidate.metric(name)
    if cand is None or math.isnan(cand):
        return False, f"beats {metric}: the candidate has no numeric metric {name!r}"
    if incumbent is None:
        return True, f"beats {metric}: no model at the stage yet, nothing to beat"
    inc = incumbent.metric(name)
    if inc is None or math.isnan(inc):
        return False, f"beats {metric}: the model at the stage has no metric {name!r} to compare with"
    gain = (inc - cand) if lower else (cand - inc)
    ok = gain >= min_delta - 1e-12
    better = "lower" if lower else "higher"
    return ok, (f"beats {metric}: candidate {cand:g} vs current {inc:g} ({better} is better, "
                f"improvement {gain:g}, required {min_delta:g})" + ("" if ok else " — not met"))
