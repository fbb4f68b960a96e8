"""`niche passes`: list every registered pass with its summary and options, and the default pipelines."""

from __future__ import annotations

import argparse
import typing

from passes.pipeline import DEFAULT_PIPELINES, format_option, option_fields
from passes.registry import PassInfo, all_passes, load_pass_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "passes", help="list the registered passes and the default pipelines",
        description="List every registered pass (Niche's own, plugins given with --load-pass, and installed "
                    "plugins of the entry-point group niche.passes) with its one-line summary and its options, "
                    "then the default pipeline of each -O level.")
    parser.add_argument("--load-pass", dest="load_passes", metavar="FILE.py", action="append", default=[],
                        help="also load the passes of FILE.py (repeatable)")
    parser.set_defaults(func=run_passes)


def run_passes(args: argparse.Namespace) -> int:
    for path in args.load_passes:
        load_pass_file(path)
    print(listing(all_passes()))
    return 0


def listing(infos: list[PassInfo]) -> str:
    lines = []
    for level in ("graph", "loop"):
        chosen = [info for info in infos if info.cls.level == level]
        if not chosen:
            continue
        width = max(len(info.name) for info in chosen) + 2
        lines.append(f"{level} passes:")
        for info in chosen:
            origin = "" if info.builtin else f"  [{info.origin}]"
            lines.append(f"  {info.name:<{width}}{info.cls.summary}{origin}")
            options = _options_text(info)
            if options:
                lines.append(f"  {'':<{width}}options: {options}")
        lines.append("")
    lines.append("default pipelines:")
    for level, pipeline in DEFAULT_PIPELINES.items():
        lines.append(f"  -O{level}  {pipeline or '(no passes)'}")
    return "\n".join(lines)


def _options_text(info: PassInfo) -> str:
    defaults = info.cls.Options()
    parts = []
    for key, (field, kind) in option_fields(info.cls.Options).items():
        parts.append(f"{key}={format_option(getattr(defaults, field.name))} ({_type_name(kind)})")
    return ", ".join(parts)


def _type_name(kind: object) -> str:
    args = typing.get_args(kind)
    if args:
        return " | ".join("none" if a is type(None) else getattr(a, "__name__", str(a)) for a in args)
    return getattr(kind, "__name__", str(kind))
