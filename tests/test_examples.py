"""The example programs mean what their headers say.

Each example is checked against an independent numpy implementation of the model it describes (f32,
reference interpreter), the LLM examples against each other (a prefill of S+1 tokens equals a prefill
of S tokens followed by one decode step), every -D set documented in a header builds a graph of the
documented size, and every example's printed graph IR reads back into an equal graph.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.checking import compare
from compiler.driver import Source
from compiler.inputs import random_inputs
from ir.dtypes import DType
from ir.graph import Graph

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.nk"))
LLM = {"L": 2, "D": 32, "Hq": 4, "Hkv": 2, "Dh": 8, "F": 48, "V": 40, "DT": "f32"}


def example(name: str) -> str:
    return str(ROOT / "examples" / f"{name}.nk")


def frontend_graph(path: str, defines: dict, entry: str | None = None) -> Graph:
    return Source.from_file(path).specialize(defines, entry)


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: DType = DType.F32) -> None:
    result = compare(actual, np.asarray(expected, dtype=actual.dtype), dtype)
    assert result.ok, result.message


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def rope_tables(positions: np.ndarray, dh: int) -> tuple[np.ndarray, np.ndarray]:
    """Llama's cos/sin tables (theta 500000) in the "rotate half" layout, one row per position."""
    inv_freq = 1.0 / 500000.0 ** (np.arange(0, dh, 2) / dh)
    angles = np.outer(positions, inv_freq)
    return (np.concatenate([np.cos(angles)] * 2, -1).astype(np.float32),
            np.concatenate([np.sin(angles)] * 2, -1).astype(np.float32))


# -- numpy models ------------------------------------------------------------------------------------

