"""The kernel-spec contract, as a target's schedule uses it: a schedule with its own loop structure
(tiles with tails, split accumulators, packed operands, reversed loops) built only from the spec API
must compute the same as the reference interpreter. Also the index maps of views."""

from __future__ import annotations

from typing import Callable

import pytest

from compiler.driver import Source, compile_string
from ir.dtypes import DType
from ir.graph import Graph
from ir.groups import assign_groups
from ir.loops import (INDEX, Allocate, Binary, Buffer, Const, For, If, Let, Load, Scope, Stmt, Store, Var, add,
                      mul, seq, walk)
from passes.lowering import (CopySpec, ElementwiseSpec, KernelSpec, MatmulSpec, NaiveSchedule, ReductionSpec,
                             local_accumulator, loop_nest, lower_specs, read)
from passes.lowering.check import check_lowering
from passes.lowering.views import reshape_index

TILE = 4


def _tiled(spec: KernelSpec, shape: tuple[int, ...], base: str, body: Callable[[tuple], Stmt]) -> Stmt:
    """Loops over `shape` whose last axis is split into tiles of TILE with a guarded tail."""
    if not shape:
        return body(())
    outer_vars = [spec.fresh(f"{base}{a}") for a in range(len(shape) - 1)]
    tile, lane = spec.fresh("t"), spec.fresh("v")
    last = add(mul(Var(tile), Const(TILE)), Var(lane))
    index = tuple(Var(v) for v in outer_vars) + (last,)
    guarded = If(Binary("lt", last, Const(shape[-1])), body(index))
    stmt: Stmt = For(tile, Const(0), Const(-(-shape[-1] // TILE)), For(lane, Const(0), Const(TILE), guarded))
    for name, extent in reversed(list(zip(outer_vars, shape[:-1]))):
        stmt = For(name, Const(0), Const(extent), stmt)
    return stmt


class TiledSchedule:
    """A deliberately different schedule: tiled loops, two partial accumulators per reduction (even and
    odd positions, combined with `combine`), kept positions walked backwards, packed A rows."""

    def elementwise(self, spec: ElementwiseSpec) -> Stmt:
        return _tiled(spec, spec.domain, "i", spec.store)

    def copy(self, spec: CopySpec) -> Stmt:
        return seq(*(_tiled(spec, region.shape, "i", lambda index, r=r: spec.region_store(r, index))
                     for r, region in enumerate(spec.regions)))

    def reduction(self, spec: ReductionSpec) -> Stmt:
        flat = 1
        for extent in spec.reduce_shape:
            flat *= extent

        def reduced_index(position: Var) -> tuple:
            index = []
            rest = position
            for axis, extent in reversed(list(enumerate(spec.reduce_shape))):
                index.append(Binary("mod", rest, Const(extent)) if axis else rest)
                rest = Binary("floordiv", rest, Const(extent))
            return tuple(reversed(index))

        def stages(k: int, kept: tuple) -> Stmt:
            if k == len(spec.stages):
                tail = [spec.reduced_store(kept)] if spec.reduced_outputs else []
                if spec.domain_outputs:
                    tail.append(loop_nest(spec, spec.reduce_shape, "r", lambda red: spec.domain_store(kept, red)))
                return seq(*tail)
            stage = spec.stages[k]
            even = local_accumulator(spec, stage.acc_dtype, "even")
            odd = local_accumulator(spec, stage.acc_dtype, "odd")
            position = spec.fresh("p")
            p = Var(position)
            value = spec.stage_input(k, kept, reduced_index(p))
            fold = lambda acc: Store(acc.name, (Const(0),), stage.combine(read(acc), value.value))  # noqa: E731
            body = value.bind(If(Binary("eq", Binary("mod", p, Const(2)), Const(0)), fold(even), fold(odd)))
            loop = For(position, Const(0), Const(flat), body)
            init = seq(Store(even.name, (Const(0),), stage.init), Store(odd.name, (Const(0),), stage.init))
            total = stage.combine(read(even), read(odd))
            rest = Let(stage.result.name, stage.finalize(total), stages(k + 1, kept))
            return Allocate(even, Allocate(odd, seq(init, loop, rest)))

        def backwards(kept_index: tuple) -> Stmt:
            flipped = tuple(Binary("sub", Const(extent - 1), i) for i, extent in zip(kept_index, spec.kept_shape))
            return stages(0, flipped)

        return loop_nest(spec, spec.kept_shape, "i", backwards)

    def matmul(self, spec: MatmulSpec) -> Stmt:
        def row(outer: tuple) -> Stmt:
            batch, i = outer[:-1], outer[-1]
            a_row = Buffer(spec.fresh("a_row"), spec.dtype, (max(spec.k, 1),), scope=Scope.LOCAL)
            pack = loop_nest(spec, (spec.k,), "k", lambda k: Store(a_row.name, k, spec.load_a(batch, i, k[0])))

            def element(j_index: tuple) -> Stmt:
                (j,) = j_index
                halves = []
                accs = []
                for half, (start, stop) in enumerate(((0, spec.k // 2), (spec.k // 2, spec.k))):
                    acc = local_accumulator(spec, spec.acc_dtype, f"acc{half}")
                    kv = spec.fresh("k")
                    k = Var(kv)
                    a = Load(a_row.name, (k,), spec.dtype)
                    update = Store(acc.name, (Const(0),), spec.multiply_add(read(acc), a, spec.load_b(batch, k, j)))
                    halves.append(seq(Store(acc.name, (Const(0),), spec.init),
                                      For(kv, Const(start), Const(stop - start), update)))
                    accs.append(acc)
                total = Binary("add", read(accs[0]), read(accs[1]))
                body = seq(*halves, spec.epilogue_store(total, batch, i, j))
                return Allocate(accs[0], Allocate(accs[1], body))

            return Allocate(a_row, seq(pack, _tiled(spec, (spec.n,), "j", element)))
        return loop_nest(spec, spec.batch_shape + (spec.m,), "i", row)


def from_source(text: str) -> Graph:
    return Source.from_text(text).specialize({}, None)


def fuse_all(graph: Graph) -> Graph:
    return assign_groups(graph, [{n for n in graph.topological_order() if graph.node(n).op != "param"
                                  and not (graph.node(n).op == "constant" and graph.node(n).type.shape == ())}])


PROGRAMS = {
    "softmax": "def f(x: f32[3, 9]) { return softmax(x, axis=-1) }",
    "layernorm": "def f(x: f16[2, 7], g: f16[7], b: f16[7]) { return layernorm(x, g, b) }",
    "columns": "def f(x: f32[5, 2, 3]) { return x - max(x, axis=(0, 2), keepdims=true) }",
    "matmul_epilogue": "def f(a: f32[2, 3, 5], w: f32[5, 6], b: f32[6]) { return gelu(a @ w + b) }",
    "elementwise": "def f(x: f32[3, 6], y: f32[6]) { return exp(transpose(x, (1, 0))) * 2.0, x + y }",
}


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_a_different_schedule_through_the_spec_api(name: str, fused: bool) -> None:
    graph = from_source(PROGRAMS[name])
    if fused and name != "elementwise":
        graph = fuse_all(graph)
    check = check_lowering(graph, TiledSchedule())
    assert check.ok, check.report()


def test_concat_through_the_spec_api() -> None:
    graph = from_source("def f(x: f32[2, 3], y: f32[2, 5]) { return concat((x, y, x), axis=1) }")
    check = check_lowering(graph, TiledSchedule())
    assert check.ok, check.report()


def test_specs_describe_their_kernels() -> None:
    graph = fuse_all(from_source(PROGRAMS["layernorm"]))
    (spec,) = lower_specs(graph).specs
    assert isinstance(spec, ReductionSpec)
    assert spec.domain == (2, 7) and spec.reduce_axes == (1,) and spec.kept_shape == (2,)
    assert [stage.op for stage in spec.stages] == ["mean", "mean"]
    assert all(stage.acc_dtype is DType.F32 and stage.dtype is DType.F16 for stage in spec.stages)
    assert [b.name for b in spec.reads] == ["x", "g", "b"] and [b.name for b in spec.writes] == ["out0"]
    assert spec.attrs() == (("group", 0), ("kind", "reduction"), ("nodes", spec.nodes))


def test_matmul_spec_folds_prologue_views_into_loads() -> None:
    graph = from_source("def f(a: f32[4, 3], w: f32[5, 3]) { return a @ transpose(w, (1, 0)) }")
    (spec,) = lower_specs(fuse_all(graph)).specs
    assert isinstance(spec, MatmulSpec) and (spec.m, spec.n, spec.k) == (4, 5, 3)
    i, k, j = Var("i"), Var("k"), Var("j")
    assert spec.load_a((), i, k) == Load("a", (i, k), DType.F32)
    assert spec.load_b((), k, j) == Load("w", (j, k), DType.F32)


def test_reshape_that_only_adds_unit_axes_is_plain_indexing() -> None:
    i, j = Var("i"), Var("j")
    assert reshape_index((i, Const(0), j), (4, 6), (4, 1, 6)) == (i, j)
    assert reshape_index((i, j), (4, 1, 6), (4, 6)) == (i, Const(0), j)
    split = reshape_index((i,), (2, 3), (6,))
    assert split == (Binary("floordiv", i, Const(3)), Binary("mod", i, Const(3)))
    merged = reshape_index((i, j), (12,), (2, 6))
    assert merged == (Binary("add", Binary("mul", i, Const(6)), j),)
    assert all(node.dtype is INDEX for index in split + merged for node in walk(index))


def test_naive_schedule_rejects_unknown_cache_mode() -> None:
    with pytest.raises(ValueError, match="cache_rows"):
        NaiveSchedule("sometimes")


def test_program_emits_loops_for_the_ref_target() -> None:
    program = compile_string("def f(x: f32[2, 3]) { return exp(x) + 1.0 }", target="ref")
    assert "loops" in program.emit_kinds
    text = program.ir("loops")
    assert text.startswith("program @f {") and "kernel @" in text and "exp(x[i0, i1])" in text


def test_cli_emits_loops(niche) -> None:
    result = niche("compile", "examples/mlp.nk", "-D", "B=2", "--emit", "loops")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("program @mlp {") and "call @" in result.stdout
