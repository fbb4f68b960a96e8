"""Pass registration and plugin loading: --load-pass files and the niche.passes entry-point group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from compiler.diagnostics import CompileError
from passes import registry
from passes.registry import Pass, PassRegistrationError, all_passes, fusion_rules, get_pass, register_pass

BUILTIN = ["canonicalize", "cse", "dce", "fuse-elementwise", "fuse-epilogue", "fuse-reductions"]


def test_builtin_passes_are_registered_with_summaries() -> None:
    infos = {info.name: info for info in all_passes("graph")}
    assert set(BUILTIN) <= set(infos)
    for name in BUILTIN:
        assert infos[name].builtin and infos[name].cls.summary and "\n" not in infos[name].cls.summary


def test_unknown_pass_suggests_close_names() -> None:
    with pytest.raises(CompileError, match="unknown pass 'fuse-elementwize'; did you mean 'fuse-elementwise'"):
        get_pass("fuse-elementwize")


@pytest.mark.parametrize("attributes, message", [
    ({"name": "Bad_Name", "summary": "s"}, "kebab-case"),
    ({"name": "no-summary"}, "one-line `summary`"),
    ({"name": "two-lines", "summary": "a\nb"}, "one-line `summary`"),
    ({"name": "weird-level", "summary": "s", "level": "tree"}, "levels are graph, loop"),
    ({"name": "bad-options", "summary": "s", "Options": dict}, "must be a dataclass"),
])
def test_malformed_passes_are_refused_at_definition(attributes: dict, message: str) -> None:
    def run(self, graph, ctx):
        return graph

    cls = type("P", (Pass,), {"run": run, **attributes})
    with pytest.raises(PassRegistrationError, match=message):
        register_pass(cls)


def test_a_pass_without_run_is_refused() -> None:
    with pytest.raises(PassRegistrationError, match="does not define run"):
        register_pass(type("P", (Pass,), {"name": "lazy", "summary": "s"}))


def test_name_clashes_between_origins_are_errors(tmp_path: Path) -> None:
    plugin = tmp_path / "clash.py"
    plugin.write_text("from passes.registry import Pass, register_pass\n"
                      "@register_pass\nclass C(Pass):\n    name = 'cse'\n    summary = 's'\n"
                      "    def run(self, graph, ctx):\n        return graph\n")
    with pytest.raises(PassRegistrationError, match="pass 'cse' from .*clash.py clashes with the pass of that "
                                                    "name from built-in"):
        registry.load_pass_file(plugin)


def test_load_pass_file_registers_once_and_records_the_origin(tmp_path: Path) -> None:
    plugin = tmp_path / "mine.py"
    plugin.write_text("""
from dataclasses import dataclass
from passes.registry import Pass, register_pass, fusion_rule

@dataclass(frozen=True)
class Options:
    depth: int = 2

@register_pass
class Mine(Pass):
    name = "mine"
    summary = "does nothing"
    Options = Options
    def run(self, graph, ctx):
        return graph.copy()

@fusion_rule
def never_fuse_exp(graph, producer, consumer):
    return None
""")
    name = registry.load_pass_file(plugin)
    assert registry.load_pass_file(plugin) == name  # a second load does nothing
    info = get_pass("mine")
    assert not info.builtin and info.origin == str(plugin) and info.plugin_file == str(plugin)
    assert info.cls.Options().depth == 2
    (rule,) = [r for r in fusion_rules() if r.name == "never-fuse-exp"]
    assert rule.origin == str(plugin)


def test_plugin_import_errors_point_into_the_plugin(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(CompileError) as error:
        registry.load_pass_file(broken)
    (diagnostic,) = error.value.diagnostics
    assert diagnostic.loc.line == 2 and diagnostic.loc.file == str(broken)
    assert "error while loading pass plugin: RuntimeError: no GPU here" in diagnostic.message

    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(CompileError, match="syntax error in pass plugin") as error:
        registry.load_pass_file(syntax)
    assert error.value.diagnostics[0].loc.line == 1

    with pytest.raises(CompileError, match="--load-pass: no such file 'missing.py'"):
        registry.load_pass_file("missing.py")


def test_entry_point_plugins_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "niche_extra_passes.py"
    package.write_text("""
from passes.registry import Pass, register_pass

@register_pass
class Installed(Pass):
    name = "installed-pass"
    summary = "comes from an installed distribution"
    def run(self, graph, ctx):
        return graph.copy()
""")
    dist = tmp_path / "niche_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: niche-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[niche.passes]\nextra = niche_extra_passes\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._state["entry_points"] = False
    info = get_pass("installed-pass")
    assert info.origin == "entry point extra = niche_extra_passes"
    sys.modules.pop("niche_extra_passes", None)


def test_failing_entry_points_name_themselves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "niche_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: niche-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[niche.passes]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._state["entry_points"] = False
    with pytest.raises(CompileError, match="cannot load the pass plugin entry point broken = "
                                           "no_such_module_anywhere .group niche.passes.: ModuleNotFoundError"):
        registry.load_entry_points()
