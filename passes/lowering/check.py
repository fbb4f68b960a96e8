"""Checking a lowering against the reference interpreter (for tests, and for schedule authors).

`check_lowering(graph, schedule)` lowers the graph, verifies the loop program (`ir.loop_verifier`),
runs it with the slow loop-IR evaluator on random inputs and compares every output with
`ir.interpreter.run_graph` at the tolerance of its dtype. Use small shapes: the evaluator runs one
Python call per scalar operation.

`check_kernels(graph, schedule, budget)` checks kernel by kernel instead: each kernel runs on the
interpreter's values of the buffers it reads and its outputs are compared with the interpreter's
values of the nodes they hold. Kernels whose estimated work (`estimated_work`) exceeds `budget` are
skipped, so programs with a few large matmuls still get every other kernel checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.checking import CheckResult, compare
from compiler.inputs import random_inputs
from ir.graph import Graph
from ir.interpreter import check_input, evaluate_node, run_graph
from ir.loop_eval import run_kernel, run_program
from ir.loop_verifier import verify_program
from ir.loops import (Allocate, Const, Expr, For, If, Kernel, Let, LoopProgram, Seq, Stmt, Store, walk)
from passes.lowering.lower import lower
from passes.lowering.sparse import storage_arrays
from passes.lowering.spec import Schedule


@dataclass
class LoweringCheck:
    program: LoopProgram
    problems: list[str]  # what the loop verifier found
    results: list[CheckResult]  # one per compared value
    skipped: list[str] = field(default_factory=list)  # kernels not run (over the work budget)

    @property
    def ok(self) -> bool:
        return not self.problems and all(result.ok for result in self.results)

    def report(self) -> str:
        lines = list(self.problems) + [result.message for result in self.results if not result.ok]
        return "\n".join(lines) or "ok"


def _inputs(graph: Graph, seed: int, given: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    inputs = {**random_inputs(graph, seed, given), **graph.weight_data}  # bound weights get no random data
    for param in graph.params:  # ir.dtypes.round_bf16 returns 0-d bf16 values with shape (1,)
        name = graph.node(param).attr("name")
        inputs[name] = np.asarray(inputs[name]).reshape(graph.node(param).type.shape)
    return inputs


def check_lowering(graph: Graph, schedule: Schedule | None = None, seed: int = 0,
                   inputs: dict[str, np.ndarray] | None = None) -> LoweringCheck:
    """Lower `graph` with `schedule`, verify, run the whole program and compare its outputs."""
    lowered = lower(graph, schedule)
    program = lowered.program
    problems = verify_program(program)
    inputs = _inputs(graph, seed, inputs)
    expected = run_graph(graph, inputs)
    results = []
    if not problems:
        sparse = storage_arrays(lowered.sparse, inputs)  # the storages of sparse parameters
        actual = run_program(program, {**inputs, **sparse})
        for index, (got, want, node) in enumerate(zip(actual, expected, graph.outputs)):
            results.append(compare(got, want, graph.node(node).type.dtype, f"output {index}"))
    return LoweringCheck(program, problems, results)


def check_kernels(graph: Graph, schedule: Schedule | None = None, budget: int = 200_000, seed: int = 0
                  ) -> LoweringCheck:
    """Lower `graph`, verify, and run each kernel within `budget` on the interpreter's values."""
    lowered = lower(graph, schedule)
    program = lowered.program
    problems = verify_program(program)
    inputs = _inputs(graph, seed, None)
    values = graph_values(graph, inputs)
    sparse = storage_arrays(lowered.sparse, inputs)  # the storages of sparse parameters
    node_of = {buffer.name: node for node, buffer in lowered.buffers.items()}
    results: list[CheckResult] = []
    skipped: list[str] = []
    if problems:
        return LoweringCheck(program, problems, results, skipped)
    for call in program.calls:
        kernel = program.kernels[call.kernel]
        if estimated_work(kernel) > budget:
            skipped.append(kernel.name)
            continue
        arrays = {}
        for param, arg in zip(kernel.params, call.args):
            if param.name in kernel.writes:
                arrays[param.name] = np.zeros(param.shape, dtype=param.dtype.numpy)
            elif arg in sparse:
                arrays[param.name] = sparse[arg].copy()
            else:
                arrays[param.name] = values[node_of[arg]].copy()
        run_kernel(kernel, arrays)
        for param, arg in zip(kernel.params, call.args):
            if param.name in kernel.writes:
                node = node_of[arg]
                results.append(compare(arrays[param.name], values[node], graph.node(node).type.dtype,
                                       f"kernel {kernel.name}, %{node}"))
    return LoweringCheck(program, problems, results, skipped)


def graph_values(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """The interpreter's value of every node (what `run_graph` computes on the way to the outputs)."""
    values: dict[int, np.ndarray] = {}
    for node_id, node in graph.nodes():
        if node.op == "param":
            values[node_id] = check_input(node.attr("name"), inputs[node.attr("name")], node)
        else:
            values[node_id] = evaluate_node(node, [values[o] for o in graph.operands(node_id)])
    return values


def estimated_work(kernel: Kernel) -> int:
    """Roughly how many expression nodes the loop evaluator visits to run `kernel`."""
    return _stmt_work(kernel.body)


def _expr_work(expr: Expr) -> int:
    return sum(1 for _ in walk(expr))


def _stmt_work(stmt: Stmt) -> int:
    if isinstance(stmt, Seq):
        return sum(_stmt_work(s) for s in stmt.stmts)
    if isinstance(stmt, For):
        extent = stmt.extent.value if isinstance(stmt.extent, Const) else 1
        return 1 + extent * _stmt_work(stmt.body)
    if isinstance(stmt, Store):
        return 1 + _expr_work(stmt.value) + sum(_expr_work(i) for i in stmt.indices)
    if isinstance(stmt, Let):
        return _expr_work(stmt.value) + _stmt_work(stmt.body)
    if isinstance(stmt, Allocate):
        return stmt.buffer.size + _stmt_work(stmt.body)
    if isinstance(stmt, If):
        branches = [stmt.then_body] + ([stmt.else_body] if stmt.else_body is not None else [])
        return _expr_work(stmt.cond) + max(_stmt_work(b) for b in branches)
    return 1
