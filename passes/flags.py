"""The pass flags of every command that compiles a program, and their mapping onto CompileOptions.

`compiler.cli.add_program_arguments` calls `add_pass_arguments`; `compiler.cli.compile_options`
merges `pass_options(args)`. Kept here, beside the pass manager, so a new flag is one edit in one
place.
"""

from __future__ import annotations

import argparse
from typing import Any

from passes.pipeline import DEFAULT_PIPELINES


def add_pass_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("graph passes")
    group.add_argument("--passes", metavar="PIPELINE",
                       help="run these graph passes instead of the -O level's default, e.g. "
                            "'canonicalize,cse,fuse-elementwise{max-group=8}' (`niche passes` lists them; "
                            f"-O2 is '{DEFAULT_PIPELINES[2]}')")
    group.add_argument("--load-pass", dest="load_passes", metavar="FILE.py", action="append", default=[],
                       help="import FILE.py so that its @register_pass passes and @fusion_rule rules register "
                            "(repeatable)")
    group.add_argument("--verify-each", action="store_true",
                       help="run the graph verifier after every pass (always done for plugin passes)")
    group.add_argument("--print-ir-after-all", action="store_true",
                       help="print the graph IR after every pass (stdout)")
    group.add_argument("--print-ir-after", metavar="NAME", action="append", default=[],
                       type=_names, help="print the graph IR after pass NAME (repeatable; NAME,NAME works too)")
    group.add_argument("--pass-timing", action="store_true", help="print a table of time per pass (stderr)")
    group.add_argument("--pass-stats", action="store_true", help="print each pass's statistics (stderr)")
    group.add_argument("--explain-fusion", action="store_true",
                       help="print every producer/consumer pair a fusion pass considered: fused or not, and why "
                            "(stderr)")
    group.add_argument("--reproducer-dir", metavar="DIR",
                       help="where a failing pass's reproducer is written (default: ./.niche-repro)")
    group.add_argument("--fusion-working-set", dest="fusion_working_set_limit", metavar="BYTES", type=_bytes,
                       help="the most bytes one fusion group may read and write (e.g. 32MiB; default: the "
                            "target's limit, none on ref and cpu)")


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _bytes(text: str) -> int:
    from passes.pipeline import convert_option
    try:
        return convert_option(text, int)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def pass_options(args: argparse.Namespace) -> dict[str, Any]:
    """The CompileOptions fields the pass flags set."""
    return {
        "passes": args.passes,
        "load_passes": tuple(args.load_passes),
        "verify_each": args.verify_each,
        "print_ir_after_all": args.print_ir_after_all,
        "print_ir_after": tuple(name for names in args.print_ir_after for name in names),
        "pass_timing": args.pass_timing,
        "pass_stats": args.pass_stats,
        "explain_fusion": args.explain_fusion,
        "reproducer_dir": args.reproducer_dir,
        "fusion_working_set_limit": args.fusion_working_set_limit,
    }
