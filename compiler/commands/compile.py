"""`niche compile`: compile a program and print or write one of its IR levels or artifacts."""

from __future__ import annotations

import argparse
import sys

from compiler.cli import add_program_arguments, compile_options, write_atomically
from compiler.driver import compile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile", help="compile a program and emit an IR level or an artifact",
        description="Compile FILE and print (or write with -o) one of its levels: graph (the graph IR "
                    "after passes, which `niche compile` reads back), dot (Graphviz), and what the target "
                    "emits (for example loops, llvm, asm, obj, ptx).")
    add_program_arguments(parser)
    parser.add_argument("--emit", default="graph", metavar="KIND",
                        help="what to emit: graph, dot, or a kind of the target (default: graph)")
    parser.add_argument("-o", dest="output", metavar="OUT", help="write to OUT instead of standard output")
    parser.set_defaults(func=run_compile)


def run_compile(args: argparse.Namespace) -> int:
    program = compile(args.file, **compile_options(args))
    text = program.ir(args.emit)
    if args.output:
        write_atomically(args.output, text)
    elif isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