def rms(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    return v / np.sqrt((v * v).mean(-1, keepdims=True) + 1e-5) * g


def llama_layer_numpy(h: np.ndarray, cos: np.ndarray, sin: np.ndarray, w: dict, Hq: int, Hkv: int,
                      Dh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Llama layer over a whole prompt, written as Hugging Face's reference code does it (keys and
    values repeated per query head): the new hidden state and the layer's keys and values."""
    B, S, _ = h.shape

    def rope(v: np.ndarray) -> np.ndarray:
        half = Dh // 2
        return v * cos + np.concatenate([-v[..., half:], v[..., :half]], -1) * sin

    def heads(v: np.ndarray, n: int) -> np.ndarray:
        return v.reshape(B, S, n, Dh).transpose(0, 2, 1, 3)

    a = rms(h, w["attn_norm"])
    q, k, v = rope(heads(a @ w["wq"], Hq)), rope(heads(a @ w["wk"], Hkv)), heads(a @ w["wv"], Hkv)
    k_all, v_all = np.repeat(k, Hq // Hkv, axis=1), np.repeat(v, Hq // Hkv, axis=1)
    scores = np.where(np.tril(np.ones((S, S), bool)), q @ k_all.transpose(0, 1, 3, 2) / math.sqrt(Dh), -np.inf)
    o = (softmax(scores) @ v_all).transpose(0, 2, 1, 3).reshape(B, S, Hq * Dh)
    h = h + o @ w["wo"]
    m = rms(h, w["mlp_norm"])
    gate = m @ w["w_gate"]
    return h + (gate / (1 + np.exp(-gate)) * (m @ w["w_up"])) @ w["w_down"], k, v


def llama_numpy(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, w: dict, L: int, Hq: int, Hkv: int,
                Dh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Llama forward pass over a whole prompt: last-token logits and each layer's keys and values."""
    h = x.astype(np.float64)
    keys, values = [], []
    for l in range(L):
        h, k, v = llama_layer_numpy(h, cos, sin, {name: w[name][l] for name in LAYER_WEIGHTS}, Hq, Hkv, Dh)
        keys.append(k)
        values.append(v)
    return rms(h[:, -1], w["final_norm"]) @ w["lm_head"], np.stack(keys), np.stack(values)


LAYER_WEIGHTS = ["attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down"]
WEIGHTS = ["attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down", "final_norm", "lm_head"]


def llama_weights(defines: dict, seed: int = 0) -> dict[str, np.ndarray]:
    graph = frontend_graph(example("llama_prefill"), {**defines, "B": 1, "S": 1})
    inputs = random_inputs(graph, seed)
    return {name: inputs[name] for name in WEIGHTS}


def test_llama_prefill_matches_numpy() -> None:
    B, S = 2, 5
    w = llama_weights(LLM)
    x = np.random.default_rng(1).standard_normal((B, S, LLM["D"])).astype(np.float32)
    cos, sin = rope_tables(np.arange(S), LLM["Dh"])
    prog = compiler.compile(example("llama_prefill"), defines={**LLM, "B": B, "S": S})
    logits, keys, values = prog.reference(x, cos, sin, **w)
    want_logits, want_keys, want_values = llama_numpy(x, cos, sin, w, LLM["L"], LLM["Hq"], LLM["Hkv"], LLM["Dh"])
    assert_close(logits, want_logits)
    assert_close(keys, want_keys)
    assert_close(values, want_values)


def test_decoder_layer_matches_numpy() -> None:
    sizes = {"B": 2, "S": 6, "D": 32, "Hq": 8, "Hkv": 2, "Dh": 4, "F": 40}
    prog = compiler.compile(example("decoder_layer"), defines=sizes)
    inputs = random_inputs(frontend_graph(example("decoder_layer"), sizes), 10)
    inputs["cos"], inputs["sin"] = rope_tables(np.arange(6), 4)
    weights = {name: inputs[name].astype(np.float64) for name in LAYER_WEIGHTS}
    expected, _, _ = llama_layer_numpy(inputs["x"].astype(np.float64), inputs["cos"], inputs["sin"], weights,
                                       Hq=8, Hkv=2, Dh=4)
    assert_close(prog.reference(**inputs), expected)


def test_prefill_then_decode_equals_a_longer_prefill() -> None:
    """Decoding token S against the cache of S prompt tokens gives the logits of a prefill of S+1 tokens."""
    B, S = 2, 6
    w = llama_weights(LLM, seed=2)
    x = np.random.default_rng(3).standard_normal((B, S + 1, LLM["D"])).astype(np.float32)
    cos, sin = rope_tables(np.arange(S + 1), LLM["Dh"])
    prefill = compiler.compile(example("llama_prefill"), defines={**LLM, "B": B})
    long_logits, long_keys, long_values = prefill.reference(x=x, cos=cos, sin=sin, **w)  # S binds from x
    _, keys, values = prefill.reference(x=x[:, :S], cos=cos[:S], sin=sin[:S], **w)
    decode = compiler.compile(example("llama_decode"), defines={**LLM, "B": B})
    row = (B, LLM["Dh"])
    logits, new_k, new_v = decode.reference(x[:, S], np.broadcast_to(cos[S], row), np.broadcast_to(sin[S], row),
                                            keys, values, **w)
    assert_close(logits, long_logits)
    assert_close(new_k, long_keys[:, :, :, S])
    assert_close(new_v, long_values[:, :, :, S])


def test_code_completion_is_the_same_model() -> None:
    """`prompt` is llama_prefill and `next_token` is llama_decode, on the same weights."""
    B, P = 1, 4
    w = llama_weights(LLM, seed=4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((B, P, LLM["D"])).astype(np.float32)
    cos, sin = rope_tables(np.arange(P + 1), LLM["Dh"])
    defines = {**LLM, "B": B, "P": P, "T": P}
    prompt = compiler.compile(example("code_completion"), defines=defines, entry="prompt")
    logits, keys, values = prompt.reference(x, cos[None, :P], sin[None, :P], **w)
    want = compiler.compile(example("llama_prefill"), defines={**LLM, "B": B, "S": P}).reference(
        x, cos[:P], sin[:P], **w)
    for got, expected in zip((logits, keys, values), want):
        assert_close(got, expected)
    step = compiler.compile(example("code_completion"), defines=defines)
    token = rng.standard_normal((B, LLM["D"])).astype(np.float32)
    got = step.reference(token, cos[None, P], sin[None, P], keys, values, **w)
    expected = compiler.compile(example("llama_decode"), defines={**LLM, "B": B, "T": P}).reference(
        token, cos[None, P], sin[None, P], keys, values, **w)
    assert_close(got[0], expected[0])
    assert_close(got[1][:, :, :, 0], expected[1])


def test_attention_matches_numpy() -> None:
    prog = compiler.compile(example("attention"))
    graph = frontend_graph(example("attention"), {})
    B, S, H, Dh = (graph.dims[k] for k in ("B", "S", "H", "Dh"))
    inputs = random_inputs(graph, 6)
    x, wq, wk, wv, wo = (inputs[k].astype(np.float64) for k in ("x", "wq", "wk", "wv", "wo"))

    def heads(v: np.ndarray) -> np.ndarray:
        return v.reshape(B, S, H, Dh).transpose(0, 2, 1, 3)

    scores = heads(x @ wq) @ heads(x @ wk).transpose(0, 1, 3, 2) / math.sqrt(Dh)
    scores = np.where(np.tril(np.ones((S, S), bool)), scores, -np.inf)
    expected = (softmax(scores) @ heads(x @ wv)).transpose(0, 2, 1, 3).reshape(B, S, H * Dh) @ wo
    assert_close(prog.reference(**inputs), expected)


def test_video_diffusion_matches_numpy() -> None:
    defines = {"DT": "f32", "NB": 2, "FR": 3, "HH": 2, "WW": 3, "D": 16, "H": 2}
    prog = compiler.compile(example("video_diffusion"), defines=defines)
    graph = frontend_graph(example("video_diffusion"), defines)
    inputs = random_inputs(graph, 7)
    p = {k: v.astype(np.float64) for k, v in inputs.items()}
    B, FR, S, D, H = 1, 3, 6, 16, 2
    Dh = D // H

    def norm(v: np.ndarray) -> np.ndarray:
        return (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-6)

    def attend(v: np.ndarray, w_qkv, b_qkv, w_out, b_out) -> np.ndarray:
        n, s, _ = v.shape
        q, k, vv = np.split(v @ w_qkv + b_qkv, 3, axis=-1)
        q, k, vv = (t.reshape(n, s, H, Dh).transpose(0, 2, 1, 3) for t in (q, k, vv))
        o = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(Dh)) @ vv
        return o.transpose(0, 2, 1, 3).reshape(n, s, D) @ w_out + b_out

    def gelu(v: np.ndarray) -> np.ndarray:
        return 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))

    h = p["x"].reshape(B, FR, S, D)
    for n in range(2):
        c = p["c"]
        mod = (c / (1 + np.exp(-c))) @ p["w_ada"][n] + p["b_ada"][n]
        chunks = [m.reshape(B, 1, 1, D) for m in np.split(mod, 9, axis=-1)]
        a = norm(h) * (1 + chunks[1]) + chunks[0]
        a = attend(a.reshape(B * FR, S, D), p["ws_qkv"][n], p["bs_qkv"][n], p["ws_out"][n], p["bs_out"][n])
        h = h + chunks[2] * a.reshape(B, FR, S, D)
        a = (norm(h) * (1 + chunks[4]) + chunks[3]).transpose(0, 2, 1, 3).reshape(B * S, FR, D)
        a = attend(a, p["wt_qkv"][n], p["bt_qkv"][n], p["wt_out"][n], p["bt_out"][n])
        h = h + chunks[5] * a.reshape(B, S, FR, D).transpose(0, 2, 1, 3)
        a = norm(h) * (1 + chunks[7]) + chunks[6]
        h = h + chunks[8] * (gelu(a @ p["w1"][n] + p["b1"][n]) @ p["w2"][n] + p["b2"][n])
    assert_close(prog.reference(**inputs), h.reshape(B, FR * S, D))


def test_mlp_and_sparse_mlp_match_numpy() -> None:
    inputs = random_inputs(frontend_graph(example("mlp"), {}), 8)
    x, w1, b1, w2 = (inputs[k].astype(np.float64) for k in ("x", "w1", "b1", "w2"))
    assert_close(compiler.compile(example("mlp")).reference(**inputs), softmax(np.maximum(x @ w1 + b1, 0) @ w2))

    inputs = random_inputs(frontend_graph(example("sparse_mlp"), {}), 9)
    p = {k: v.astype(np.float64) for k, v in inputs.items()}
    gate = p["x"] @ p["w_gate"]
    h = (gate / (1 + np.exp(-gate)) * (p["x"] @ p["w_up"])) @ p["w_down"]
    assert_close(compiler.compile(example("sparse_mlp")).reference(**inputs),
                 np.maximum(h, 0) @ p["w_proj"] + p["b_proj"])


# -- documented sizes --------------------------------------------------------------------------------

def documented_define_sets(path: Path) -> list[dict[str, int]]:
    """Every header comment line with -D flags, as a dict of definitions."""
    sets = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        flags = re.findall(r"-D (\w+)=(\w+)", line)
        if flags:
            sets.append({name: int(value) if value.isdigit() else value for name, value in flags})
    return sets


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_documents_its_full_size(path: Path) -> None:
    header = path.read_text().split("\n\n")[0]
    assert header.startswith("# "), "an example opens with a comment saying what it models"
    if path.stem != "mlp":  # the quick-start example keeps the exact form of the README
        assert documented_define_sets(path), "the header gives the -D values of the full size"


def weight_elements(graph: Graph) -> int:
    return sum(graph.node(p).type.size for p in graph.params if graph.node(p).attr("weight"))


def llama_parameters(L: int, D: int, Hq: int, Hkv: int, Dh: int, F: int, V: int) -> int:
    """Parameters of a Llama-3 model without the input embedding table (its lookup is outside)."""
    layer = 2 * D + D * Hq * Dh + 2 * D * Hkv * Dh + Hq * Dh * D + 3 * D * F
    return L * layer + D + D * V


@pytest.mark.parametrize("name", ["llama_decode", "llama_prefill"])
def test_documented_llama_sizes(name: str) -> None:
    """The 8B and 70B -D sets build graphs holding 8B / 70B parameters (the embedding table is extra)."""
    eight, seventy = documented_define_sets(Path(example(name)))[1:3]
    for defines, billions in ((eight, 8.03), (seventy, 70.55)):
        extra = {"B": 1, "T": 16} if name == "llama_decode" else {"B": 1, "S": 16}
        graph = frontend_graph(example(name), {**defines, **extra})
        sizes = {k: defines[k] for k in ("L", "D", "Hq", "Hkv", "Dh", "F", "V")}
        assert weight_elements(graph) == llama_parameters(**sizes)
        with_embeddings = weight_elements(graph) + defines["V"] * defines["D"]
        assert abs(with_embeddings / 1e9 - billions) < 0.01
        assert sum(node.op == "matmul" for _, node in graph.nodes()) >= 7 * defines["L"]


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem not in ("llama_decode", "llama_prefill")],
                         ids=lambda p: p.stem)
def test_documented_sizes_build(path: Path) -> None:
    """(The Llama sizes are checked, more closely, by test_documented_llama_sizes.)"""
    for defines in documented_define_sets(path):
        graph = frontend_graph(str(path), defines)
        assert graph.outputs


def test_llama_decode_declares_its_tokens() -> None:
    graph = frontend_graph(example("llama_decode"), {"B": 3})
    assert graph.attributes == {"tokens": 3, "users": 3}
    graph = frontend_graph(example("llama_prefill"), {"B": 3, "S": 5})
    assert graph.attributes == {"tokens": 15, "users": 3}


# -- the printed graph reads back --------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_graph_round_trip(path: Path) -> None:
    from ir.graph_parser import parse_graph
    from ir.graph_printer import print_graph
    graph = frontend_graph(str(path), {})
    text = print_graph(graph)
    parsed = parse_graph(text)
    assert parsed == graph
    assert print_graph(parsed) == text
