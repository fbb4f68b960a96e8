"""The graph-pass stage of the driver: from `CompileOptions` to a configured, running PassManager.

`run_graph_pipeline(graph, options)` loads the plugins (`--load-pass` files, then installed entry
points), picks the pipeline (`--passes`, else the default of the -O level, with `sparsify` after `dce`
at -O2 and -O3 when weights are bound to data: docs/sparsity.md), switches on the
instruments the options ask for and runs the passes on `graph`: on a copy without its dead values when
it has some or its networkx dicts are not in a copy's order, else on `graph` itself, which the passes
then see exactly as they would see a copy (the frontend's graphs are such graphs: `IRGen.build`).

The fusion working-set limit is, in order: `CompileOptions.fusion_working_set_limit`, else the
target's `fusion_working_set_limit` attribute (bytes) when it declares one, else no limit; a fusion
pass's own `max-working-set` option overrides both for that pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.diagnostics import Diagnostic, InternalError
from ir.graph import Graph
from passes.context import PassContext
from passes.instruments import ExplainFusion, PassInstrument, PrintIR, Statistics, Timing
from passes.manager import PassManager
from passes.pipeline import PassSpec, build_passes, default_pipeline, parse_pipeline
from passes.registry import get_pass, load_entry_points, load_pass_file

if TYPE_CHECKING:
    from targets.base import CompileOptions


def graph_passes(options: CompileOptions) -> PassManager:
    """The PassManager that `options` describe (plugins loaded, pipeline parsed, instruments set)."""
    plugin_files = _names(options.load_passes)
    for path in plugin_files:
        load_pass_file(path)
    load_entry_points()
    specs = parse_pipeline(options.passes) if options.passes is not None else default_pipeline(options.opt_level)
    if options.passes is None and options.weights and options.opt_level >= 2:
        specs = with_sparsify(specs)  # bound weights: choose their formats (passes/sparsify.py)
    passes = build_passes(specs, "graph")
    print_after = _names(options.print_ir_after)
    for name in print_after:
        get_pass(name)  # an unknown name is an error, not silence
    instruments: list[PassInstrument] = []
    if options.print_ir_after_all or print_after:
        instruments.append(PrintIR(options.print_ir_after_all, print_after))
    if options.explain_fusion:
        instruments.append(ExplainFusion())
    if options.pass_stats:
        instruments.append(Statistics())
    if options.pass_timing:
        instruments.append(Timing())
    return PassManager(passes, instruments=instruments, verify_each=options.verify_each,
                       reproducer_dir=options.reproducer_dir, plugin_files=plugin_files,
                       target=options.target)


def with_sparsify(specs: list[PassSpec]) -> list[PassSpec]:
    """The default pipeline with `sparsify` after `dce` (before fusion, which reads formats)."""
    position = next((i + 1 for i, spec in enumerate(specs) if spec.name == "dce"), 0)
    return specs[:position] + [PassSpec("sparsify")] + specs[position:]


def _names(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A tuple of names from an option given as one string or a sequence (the Python API takes both)."""
    return (value,) if isinstance(value, str) else tuple(value)


def working_set_limit(options: CompileOptions) -> int | None:
    if options.fusion_working_set_limit is not None:
        return options.fusion_working_set_limit
    from targets.base import TargetError, get_target
    try:
        target = get_target(options.target)
    except TargetError:  # reported by the target stage, after the passes
        return None
    return getattr(target, "fusion_working_set_limit", None)


def run_graph_pipeline(graph: Graph, options: CompileOptions) -> Graph:
    """`graph` after the graph passes that `options` select (the input is not changed; it is what is
    returned when no pass changes anything)."""
    manager = graph_passes(options)
    if not manager.passes:
        return graph
    copied = graph.has_dead_values() or not graph.in_copy_order()
    if copied:
        graph = graph.copy()
        graph.remove_dead()  # the IR's invariant: every value reaches an output; a graph may come with unused ones
    # Otherwise the passes run on `graph` itself: they never change their input, and it is in the order
    # of its copy, so they see what they would see given a copy (the frontend's graphs are both).
    if manager.verify_each:
        _verify_input(graph)
    ctx = PassContext(options, working_set_limit=working_set_limit(options), explain=options.explain_fusion,
                      record=options.explain_fusion or options.pass_stats)
    return manager.run(graph, ctx, owned=copied)


def _verify_input(graph: Graph) -> None:
    from ir.graph_verifier import verify_graph
    problems = verify_graph(graph)
    if problems:
        listed = "".join(f"\n  {p}" for p in problems)
        raise InternalError([Diagnostic(f"internal error: the graph is invalid before the first pass:{listed}")])

