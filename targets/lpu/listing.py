"""The `.lpu` listing: a compiled LPU program as readable assembly, printed and parsed back.

Layout of a listing (`;` starts a comment):

    .program mlp
    .machine clock_hz=900000000.0 lanes=320 ... stream_hop_cycles=1 ...   every machine parameter
    .chips 1
    .tensor x f32[2,784] role=input                   a tensor and how it is stored (layout flags:
    .extent x c0 v0+6 MEM.W0@0 MEM.E0@0 ...            transposed, splat, stored=[..]); its vectors,
    .data %17 b64z:eJz...                              striped over MEM slices from base addresses
    .input x                                           parameters in call order
    .output %8                                         results in order
    .map m0 0*320                                      a lane map: runs `s+n` (s, s+1, ...), `s*n`
                                                       (s repeated), `z*n` (zero lanes)
    ;  cycle chip unit      op          operands
           2 c0   MEM.W0    READ.f32    addr=0 -> E0-3
          49 c0   VXM.0     RELU.f32    E0-3 -> E4-7
    .end

An instruction line is `cycle chip unit OP[.dtype] [stream, ...] [key=value ...] [-> stream]`. The
simulator takes the cycle of every line at its word: editing a cycle changes what the program computes.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import zlib

import numpy as np

from compiler.diagnostics import NicheError
from ir.dtypes import DType, parse_dtype
from targets.lpu.isa import Instruction, Stream
from targets.lpu.machine import LpuMachine
from targets.lpu.program import Extent, LpuProgram, TensorDecl
from targets.lpu.vectors import VectorLayout


class ListingError(NicheError):
    """A `.lpu` listing cannot be read; the message names the line."""


# -- printing ----------------------------------------------------------------------------------------


def _type_text(shape: tuple[int, ...], dtype: DType) -> str:
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


def encode_map(values: np.ndarray) -> str:
    """Run-length text of a lane map (see the module docstring)."""
    parts = []
    values = [int(v) for v in values]
    i = 0
    while i < len(values):
        v = values[i]
        j = i + 1
        if v < 0:
            while j < len(values) and values[j] < 0:
                j += 1
            parts.append(f"z*{j - i}")
        elif j < len(values) and values[j] == v:
            while j < len(values) and values[j] == v:
                j += 1
            parts.append(f"{v}*{j - i}")
        else:
            while j < len(values) and values[j] == values[j - 1] + 1:
                j += 1
            parts.append(f"{v}+{j - i}")
        i = j
    return ",".join(parts)


def decode_map(text: str) -> np.ndarray:
    values: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"(z|\d+)([*+])(\d+)", part.strip())
        if not match:
            raise ValueError(f"bad lane-map run '{part}'")
        start, kind, count = match.group(1), match.group(2), int(match.group(3))
        if start == "z":
            values.extend([-1] * count)
        elif kind == "*":
            values.extend([int(start)] * count)
        else:
            values.extend(range(int(start), int(start) + count))
    return np.array(values, dtype=np.int64)


def _encode_data(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return "b64z:" + base64.b64encode(zlib.compress(buffer.getvalue())).decode("ascii")


def _decode_data(text: str) -> np.ndarray:
    if not text.startswith("b64z:"):
        raise ValueError("data must start with b64z:")
    raw = zlib.decompress(base64.b64decode(text[5:]))
    return np.load(io.BytesIO(raw), allow_pickle=False)


def _layout_flags(layout: VectorLayout) -> str:
    flags = []
    if layout.transposed:
        flags.append("transposed")
    if layout.splat:
        flags.append("splat")
    if layout.stored_shape is not None:
        flags.append("stored=[" + ",".join(str(d) for d in layout.stored_shape) + "]")
    return " ".join(flags)


def format_instruction(instruction: Instruction) -> str:
    op = instruction.op + (f".{instruction.dtype}" if instruction.dtype is not None else "")
    operands = [", ".join(str(s) for s in instruction.srcs)] if instruction.srcs else []
    for key, value in instruction.fields:
        operands.append(f"{key}={value}")
    if instruction.dst is not None:
        operands.append(f"-> {instruction.dst}")
    text = f"{instruction.cycle:>9} c{instruction.chip:<3} {instruction.unit:<9} {op:<12} {' '.join(operands)}"
    if instruction.comment:
        text = f"{text:<72} ; {instruction.comment}"
    return text.rstrip()


def print_listing(program: LpuProgram) -> str:
    machine = program.machine
    seconds = program.cycles / machine.clock_hz
    lines = [f"; Niche LPU listing: @{program.name} on {program.chips} chip(s) of the Groq TSP model, "
             f"{len(program.instructions)} instructions, {program.cycles} cycles "
             f"({seconds * 1e6:.3f} us at {machine.clock_hz / 1e6:g} MHz)"]
    lines.extend(f"; {note}" for note in program.notes)
    lines.append(f".program {program.name}")
    params = " ".join(f"{f.name}={getattr(machine, f.name)!r}".replace("None", "none")
                      for f in dataclasses.fields(machine))
    lines.append(f".machine {params}")
    lines.append(f".chips {program.chips}")
    for name, tensor in program.tensors.items():
        layout = tensor.layout
        flags = _layout_flags(layout)
        lines.append(f".tensor {name} {_type_text(layout.value_shape, layout.dtype)} role={tensor.role}"
                     + (f" {flags}" if flags else ""))
        for extent in tensor.extents:
            slices = " ".join(f"{s}@{base}" for s, base in extent.slices)
            lines.append(f".extent {name} c{extent.chip} v{extent.first}+{extent.count} {slices}"
                         + (" replica" if extent.replica else ""))
        if tensor.data is not None:
            lines.append(f".data {name} {_encode_data(tensor.data)}")
    for name in program.inputs:
        lines.append(f".input {name}")
    for name in program.outputs:
        lines.append(f".output {name}")
    for index, values in enumerate(program.maps):
        lines.append(f".map m{index} {encode_map(values)}")
    lines.append(";    cycle chip unit      op           operands")
    for instruction in program.instructions:
        lines.append(format_instruction(instruction))
    lines.append(".end")
    return "\n".join(lines) + "\n"


# -- parsing -----------------------------------------------------------------------------------------

_TYPE = re.compile(r"(\w+)\[([\d,]*)\]$")
_STREAM = re.compile(r"([EW])(\d+)(?:-(\d+))?$")
_INT_FIELDS = {"addr", "valid", "row", "col", "acc", "peer"}


def _parse_type(text: str) -> tuple[tuple[int, ...], DType]:
    match = _TYPE.match(text)
    dtype = parse_dtype(match.group(1)) if match else None
    if match is None or dtype is None:
        raise ValueError(f"bad tensor type '{text}'")
    dims = tuple(int(d) for d in match.group(2).split(",") if d)
    return dims, dtype


def parse_stream(text: str) -> Stream:
    match = _STREAM.match(text.strip())
    if not match:
        raise ValueError(f"bad stream '{text}' (expected like E4-7 or W0)")
    first = int(match.group(2))
    last = int(match.group(3)) if match.group(3) else first
    if last < first:
        raise ValueError(f"bad stream range '{text}'")
    return Stream(match.group(1), first, last - first + 1)


def _parse_number(text: str) -> int | float | None:
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_instruction(text: str) -> Instruction:
    body, _, comment = text.partition(";")
    tokens = body.split()
    if len(tokens) < 4:
        raise ValueError("an instruction needs: cycle chip unit op")
    cycle = int(tokens[0])
    if not tokens[1].startswith("c"):
        raise ValueError(f"bad chip '{tokens[1]}' (expected c0, c1, ...)")
    chip = int(tokens[1][1:])
    unit = tokens[2]
    op, _, dtype_text = tokens[3].partition(".")
    dtype = None
    if dtype_text:
        dtype = parse_dtype(dtype_text)
        if dtype is None:
            raise ValueError(f"unknown element type '{dtype_text}'")
    rest = " ".join(tokens[4:])
    dst = None
    if "->" in rest:
        rest, _, dst_text = rest.partition("->")
        dst = parse_stream(dst_text)
    srcs: list[Stream] = []
    fields: list[tuple[str, int | str]] = []
    for token in rest.replace(",", " ").split():
        if "=" in token:
            key, _, value = token.partition("=")
            fields.append((key, int(value) if key in _INT_FIELDS else value))
        else:
            srcs.append(parse_stream(token))
    return Instruction(cycle, chip, unit, op, dtype, tuple(srcs), dst, tuple(fields), comment.strip())


def parse_listing(text: str, filename: str = "<listing>") -> LpuProgram:
    """The program a listing describes; raises ListingError naming the offending line."""
    name = "main"
    machine_values: dict[str, int | float | None] = {}
    chips = 1
    tensors: dict[str, TensorDecl] = {}
    inputs: list[str] = []
    outputs: list[str] = []
    maps: dict[int, np.ndarray] = {}
    instructions: list[Instruction] = []
    notes: list[str] = []
    ended = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            if stripped.startswith(";"):
                if stripped.startswith("; ") and not instructions and number > 1 and "cycle chip" not in line:
                    notes.append(stripped[2:])
                continue
            if ended:
                raise ValueError("text after .end")
            if stripped.startswith("."):
                directive, _, arguments = stripped.partition(" ")
                arguments = arguments.split(";")[0].strip()
                if directive == ".program":
                    name = arguments
                elif directive == ".machine":
                    for item in arguments.split():
                        key, _, value = item.partition("=")
                        machine_values[key] = _parse_number(value)
                elif directive == ".chips":
                    chips = int(arguments)
                elif directive == ".tensor":
                    tensors_item = _parse_tensor(arguments)
                    tensors[tensors_item.name] = tensors_item
                elif directive == ".extent":
                    tensor_name, extent = _parse_extent(arguments)
                    _tensor(tensors, tensor_name).extents.append(extent)
                elif directive == ".data":
                    tensor_name, _, payload = arguments.partition(" ")
                    _tensor(tensors, tensor_name).data = _decode_data(payload.strip())
                elif directive == ".input":
                    inputs.append(arguments)
                elif directive == ".output":
                    outputs.append(arguments)
                elif directive == ".map":
                    label, _, runs = arguments.partition(" ")
                    if not re.fullmatch(r"m\d+", label):
                        raise ValueError(f"bad map name '{label}'")
                    maps[int(label[1:])] = decode_map(runs)
                elif directive == ".end":
                    ended = True
                else:
                    raise ValueError(f"unknown directive '{directive}'")
                continue
            instructions.append(parse_instruction(stripped))
        except (ValueError, KeyError, IndexError) as error:
            message = error.args[0] if error.args else str(error)
            raise ListingError(f"{filename}:{number}: error: {message}") from None
    if not ended:
        raise ListingError(f"{filename}: error: the listing has no .end line (truncated?)")
    try:
        machine = LpuMachine(**machine_values)
    except (TypeError, ValueError) as error:
        raise ListingError(f"{filename}: error: bad .machine line: {error}") from None
    if sorted(maps) != list(range(len(maps))):
        raise ListingError(f"{filename}: error: lane maps must be numbered m0, m1, ... without gaps")
    ordered = sorted(instructions, key=lambda i: (i.cycle, i.chip))
    return LpuProgram(name, machine, chips, tensors, inputs, outputs, [maps[i] for i in range(len(maps))],
                      ordered, notes)


def _tensor(tensors: dict[str, TensorDecl], name: str) -> TensorDecl:
    if name not in tensors:
        raise ValueError(f"tensor '{name}' is not declared by a .tensor line above")
    return tensors[name]


def _parse_tensor(arguments: str) -> TensorDecl:
    tokens = arguments.split()
    if len(tokens) < 3:
        raise ValueError(".tensor needs: name type role=...")
    shape, dtype = _parse_type(tokens[1])
    role = None
    transposed = splat = False
    stored = None
    for token in tokens[2:]:
        if token.startswith("role="):
            role = token[5:]
        elif token == "transposed":
            transposed = True
        elif token == "splat":
            splat = True
        elif token.startswith("stored="):
            stored = tuple(int(d) for d in token[len("stored="):].strip("[]").split(",") if d)
        else:
            raise ValueError(f"unknown tensor flag '{token}'")
    if role not in ("input", "weight", "data", "value"):
        raise ValueError(f"tensor role must be input, weight, data or value, got {role}")
    layout = VectorLayout(shape, dtype, stored, transposed, splat)
    return TensorDecl(tokens[0], layout, role)


def _parse_extent(arguments: str) -> tuple[str, Extent]:
    tokens = arguments.split()
    if len(tokens) < 4:
        raise ValueError(".extent needs: tensor chip vFIRST+COUNT slice@base ...")
    replica = tokens[-1] == "replica"
    if replica:
        tokens = tokens[:-1]
    chip = int(tokens[1].lstrip("c"))
    match = re.fullmatch(r"v(\d+)\+(\d+)", tokens[2])
    if not match:
        raise ValueError(f"bad vector range '{tokens[2]}'")
    slices = []
    for token in tokens[3:]:
        slice_name, _, base = token.partition("@")
        slices.append((slice_name, int(base)))
    return tokens[0], Extent(chip, int(match.group(1)), int(match.group(2)), tuple(slices), replica)
