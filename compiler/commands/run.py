"""`niche run`: run a program on given or random inputs, summarise its outputs, optionally check them."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from compiler.checking import compare
from compiler.cli import add_program_arguments, compile_options, write_atomically
from compiler.diagnostics import ArgumentError, NicheError
from compiler.driver import compile
from compiler.inputs import random_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run a program on given or random inputs",
        description="Compile each FILE for --target, run it on the inputs given with --input (random ones, "
                    "drawn from --seed, for the rest) and print a summary of each output. --check also runs "
                    "the reference interpreter and fails when an output differs beyond the dtype's tolerance.")
    add_program_arguments(parser, several_files=True)
    parser.add_argument("--input", dest="inputs", metavar="NAME=FILE.npy", action="append", default=[],
                        help="an input array for parameter NAME (repeatable); a FILE.npz gives several by name")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random inputs (default: 0)")
    parser.add_argument("--check", action="store_true", help="compare with the reference interpreter")
    parser.add_argument("-o", dest="output", metavar="OUT.npz", help="save the outputs to an .npz file")
    parser.set_defaults(func=run_run)


def load_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        if not Path(path).is_file():
            raise ArgumentError(f"--input {spec}: no such file '{path}'")
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ArgumentError(f"--input {spec}: cannot read '{path}' as .npy/.npz: {error}") from None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {key: loaded[key] for key in loaded.files}
            if name:
                if name not in arrays:
                    raise ArgumentError(f"--input {spec}: '{path}' has no array '{name}'")
                inputs[name] = arrays[name]
            else:
                inputs.update(arrays)
        else:
            if not name:
                raise ArgumentError(f"--input {spec}: a .npy file needs a parameter name: NAME={path}")
            inputs[name] = loaded
    return inputs


def summarize(array: np.ndarray, limit: int = 6) -> str:
    flat = array.reshape(-1)
    head = ", ".join(f"{v:.6g}" if array.dtype.kind == "f" else str(v) for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    if array.size and array.dtype.kind in "fiu":
        stats = f"min {flat.min():.6g}  max {flat.max():.6g}  mean {flat.astype(np.float64).mean():.6g}"
    else:
        stats = ""
    return f"{stats}  [{head}{more}]".strip()


def run_run(args: argparse.Namespace) -> int:
    if len(args.files) == 1:
        return run_file(args.files[0], args)
    if args.inputs or args.output:
        raise ArgumentError("--input and -o name one program's arrays: give a single FILE with them")
    failed = []
    for path in args.files:  # `niche run examples/*.nk --check`: every program, then one verdict
        try:
            run_file(path, args)
        except NicheError as error:
            print(error.format(), file=sys.stderr)
            failed.append(path)
    if failed:
        raise NicheError(f"{len(failed)} of {len(args.files)} programs failed: {', '.join(failed)}")
    return 0


def run_file(path: str, args: argparse.Namespace) -> int:
    given = load_inputs(args.inputs)
    program = compile(path, **compile_options(args))
    unknown = set(given) - set(program.param_names)
    if unknown:
        raise ArgumentError(f"--input names no parameter of '{program.name}': {', '.join(sorted(unknown))} "
                            f"(parameters: {', '.join(program.param_names)})")
    graph, artifact = program.specialized_for(given)  # reports dimensions that nothing binds, located
    inputs = random_inputs(graph, args.seed, given)
    outputs = program.run(inputs)
    print(f"{graph.name}: {len(outputs)} output(s) computed by {artifact.description}")
    failures = 0
    reference = program.run_reference(inputs) if args.check else None
    for index, (node, value) in enumerate(zip(graph.outputs, outputs)):
        value_type = graph.node(node).type
        print(f"  output {index}: {value_type}  {summarize(value)}")
        if reference is not None:
            result = compare(value, reference[index], value_type.dtype, f"output {index}")
            print(f"    check against the reference interpreter: {result.message}")
            failures += not result.ok
    if args.output:
        buffer = io.BytesIO()
        np.savez(buffer, **{f"output{i}": v for i, v in enumerate(outputs)})
        write_atomically(args.output, buffer.getvalue())
    if failures:
        raise NicheError(f"--check failed: {failures} output(s) differ from the reference interpreter")
    return 0
