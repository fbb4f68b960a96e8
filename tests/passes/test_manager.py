"""The pass manager: instruments, the pass contract, clean failures and reproducers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from compiler.diagnostics import CompileError, InternalError
from compiler.driver import compile_string
from ir.graph import Graph
from ir.graph_parser import parse_graph
from ir.types import TensorType
from passes.context import PassContext
from passes.instruments import ExplainFusion, PrintIR, Statistics, Timing
from passes.manager import PassManager
from passes.pipeline import build_passes, parse_pipeline
from passes.registry import Pass, register_pass

MLP = """
def mlp(x: f32[2, 8], w: f32[8, 8], b: f32[8]) -> f32[2, 8] {
    return softmax(relu(x @ w + b) * 1.0, axis=-1)
}"""


def manager(pipeline: str, tmp_path: Path | None = None, **keywords) -> PassManager:
    return PassManager(build_passes(parse_pipeline(pipeline)), reproducer_dir=str(tmp_path) if tmp_path else None,
                       **keywords)


def test_instruments_print_time_explain_and_count(graph_of) -> None:
    out, err = io.StringIO(), io.StringIO()
    instruments = [PrintIR(after=("cse",)), ExplainFusion(), Statistics(), Timing()]
    ctx = PassContext(out=out, err=err)
    manager("canonicalize,cse,fuse-epilogue,fuse-reductions", instruments=instruments).run(graph_of(MLP), ctx)
    printed = out.getvalue()
    assert printed.startswith("// ----- IR after cse ----- //\ngraph @mlp(") and printed.count("IR after") == 1
    parse_graph(printed.split("\n", 1)[1])  # what is printed reads back
    text = err.getvalue()
    assert "fuse-epilogue: %0 (matmul)" in text and "fused into group 0" in text
    assert "pass statistics:\n  canonicalize: 1 rewrite (mul-by-one 1), 2 dead values removed\n" in text
    assert "  fuse-reductions: 5 nodes into 1 group," in text
    assert "pass timing (wall clock, 4 passes, total" in text and "(verifier)" in text
    for name in ("canonicalize", "cse", "fuse-epilogue", "fuse-reductions", "total"):
        assert f"%  {name}\n" in text


def test_print_ir_after_all_prints_every_pass(graph_of) -> None:
    out = io.StringIO()
    manager("cse,dce", instruments=[PrintIR(after_all=True)]).run(graph_of(MLP), PassContext(out=out))
    assert out.getvalue().count("// ----- IR after") == 2


def test_statistics_name_passes_without_any(graph_of, tmp_path: Path) -> None:
    plugin = tmp_path / "quiet.py"
    plugin.write_text("from passes.registry import Pass, register_pass\n@register_pass\nclass Q(Pass):\n"
                      "    name = 'quiet'\n    summary = 'reports nothing'\n"
                      "    def run(self, graph, ctx):\n        return graph.copy()\n")
    from passes.registry import load_pass_file
    load_pass_file(plugin)
    err = io.StringIO()
    manager("quiet", instruments=[Statistics()]).run(graph_of(MLP), PassContext(err=err))
    assert "  quiet: no statistics reported\n" in err.getvalue()


def faulty(name: str, run) -> type[Pass]:
    cls = type(name.title().replace("-", ""), (Pass,), {"name": name, "summary": "a faulty pass", "run": run})
    cls.__module__ = "user_plugin"
    return register_pass(cls)


def _raises(self, graph, ctx):
    raise ValueError("bad day")


def _returns_none(self, graph, ctx):
    return None


def _mutates(self, graph, ctx):
    graph.outputs.append(graph.outputs[0])
    return graph


def _breaks_a_type(self, graph, ctx):
    graph = graph.copy()
    node = next(n for n, payload in graph.nodes() if payload.op == "relu")
    graph.set_node(node, graph.node(node).replace(type=TensorType((3,), graph.node(node).type.dtype)))
    return graph


def _makes_a_cycle(self, graph, ctx):
    graph = graph.copy()
    order = [n for n, payload in graph.nodes() if payload.op in ("add", "relu")]
    graph.set_operand(order[0], 0, order[1])
    return graph


@pytest.mark.parametrize("run, what", [
    (_raises, "raised ValueError: bad day"),
    (_returns_none, "returned NoneType instead of a Graph"),
    (_mutates, "mutated the graph it was given (its outputs; a pass must work on a copy"),
    (_breaks_a_type, "left an invalid graph:\n  %2 (relu): expected type f32[2,8] but found f32[3]"),
    (_makes_a_cycle, "left an invalid graph:\n  the graph has a cycle"),
], ids=["raises", "returns-none", "mutates", "breaks-a-type", "makes-a-cycle"])
def test_faulty_user_passes_stop_cleanly_with_a_reproducer(graph_of, tmp_path: Path, run, what: str) -> None:
    faulty("user-pass", run)
    graph = graph_of(MLP)
    with pytest.raises(CompileError) as error:
        manager("canonicalize,user-pass", tmp_path, verify_each=False).run(graph, PassContext())
    assert not isinstance(error.value, InternalError)
    message = error.value.diagnostics[0].message
    assert message.startswith(f"pass 'user-pass' (from module user_plugin) {what}")
    reproducer = error.value.reproducer
    text = Path(reproducer.path).read_text()
    assert reproducer.path == str(tmp_path / "mlp.user-pass.graph")
    assert " mul(" not in text and "matmul(" in text  # after canonicalize, before the faulty pass
    assert reproducer.command == f"niche compile {tmp_path}/mlp.user-pass.graph --passes user-pass --verify-each"
    assert any(note.startswith("replay just that pass with: niche compile") for note in error.value.diagnostics[0].notes)


def test_our_own_passes_fail_as_internal_errors(graph_of, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from passes.cse import CommonSubexpressionElimination
    monkeypatch.setattr(CommonSubexpressionElimination, "run", _raises)
    with pytest.raises(InternalError) as error:
        manager("cse", tmp_path).run(graph_of(MLP), PassContext())
    diagnostic = error.value.diagnostics[0]
    assert diagnostic.message == "internal error in pass 'cse': raised ValueError: bad day"
    assert "this is a bug in Niche; rerun with --debug for the traceback" in diagnostic.notes
    assert isinstance(error.value.__cause__, ValueError)
    assert (tmp_path / "mlp.cse.graph").is_file()


def test_our_own_pass_that_mutates_its_input_says_the_reproducer_is_the_changed_input(
        graph_of, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from passes.cse import CommonSubexpressionElimination
    monkeypatch.setattr(CommonSubexpressionElimination, "run", _mutates)
    with pytest.raises(InternalError) as error:
        manager("cse", tmp_path).run(graph_of(MLP), PassContext())
    notes = error.value.diagnostics[0].notes
    assert any("the reproducer holds that input as the pass left it" in note for note in notes)


def test_a_plugin_that_mutates_its_input_leaves_the_reproducer_as_given(graph_of, tmp_path: Path) -> None:
    faulty("user-pass", _mutates)
    with pytest.raises(CompileError) as error:
        manager("user-pass", tmp_path, verify_each=False).run(graph_of(MLP), PassContext())
    assert not any("as the pass left it" in note for note in error.value.diagnostics[0].notes)


def test_the_api_raises_compile_error_for_plugin_failures(tmp_path: Path) -> None:
    plugin = tmp_path / "bad.py"
    plugin.write_text("from passes.registry import Pass, register_pass\n@register_pass\nclass B(Pass):\n"
                      "    name = 'bad'\n    summary = 'raises'\n"
                      "    def run(self, graph, ctx):\n        raise KeyError('x')\n")
    with pytest.raises(CompileError, match=r"pass 'bad' \(from .*bad.py\) raised KeyError: 'x'") as error:
        compile_string(MLP, passes="bad", load_passes=(str(plugin),), reproducer_dir=str(tmp_path))
    assert f"--load-pass {plugin}" in error.value.reproducer.command


def test_the_input_is_never_changed(graph_of) -> None:
    graph = graph_of(MLP)
    before = graph.canonical()
    manager("canonicalize,cse,dce,fuse-epilogue,fuse-reductions,fuse-elementwise").run(graph, PassContext())
    assert graph.canonical() == before


def test_passes_of_another_level_are_refused() -> None:
    @register_pass
    class LoopPass(Pass):
        name = "some-loop-pass"
        summary = "runs on loops"
        level = "loop"

        def run(self, ir, ctx):
            return ir

    with pytest.raises(CompileError, match="runs on the loop IR; this pipeline runs on the graph IR"):
        build_passes(parse_pipeline("some-loop-pass"))
    with pytest.raises(CompileError, match="runs on the loop IR, not on the graph IR"):
        PassManager([LoopPass()])


def test_group_ids_continue_after_existing_groups(graph_of) -> None:
    graph = graph_of(MLP)
    ctx = PassContext()
    assert ctx.new_group_id(graph) == 0 and ctx.new_group_id(graph) == 1
    grouped = Graph.copy(graph)
    node = next(n for n, payload in grouped.nodes() if payload.op == "relu")
    grouped.set_node(node, grouped.node(node).replace(group=7))
    assert ctx.new_group_id(grouped) == 8
