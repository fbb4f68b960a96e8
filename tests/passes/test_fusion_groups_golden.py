"""The groups the fusion passes form are pinned: every example, and random graphs, give exactly the
fused graph recorded in golden/fusion_groups/ (same groups, same recomputed copies, same statistics).

The inputs are stored too (graph IR after canonicalize, cse and dce), so the test depends on the three
fusion passes alone, not on the frontend or the other passes. The files were recorded with the fusion
engine as it was before its legality checks were bounded by a topological order of the graph of
kernels (`passes.fusion_order`); that change must not alter any result. Regenerate after an intended
change with `python tests/passes/test_fusion_groups_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden") / "fusion_groups"
FUSION = "fuse-epilogue,fuse-reductions,fuse-elementwise"
VARIANTS = {  # name -> (pipeline, PassContext keywords)
    "default": (FUSION, {}),
    "small-groups": ("fuse-epilogue{max-group=3},fuse-reductions{max-group=4},fuse-elementwise{max-group=5}", {}),
    "working-set": (FUSION, {"working_set_limit": 4096}),
    "tight-working-set": (FUSION, {"working_set_limit": 96}),
    "no-recompute": ("fuse-epilogue{recompute=false},fuse-reductions{recompute=false},"
                     "fuse-elementwise{recompute=false}", {}),
}
EVERY_VARIANT = ("llama_decode_70b", "video_diffusion")  # the other inputs run the default variant only
LLAMA_70B = {"L": 2, "D": 8192, "Hq": 64, "Hkv": 8, "Dh": 128, "F": 28672, "V": 128256, "B": 16, "T": 4096}
RANDOM = GOLDEN / "random.json"
RANDOM_VARIANTS = ("default", "tight-working-set")


def fused_text(input_text: str, variant: str) -> str:
    """The fused graph of a stored input under one variant, with the statistics of each pass."""
    from ir.graph_parser import parse_graph
    from ir.graph_printer import print_graph
    from passes.context import PassContext
    from passes.manager import PassManager
    from passes.pipeline import build_passes, parse_pipeline
    pipeline, context = VARIANTS[variant]
    ctx = PassContext(**context)
    fused = PassManager(build_passes(parse_pipeline(pipeline))).run(parse_graph(input_text), ctx)
    return print_graph(fused) + "".join(f"// {stats}\n" for stats in ctx.stats)


def example_inputs() -> list[str]:
    return sorted(p.name[:-len(".input.graph")] for p in GOLDEN.glob("*.input.graph"))


def variants_of(name: str) -> tuple[str, ...]:
    return tuple(VARIANTS) if name in EVERY_VARIANT else ("default",)


@pytest.mark.parametrize(("name", "variant"), [(n, v) for n in example_inputs() for v in variants_of(n)])
def test_examples_form_the_recorded_groups(name: str, variant: str) -> None:
    expected = (GOLDEN / f"{name}.{variant}.graph").read_text()
    assert fused_text((GOLDEN / f"{name}.input.graph").read_text(), variant) == expected


def test_random_graphs_form_the_recorded_groups() -> None:
    cases = json.loads(RANDOM.read_text())
    assert len(cases) >= 30
    for index, case in enumerate(cases):
        for variant, expected in case["fused"].items():
            assert fused_text(case["input"], variant) == expected, f"random graph {index}, variant {variant}"


def test_the_recorded_inputs_cover_every_example() -> None:
    names = {p.stem for p in (ROOT / "examples").glob("*.nk")} | {p.stem for p in (ROOT / "examples").glob("*/*.nk")}
    assert names <= set(example_inputs())


# -- regeneration ------------------------------------------------------------------------------


def _input_text(path: Path, defines: dict[str, int]) -> str:
    from compiler.driver import Source
    from ir.graph_printer import print_graph
    from passes.context import PassContext
    from passes.manager import PassManager
    from passes.pipeline import build_passes, parse_pipeline
    graph = Source.from_file(path).specialize(defines, None)
    graph.remove_dead()
    graph = PassManager(build_passes(parse_pipeline("canonicalize,cse,dce"))).run(graph, PassContext())
    return print_graph(graph)


def write_golden(random_inputs: list[str] | None = None) -> None:
    """Record every example's input and fused graphs; `random_inputs` (graph texts) replace the
    random cases, which are otherwise re-fused from the recorded inputs."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    sources = {p.stem: (p, {}) for p in sorted((ROOT / "examples").glob("*.nk"))}
    sources.update({p.stem: (p, {}) for p in sorted((ROOT / "examples").glob("*/*.nk"))})
    sources["llama_decode_70b"] = (ROOT / "examples" / "llama_decode.nk", LLAMA_70B)
    for name, (path, defines) in sources.items():
        text = _input_text(path, defines)
        (GOLDEN / f"{name}.input.graph").write_text(text)
        for variant in variants_of(name):
            (GOLDEN / f"{name}.{variant}.graph").write_text(fused_text(text, variant))
    if random_inputs is None:
        random_inputs = [case["input"] for case in json.loads(RANDOM.read_text())]
    cases = [{"input": text, "fused": {v: fused_text(text, v) for v in RANDOM_VARIANTS}} for text in random_inputs]
    RANDOM.write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    write_golden()
