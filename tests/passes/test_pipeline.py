"""Pipeline strings, typed pass options, and the default pipeline of each -O level."""

from __future__ import annotations

import pytest

from compiler.driver import compile_string
from passes.fusion_common import FusionOptions
from passes.pipeline import (DEFAULT_PIPELINES, PassSpec, PipelineError, build_passes, format_pipeline,
                             parse_pipeline, spec_of)


def test_parse_names_and_options() -> None:
    specs = parse_pipeline(" canonicalize , fuse-elementwise{max-group=8, recompute=false},cse{}")
    assert specs == [PassSpec("canonicalize"), PassSpec("fuse-elementwise", (("max-group", "8"), ("recompute", "false"))),
                     PassSpec("cse")]
    assert str(specs[1]) == "fuse-elementwise{max-group=8,recompute=false}"
    assert parse_pipeline("") == [] and parse_pipeline("   ") == []


@pytest.mark.parametrize("text, message, column", [
    ("cse,,dce", "expected a pass name, found ','", 4),
    ("cse dce", "expected ',' between passes", 4),
    ("fuse-elementwise{max-group}", "expected '=' after option 'max-group'", 26),
    ("fuse-elementwise{max-group=8", "unclosed '{' in the options of 'fuse-elementwise'", 28),
    ("Fuse", "'Fuse' is not a pass name", 0),
])
def test_syntax_errors_point_at_the_column(text: str, message: str, column: int) -> None:
    with pytest.raises(PipelineError) as error:
        parse_pipeline(text)
    (diagnostic,) = error.value.diagnostics
    assert message in diagnostic.message
    assert diagnostic.notes == (f"in: {text}", "    " + " " * column + "^")


def test_options_are_converted_by_their_types() -> None:
    (fuse,) = build_passes(parse_pipeline("fuse-reductions{max-group=12,max-working-set=4MiB,recompute=no}"))
    assert fuse.options == FusionOptions(max_group=12, max_working_set=4 * 1024 * 1024, recompute=False)
    (again,) = build_passes(parse_pipeline("fuse-reductions{max-working-set=none}"))
    assert again.options.max_working_set is None
    assert format_pipeline([fuse]) == "fuse-reductions{max-group=12,max-working-set=4194304,recompute=false}"
    assert spec_of(again) == PassSpec("fuse-reductions")


@pytest.mark.parametrize("text, message", [
    ("fuse-elementwise{depth=3}", "pass 'fuse-elementwise' has no option 'depth' (options: max-group, "
                                  "max-working-set, recompute)"),
    ("fuse-elementwise{max-group=many}", "option 'max-group' of pass 'fuse-elementwise': bad value 'many'"),
    ("fuse-elementwise{recompute=maybe}", "bad value 'maybe': expected true or false"),
    ("cse{x=1}", "pass 'cse' has no option 'x' (options: none)"),
    ("no-such-pass", "unknown pass 'no-such-pass'"),
])
def test_option_errors(text: str, message: str) -> None:
    with pytest.raises(Exception) as error:
        build_passes(parse_pipeline(text))
    assert message in str(error.value)


SOURCE = "def f(x: f32[4, 8]) { return exp(x * 1.0) + 1.0 }"


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_default_pipelines_per_level(level: int) -> None:
    graph = compile_string(SOURCE, opt_level=level).graph
    ops = [node.op for _, node in graph.nodes() if node.op != "param"]
    if level == 0:
        assert ops == ["constant", "mul", "exp", "add"] and not graph.groups()
    elif level == 1:
        assert sorted(ops) == ["add", "constant", "exp"] and not graph.groups()  # x * 1.0 folded
    else:
        assert len(graph.groups()) == 1
    assert DEFAULT_PIPELINES[0] == "" and DEFAULT_PIPELINES[1] == "canonicalize,cse,dce"
    assert DEFAULT_PIPELINES[2] == DEFAULT_PIPELINES[3] == ("canonicalize,cse,dce,fuse-epilogue,fuse-reductions,"
                                                            "fuse-elementwise")


def test_an_explicit_pipeline_replaces_the_default() -> None:
    graph = compile_string(SOURCE, opt_level=2, passes="cse").graph
    assert "mul" in [node.op for _, node in graph.nodes()] and not graph.groups()
