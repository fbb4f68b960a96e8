"""`niche compile`: compile a program and print or write one of its IR levels or artifacts."""

from __future__ import annotations

import argparse
import sys

from compiler.cli import add_program_arguments, compile_options, write_atomically
from compiler.diagnostics import CompileError, Diagnostic
from compiler.driver import Program, compile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile", help="compile a program and emit an IR level or an artifact",
        description="Compile FILE and print (or write with -o) one of its levels: graph (the graph IR "
                    "after passes, which `niche compile` reads back), dot (Graphviz), and what the target "
                    "emits (for example loops, llvm, asm, obj, ptx).")
    add_program_arguments(parser)
    parser.add_argument("--emit", default="graph", metavar="KIND",
                        help="what to emit: graph, dot, or a kind of the target (default: graph)")
    parser.add_argument("-o", dest="output", metavar="OUT",
                        help="write to OUT instead of standard output; OUT ending in .so (without --emit) is a "
                             "shared library with its C header OUT.h, for targets that build one (cpu)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw the placement on the wafer (targets that place programs: wse; needs matplotlib)")
    parser.set_defaults(func=run_compile)


def run_compile(args: argparse.Namespace) -> int:
    program = compile(args.file, **compile_options(args))
    if args.plot:
        plot = getattr(program.artifact, "plot", None)
        if plot is None:
            raise CompileError([Diagnostic(f"target '{program.target}' has no placement to plot (the wse target has)")])
        plot(args.plot)
    if args.output and args.output.endswith(".so") and args.emit == "graph":
        return write_library(program, args.output)
    text = program.ir(args.emit)
    if args.output:
        write_atomically(args.output, text)
        companions = getattr(program.artifact, "write_companions", None)  # e.g. the gpu's launch JSON
        for path in companions(args.emit, args.output) if companions is not None else ():
            print(f"wrote {args.output} and {path}", file=sys.stderr)
    elif isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def write_library(program: Program, path: str) -> int:
    """`-o lib.so`: the target's shared library and its header `lib.h` beside it."""
    writer = getattr(program.artifact, "write_library", None)
    if writer is None:
        raise CompileError([Diagnostic(f"target '{program.target}' cannot write a shared library "
                                       "(the cpu target can)")])
    library, header = writer(path)
    print(f"wrote {library} and {header}", file=sys.stderr)
    return 0
