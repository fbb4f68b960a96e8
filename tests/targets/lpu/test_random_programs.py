"""Property test: random small programs (elementwise chains with broadcasting, reductions over either
axis, matmuls, softmax/rmsnorm, transposes, slices and concats) run on the simulated LPU as on the
reference interpreter."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.driver import compile_string


@st.composite
def programs(draw) -> tuple[str, dict[str, int]]:
    rows = draw(st.integers(1, 5))
    cols = draw(st.sampled_from([3, 17, 320, 333]))
    n = draw(st.sampled_from([2, 9, 330]))
    values = {"x": (rows, cols)}
    lines = []
    for step in range(draw(st.integers(1, 4))):
        name = f"v{step}"
        source = draw(st.sampled_from(sorted(values)))
        r, c = values[source]
        choice = draw(st.sampled_from(["unary", "binary", "row", "column", "reduce", "matmul", "softmax",
                                       "rmsnorm", "transpose", "slice", "concat"]))
        if choice == "unary":
            fn = draw(st.sampled_from(["tanh", "relu", "exp", "sigmoid", "silu", "abs"]))
            expr, shape = (f"{fn}({source} * 0.5)", (r, c))
        elif choice == "binary":
            other = draw(st.sampled_from([k for k, v in values.items() if v == (r, c)]))
            op = draw(st.sampled_from(["+", "-", "*"]))
            expr, shape = (f"{source} {op} {other}", (r, c))
        elif choice == "row":
            expr, shape = (f"{source} + sum({source}, axis=0, keepdims=true)", (r, c))
        elif choice == "column":
            expr, shape = (f"{source} / (max(abs({source}), axis=-1, keepdims=true) + 1.0)", (r, c))
        elif choice == "reduce":
            fn = draw(st.sampled_from(["sum", "max", "min", "mean"]))
            axis = draw(st.sampled_from([0, -1]))
            expr, shape = (f"{fn}({source}, axis={axis}, keepdims=true)", (1, c) if axis == 0 else (r, 1))
        elif choice == "matmul":
            weight = f"w{step}"
            lines.append(("param", weight, (c, n)))
            expr, shape = (f"{source} @ {weight}", (r, n))
        elif choice == "softmax":
            expr, shape = (f"softmax({source}, axis=-1)", (r, c))
        elif choice == "rmsnorm":
            expr, shape = (f"{source} * rsqrt(mean({source} * {source}, axis=-1, keepdims=true) + 1e-5)", (r, c))
        elif choice == "transpose":
            expr, shape = (f"transpose({source}, (1, 0))", (c, r))
        elif choice == "slice":
            start = draw(st.integers(0, c - 1))
            expr, shape = (f"{source}[:, {start}:]", (r, c - start))
        else:
            expr, shape = (f"concat(({source}, {source}[:, :1]), axis=-1)", (r, c + 1))
        lines.append(("let", name, expr))
        values[name] = shape
    last = lines[-1][1]
    params = ["x: f32[{}, {}]".format(rows, cols)]
    params += [f"@weight {name}: f32[{shape[0]}, {shape[1]}]" for kind, name, shape in lines if kind == "param"]
    body = "\n".join(f"    {name} = {expr}" for kind, name, expr in lines if kind == "let")
    out = values[last]
    source = f"def f({', '.join(params)}) -> f32[{out[0]}, {out[1]}] {{\n{body}\n    return {last}\n}}\n"
    return source, {}


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_program_matches_reference(lpu, program) -> None:
    source, _ = program
    graph = compile_string(source, target="ref").graph
    lpu.run_and_check(graph, seed=3)
