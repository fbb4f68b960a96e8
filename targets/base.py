"""The protocol every target implements, and the registry that finds targets by name.

A target turns a graph (after the graph passes) into an `Artifact`: the code it emits (printable in
the kinds listed by `emit_kinds`) and, where the target can execute, a `run` method. Targets are named
on the command line as `NAME` or `NAME:VARIANT` (`gpu:h100`); the variant selects a hardware spec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from compiler.diagnostics import NicheError
from ir.graph import Graph


@dataclass
class CompileOptions:
    """Everything that shapes a compilation besides the source; the CLI flags map onto these fields."""

    target: str = "ref"
    defines: dict[str, int | float] = field(default_factory=dict)
    entry: str | None = None
    opt_level: int = 2
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific options (e.g. mesh size)

    @property
    def target_name(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def target_variant(self) -> str | None:
        parts = self.target.split(":", 1)
        return parts[1] if len(parts) == 2 else None


class Artifact(Protocol):
    emit_kinds: tuple[str, ...]
    description: str  # where results come from, e.g. "LLVM JIT for x86_64 (znver4), -O2"

    def emit(self, kind: str) -> str | bytes: ...

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


class Target(Protocol):
    name: str
    summary: str

    def compile(self, graph: Graph, options: CompileOptions) -> Artifact: ...


class TargetError(NicheError):
    """A target was asked for something it cannot do (unknown name, unsupported op or emit kind)."""


# name -> "module:attribute" of a factory taking the variant (or None); imported on first use so that
# `niche --help` does not pay for LLVM.
_TARGETS: dict[str, str] = {
    "ref": "targets.ref:ReferenceTarget",
}
_INSTANCES: dict[str, Target] = {}


def register_target(name: str, factory_path: str) -> None:
    _TARGETS[name] = factory_path


def target_names() -> list[str]:
    return sorted(_TARGETS)


def get_target(spec: str) -> Target:
    """The target named `spec` (`NAME` or `NAME:VARIANT`)."""
    name, _, variant = spec.partition(":")
    if name not in _TARGETS:
        raise TargetError(f"unknown target '{spec}' (targets: {', '.join(target_names())})")
    if spec not in _INSTANCES:
        module_name, attribute = _TARGETS[name].split(":")
        factory: Callable[[str | None], Target] = getattr(importlib.import_module(module_name), attribute)
        _INSTANCES[spec] = factory(variant or None)
    return _INSTANCES[spec]
