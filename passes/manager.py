"""The pass manager: an ordered list of passes over one IR level, with instruments and checks.

`PassManager.run(ir, ctx)` runs each pass on the result of the one before. Around every pass it
calls the instruments (printing, timing, explain, statistics) and checks that the pass kept its
contract: it returned a `Graph`, and, with `verify_each` (the tests, `--verify-each`) or for any pass
that is not Niche's own, it did not mutate the graph it was given (compared with a snapshot) and the
result passes `ir.graph_verifier.verify_graph` (types, acyclicity, convex groups, no dead values).
Niche's own passes are held to the same checks by the tests; outside them, skipping the snapshots
saves two walks over the whole graph per pass.

A pass that breaks the contract, raises, or reports an error stops the pipeline. The error names
the pass and what it broke; a plugin's failure is a `CompileError` (the user's code is at fault), a
failure in Niche's own passes an `InternalError`. Either way a reproducer is written first: the IR the
pass was given, and the command that replays just that pass (`passes.reproducer`).

The manager is written against a level ("graph" now) so that loop-level passes reuse it once the
loop IR has a verifier and a printer: `check_result` and the snapshot are the level-specific parts.
"""

from __future__ import annotations

import time
from typing import Sequence

from compiler.diagnostics import CompileError, Diagnostic, InternalError, NicheError
from ir.graph import Graph
from passes.collector import collector_paused
from passes.context import PassContext
from passes.instruments import PassInstrument
from passes.pipeline import spec_of
from passes.registry import Pass, PassInfo, info_of
from passes.reproducer import write_reproducer

# Verify after every pass even when the caller did not ask for it. Tests switch this on (see
# tests/passes/conftest.py); the command line has --verify-each.
VERIFY_EACH_DEFAULT = False


