"""The `niche` command line. Each subcommand lives in `compiler/commands/` and mirrors the Python API.

Exit status: 0 on success, 1 for a user error (diagnostics on stderr), 2 for a bad command line,
3 for an internal error (a bug in Niche: the message names the stage; `--debug` adds the traceback).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Sequence

from compiler import __version__
from compiler.diagnostics import ArgumentError, InternalError, NicheError
from ir.dtypes import parse_dtype
from passes.flags import add_pass_arguments, pass_options

# Subcommand modules, each with `register(subparsers)` setting `func` on its parser.
COMMANDS = ["compiler.commands.compile", "compiler.commands.run", "compiler.commands.passes",
            "compiler.commands.targets", "compiler.commands.compare"]

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def parse_define(text: str) -> tuple[str, int | float | str]:
    """`NAME=VALUE` from -D: VALUE is an int, a float, or a dtype name (`-D DT=bf16`)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    try:
        return name, int(value)
    except ValueError:
        pass
    try:
        return name, float(value)
    except ValueError:
        pass
    if parse_dtype(value) is not None:
        return name, value
    raise argparse.ArgumentTypeError(f"the value of {name} must be a number or a dtype, got '{value}'")


def add_program_arguments(parser: argparse.ArgumentParser, target_default: str = "ref",
                          several_files: bool = False) -> None:
    """Options every command that compiles a program takes (`several_files`: FILE... instead of FILE)."""
    if several_files:
        parser.add_argument("files", nargs="+", metavar="FILE",
                            help="one or more .nk source files, or .graph files printed by --emit graph")
    else:
        parser.add_argument("file", help="a .nk source file, or a .graph file printed by --emit graph")
    parser.add_argument("-D", dest="defines", metavar="NAME=VALUE", action="append", type=parse_define,
                        default=[], help="bind a symbolic dimension or override a const (repeatable)")
    parser.add_argument("--entry", metavar="FUNC", help="the function to compile (default: the last def)")
    parser.add_argument("--target", default=target_default,
                        help=f"target to compile for, NAME or NAME:VARIANT (default: {target_default}); "
                             "`niche targets` lists them")
    parser.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=2, metavar="LEVEL",
                        help="optimisation level -O0 .. -O3 (default: -O2)")
    parser.add_argument("--weights", metavar="FILE.npz",
                        help="bind @weight parameters to the arrays of FILE.npz (by name) at compile time: passes "
                             "see their data (sparsify, prune) and they are no longer inputs (docs/sparsity.md)")
    parser.add_argument("--mesh", metavar="RxC",
                        help="wse target: the PE mesh to lay the program out on and simulate (default 16x16)")
    add_chip_arguments(parser, "lpu target: place the program on exactly N chips (default: as few as hold it)",
                       "lpu target: how --chips spreads the program (default: auto)")
    add_pass_arguments(parser)


def add_chip_arguments(parser: argparse.ArgumentParser, chips_help: str, partition_help: str) -> None:
    """`--chips N` and `--partition STRATEGY` (`CompileOptions.chips`/`.partition`; check with `chip_count`)."""
    from targets.base import PARTITION_STRATEGIES
    parser.add_argument("--chips", type=int, metavar="N", help=chips_help)
    parser.add_argument("--partition", choices=PARTITION_STRATEGIES, default="auto", help=partition_help)


def chip_count(args: argparse.Namespace) -> int | None:
    """`--chips` as given (None when absent); fewer than one chip is a usage error."""
    chips = getattr(args, "chips", None)
    if chips is not None and chips < 1:
        raise ArgumentError(f"--chips must be at least 1, got {chips}")
    return chips


def compile_options(args: argparse.Namespace) -> dict:
    options = {"target": args.target, "defines": dict(args.defines), "entry": args.entry,
               "opt_level": args.opt_level, **pass_options(args)}
    if getattr(args, "weights", None) is not None:
        options["weights"] = args.weights
    if getattr(args, "mesh", None) is not None:
        options["mesh"] = args.mesh  # a target option (CompileOptions.extra)
    if chip_count(args) is not None:
        options["chips"] = args.chips  # CompileOptions.chips / .partition
    if getattr(args, "partition", "auto") != "auto":
        options["partition"] = args.partition
    return options


def write_atomically(path: str | Path, data: str | bytes) -> None:
    """Write a file so that a failure never leaves it half-written (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors, with our prefix
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"niche: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="niche", description="Niche: compile one tensor program for CPU, GPU, LPU and "
                                               "wafer-scale targets, run it, and compare what it costs.")
    parser.add_argument("--version", action="version", version=f"niche {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for internal errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args) or EXIT_OK
    except InternalError as error:  # a bug in Niche found by one of its own checks (names the pass)
        print(f"niche: {error.format()}", file=sys.stderr)
        print("niche: this is a bug in Niche; rerun with --debug for the traceback", file=sys.stderr)
        if args.debug and error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        return EXIT_INTERNAL
    except NicheError as error:
        print(error.format(), file=sys.stderr)
        if args.debug and error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # a bug in Niche
        print(f"niche: internal error in '{args.command}': {type(error).__name__}: {error}", file=sys.stderr)
        print("niche: this is a bug in Niche; rerun with --debug for the traceback", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_INTERNAL


def run() -> int:
    """The `niche` command (the console script and `python -m compiler`): `main`, then let the process end
    without a last scan of its objects. The interpreter's final garbage collection would walk everything
    still alive (for an 80-layer model, a third of a second on the graph and its reports); freezing
    those objects first skips that walk, and the system takes the memory back either way."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(run())
