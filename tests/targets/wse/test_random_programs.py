"""Random small programs (matmuls, elementwise chains, reductions, views, concatenations), simulated on a
small mesh with small tiles so that regions span several PEs, match the reference interpreter."""

from __future__ import annotations

import random

import pytest

from compiler.checking import compare
from compiler.driver import compile_string
from compiler.inputs import random_inputs


class ProgramMaker:
    """Writes a random .nk function over 2-D values whose shapes it tracks."""

    def __init__(self, seed: int, dtype: str) -> None:
        self.rng = random.Random(seed)
        self.dtype = dtype
        self.params: list[str] = []
        self.lines: list[str] = []
        self.values: list[tuple[str, int, int]] = []
        self.count = 0

    def param(self, rows: int, cols: int, weight: bool = False) -> str:
        name = f"{'w' if weight else 'x'}{len(self.params)}"
        self.params.append(f"{'@weight ' if weight else ''}{name}: {self.dtype}[{rows}, {cols}]")
        return name

    def emit(self, expr: str, rows: int, cols: int) -> None:
        name = f"v{self.count}"
        self.count += 1
        self.lines.append(f"    {name} = {expr}")
        self.values.append((name, rows, cols))

    def step(self) -> None:
        name, rows, cols = self.rng.choice(self.values)
        floats = self.dtype != "i32"
        choice = self.rng.choice(["matmul", "unary", "binary", "reduce", "transpose", "concat", "slice",
                                  "softmax", "bias"])
        if choice == "matmul":
            n = self.rng.randint(2, 12)
            self.emit(f"{name} @ {self.param(cols, n, weight=True)}", rows, n)
        elif choice == "unary":
            op = self.rng.choice(["relu", "tanh", "sigmoid", "-", "abs"] if floats else ["-", "abs"])
            self.emit(f"-{name}" if op == "-" else f"{op}({name})", rows, cols)
        elif choice == "binary":
            others = [v for v in self.values if v[1:] == (rows, cols)]
            other = self.rng.choice(others)[0]
            op = self.rng.choice(["+", "*", "-"])
            self.emit(f"{name} {op} {other}" if op != "*" or floats else f"maximum({name}, {other})", rows, cols)
        elif choice == "reduce":
            op = self.rng.choice(["sum", "max"])
            self.emit(f"{name} - {op}({name}, axis=1, keepdims=true)", rows, cols)
        elif choice == "transpose":
            self.emit(f"transpose({name}, (1, 0))", cols, rows)
        elif choice == "concat":
            others = [v for v in self.values if v[1] == rows]
            other, _, other_cols = self.rng.choice(others)
            self.emit(f"concat(({name}, {other}), axis=1)", rows, cols + other_cols)
        elif choice == "slice" and cols > 1:
            start = self.rng.randint(0, cols - 1)
            self.emit(f"{name}[:, {start}:]", rows, cols - start)
        elif choice == "softmax" and floats:
            self.emit(f"softmax({name}, axis=-1)", rows, cols)
        else:
            bias = self.param(1, cols, weight=True)
            self.emit(f"{name} + reshape({bias}, ({cols},))", rows, cols)

    def program(self, steps: int) -> str:
        rows, cols = self.rng.randint(1, 9), self.rng.randint(2, 12)
        self.values.append((self.param(rows, cols), rows, cols))
        for _ in range(steps):
            self.step()
        results = [self.values[-1][0]]
        if self.rng.random() < 0.5 and len(self.values) > 2:
            results.append(self.rng.choice(self.values[1:-1])[0])
        body = "\n".join(self.lines)
        return f"def f({', '.join(self.params)}) {{\n{body}\n    return {', '.join(results)}\n}}\n"


@pytest.mark.parametrize("seed", range(20))
def test_random_program(seed: int) -> None:
    dtype = "i32" if seed % 5 == 4 else ("bf16" if seed % 7 == 3 else "f32")
    text = ProgramMaker(seed, dtype).program(steps=6 + seed % 5)
    passes = "" if seed % 3 == 0 else None  # some unfused (one region per op), most with fusion
    program = compile_string(text, target="wse", name=f"random{seed}.nk", mesh="8x8", tile=4, passes=passes)
    graph = program.graph
    inputs = random_inputs(graph, seed)
    outputs = program.run(inputs)
    expected = program.run_reference(inputs)
    for index, (got, want) in enumerate(zip(outputs, expected)):
        result = compare(got, want, graph.node(graph.outputs[index]).type.dtype, f"output {index}")
        assert result.ok, f"{result.message}\n{text}"
