"""`niche targets`: the targets this build has, the hardware specs they price, and where each number is from.

    niche targets               targets with their spec, then every shipped spec file
    niche targets --spec h100   one spec in full: every value with its source or why it was assumed
"""

from __future__ import annotations

import argparse
import json

from targets.base import get_target, target_names
from targets.spec import HardwareSpec, load_spec, spec_names
from targets.units import format_si


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "targets", help="list targets and hardware specs",
        description="List the targets of this build with the hardware each prices, and the shipped hardware "
                    "spec files (targets/specs/). --spec NAME|FILE shows one spec with the source of every value.")
    parser.add_argument("--spec", metavar="NAME|FILE", help="show one spec (a shipped name or a .toml file) in full")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run_targets)


def summary(spec: HardwareSpec) -> str:
    """The headline figures of a spec on one line."""
    parts = []
    for precision in ("bf16", "f16", "f32"):
        peak = spec.peak(precision)
        if peak is not None:
            parts.append(f"{format_si(peak[1], 'FLOP/s')} {precision}")
            break
    main = spec.main_memory
    parts.append(f"{format_si(main.bandwidth, 'B/s')} {main.name}")
    parts.append(f"{format_si(main.capacity, 'B')}")
    parts.append(format_si(spec.tdp, "W"))
    if spec.price_per_hour is not None:
        parts.append(f"${spec.price_per_hour.value:.4g}/h")
    return ", ".join(parts)


def _target_spec(name: str) -> HardwareSpec | None:
    return getattr(get_target(name), "spec", None)


def run_targets(args: argparse.Namespace) -> int:
    if args.spec:
        return _show_spec(args.spec, args.json)
    built = target_names()
    specs = [load_spec(name) for name in spec_names()]
    if args.json:
        data = {"targets": [], "specs": []}
        for name in built:
            target = get_target(name)
            spec = _target_spec(name)
            data["targets"].append({"name": name, "summary": target.summary, "spec": spec.name if spec else None,
                                    "cost_model": callable(getattr(target, "estimate", None))})
        for spec in specs:
            data["specs"].append({"name": spec.name, "kind": spec.kind, "description": spec.description,
                                  "path": spec.path, "backend_built": spec.kind in built})
        print(json.dumps(data, indent=2))
        return 0
    print("targets in this build:")
    width = max(len(name) for name in built) + 2
    for name in built:
        target = get_target(name)
        print(f"  {name:<{width}}{target.summary}")
        spec = _target_spec(name)
        if spec is not None:
            print(f"  {'':<{width}}hardware: {spec.description}: {summary(spec)}")
        if not callable(getattr(target, "estimate", None)):
            print(f"  {'':<{width}}(no cost model: not priced by `niche compare`)")
    print()
    print("hardware specs (targets/specs/; name a spec as TARGET:NAME, e.g. gpu:h100):")
    width = max(len(spec.name) for spec in specs) + 2
    for spec in specs:
        status = "" if spec.kind in built else f"  [no {spec.kind} backend in this build]"
        print(f"  {spec.name:<{width}}{spec.kind:<5}{spec.description}{status}")
        print(f"  {'':<{width}}     {summary(spec)}")
    print()
    print("`niche targets --spec NAME` shows where every value of a spec comes from.")
    return 0


def _show_spec(name: str, as_json: bool) -> int:
    # the host CPU's spec is shown as the cpu target sees it: with the values read from this machine
    spec = _target_spec("cpu") if name == "cpu" and "cpu" in target_names() else None
    spec = spec or load_spec(name)
    if as_json:
        print(json.dumps({"name": spec.name, "kind": spec.kind, "description": spec.description, "path": spec.path,
                          "values": [{"path": q.path, "value": q.value, "dimension": q.dimension,
                                      "written": q.written, "source": q.source, "confidence": q.confidence,
                                      "assumption": q.assumption} for q in spec.quantities],
                          "texts": dict(spec.texts)}, indent=2))
        return 0
    print(f"{spec.name} ({spec.kind}): {spec.description}")
    print(f"from {spec.path}")
    assumed = len(spec.assumptions)
    print(f"{len(spec.quantities)} values, {assumed} of them assumptions; confidence tags: P primary, "
          "S secondary, S2 weak secondary, D derived, U unconfirmed, M measured, H read from this machine")
    width = max(len(q.path) for q in spec.quantities) + 2
    for quantity in spec.quantities:
        print(f"  {quantity.path:<{width}}{str(quantity):>14}  {quantity.provenance}")
    return 0