class PassManager:
    def __init__(self, passes: Sequence[Pass], *, instruments: Sequence[PassInstrument] = (),
                 verify_each: bool = False, level: str = "graph", reproducer_dir: str | None = None,
                 plugin_files: tuple[str, ...] = (), target: str | None = None) -> None:
        for pass_ in passes:
            if pass_.level != level:
                raise CompileError([Diagnostic(f"pass '{pass_.name}' runs on the {pass_.level} IR, not on the "
                                               f"{level} IR")])
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.verify_each = verify_each or VERIFY_EACH_DEFAULT
        self.level = level
        self.reproducer_dir = reproducer_dir
        self.plugin_files = plugin_files
        self.target = target

    def run(self, graph: Graph, ctx: PassContext, owned: bool = False) -> Graph:
        """The graph after every pass; `graph` itself is left unchanged unless `owned` (the caller hands
        it over: a copy it made for the passes).

        A graph that one of Niche's passes returned, new, is referenced by nothing but this loop, so the
        next of Niche's passes may change it in place (`PassContext.owns_input`) instead of copying it,
        unless something looks at the passes' inputs: verifying (which checks that a pass leaves its input
        alone) or an instrument. A plugin's result is never handed on that way: it may keep a reference."""
        current = graph
        ctx.verify_each = self.verify_each
        donate = not self.verify_each and not self.instruments
        try:
            with collector_paused():  # see passes.collector: collections would rescan the graphs again and again
                for pass_ in self.passes:
                    builtin = info_of(pass_).builtin
                    ctx.owns_input = donate and owned and builtin
                    result = self._run_one(pass_, current, ctx)
                    if result is not current:
                        owned = builtin
                    current = result
        finally:
            ctx.owns_input = False
        ctx.current_pass = None
        for instrument in self.instruments:
            instrument.after_pipeline(current, ctx)
        return current

    def _run_one(self, pass_: Pass, graph: Graph, ctx: PassContext) -> Graph:
        info = info_of(pass_)
        # The input as given, for the reproducer. Niche's own passes never mutate their input unless it
        # is handed over (`ctx.owns_input`; checked below whenever verifying), so theirs is the input
        # itself; a plugin's is copied first, in case it does. When ours changed it, the failure says the
        # reproducer is the input as left.
        before = graph if info.builtin else graph.copy()
        checked = self.verify_each or not info.builtin
        snapshot = fingerprint(graph) if checked else None
        ctx.current_pass = pass_.name
        for instrument in self.instruments:
            instrument.before_pass(pass_, graph, ctx)
        start = time.perf_counter()
        try:
            result = pass_.run(graph, ctx)
        except NicheError as error:
            raise self._failure(pass_, info, before, ctx, f"failed: {error.format()}", error,
                                self._stale(before, graph, snapshot)) from error
        except Exception as error:
            raise self._failure(pass_, info, before, ctx, f"raised {type(error).__name__}: {error}",
                                error, self._stale(before, graph, snapshot)) from error
        seconds = time.perf_counter() - start
        if not isinstance(result, Graph):
            raise self._failure(pass_, info, before, ctx, f"returned {type(result).__name__} instead of a Graph "
                                "(run(graph, ctx) must return the new graph)")
        changed = [] if snapshot is None else [part for part, old, new in zip(_PARTS, snapshot, fingerprint(graph))
                                                if old != new]
        if changed:
            raise self._failure(pass_, info, before, ctx, f"mutated the graph it was given (its {', '.join(changed)}; "
                                "a pass must work on a copy: `graph = graph.copy()` first)",
                                stale=before is graph)
        if checked:
            self._verify(pass_, info, before, result, ctx)
        for instrument in self.instruments:
            instrument.after_pass(pass_, result, ctx, seconds)
        return result

    def _verify(self, pass_: Pass, info: PassInfo, before: Graph, result: Graph, ctx: PassContext) -> None:
        from ir.graph_verifier import verify_graph
        start = time.perf_counter()
        problems = verify_graph(result)
        for instrument in self.instruments:
            instrument.after_verify(pass_, time.perf_counter() - start)
        if problems:
            listed = "".join(f"\n  {problem}" for problem in problems)
            raise self._failure(pass_, info, before, ctx, f"left an invalid graph:{listed}")

    @staticmethod
    def _stale(before: Graph, graph: Graph, snapshot: tuple | None) -> bool:
        """Whether the reproducer's input (`before`) is the pass's input as the pass left it, changed
        (unknown without a snapshot: then not said)."""
        return before is graph and snapshot is not None and fingerprint(graph) != snapshot

    def _failure(self, pass_: Pass, info: PassInfo, before: Graph, ctx: PassContext, what: str,
                 cause: BaseException | None = None, stale: bool = False) -> NicheError:
        ctx.current_pass = None
        plugins = self.plugin_files
        if info.plugin_file is not None and info.plugin_file not in plugins:
            plugins = plugins + (info.plugin_file,)
        reproducer = write_reproducer(before, str(spec_of(pass_)), pass_.name, self.reproducer_dir, plugins,
                                      self.target)
        notes = reproducer.notes()
        if ctx.owns_input:
            notes = notes + ("the pass was given its input to change in place: the reproducer holds that input "
                             "as the pass left it; rerun with --verify-each for the input as it was given",)
        elif stale:
            notes = notes + ("the pass changed its input before failing: the reproducer holds that input as the "
                             "pass left it, not as it was given",)
        if info.builtin and not isinstance(cause, NicheError):
            message = f"internal error in pass '{pass_.name}': {what}"
            notes = notes + ("this is a bug in Niche; rerun with --debug for the traceback",)
            error: NicheError = InternalError([Diagnostic(message, notes=notes)])
        else:
            origin = "" if info.builtin else f" (from {info.origin})"
            error = CompileError([Diagnostic(f"pass '{pass_.name}'{origin} {what}", notes=notes)])
        error.reproducer = reproducer
        error.pass_name = pass_.name
        return error


_PARTS = ("name", "nodes", "edges", "parameters", "outputs", "dims", "attributes", "weights")


def fingerprint(graph: Graph) -> tuple:
    """Everything a pass could change in a graph, for the did-it-mutate-its-input check."""
    # Read from networkx's dicts (node -> data, node -> {user: {key: data}}): a dict and a set compare
    # as the sorted tuples would, without sorting, and without a view object per node or edge.
    nodes = {n: data.get("node") for n, data in graph.nx._node.items()}
    edges = frozenset((source, user, key) for source, users in graph.nx._succ.items()
                      for user, keys in users.items() for key in keys)
    weights = tuple(sorted((name, id(array)) for name, array in graph.weight_data.items()))
    attributes = tuple(sorted(graph.attributes.items(), key=lambda item: item[0]))
    return (graph.name, nodes, edges, tuple(graph.params), tuple(graph.outputs), tuple(sorted(graph.dims.items())),
            attributes, weights)
