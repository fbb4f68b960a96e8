"""`niche compile --target cpu -o lib.so`: a C program links the library, calls it on fixed data and
prints numbers that must match the reference interpreter's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.driver import Source
from ir.interpreter import run_graph

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

SOURCE = """
def f(x: f32[7, 19], w: f32[19, 5], n: i32[7], h: bf16[3]) {
    return softmax(x @ w, axis=-1), n * 2 - 1, sum(x, axis=-1) > 0.0, h * h
}
"""

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib.h"

static float value(int i) { return (float)((i * 37) % 101) / 50.0f - 1.0f; }

int main(void) {
    float x[7 * 19], w[19 * 5], probs[7 * 5], probs2[7 * 5];
    int32_t n[7], m[7], m2[7];
    bool positive[7], positive2[7];
    uint16_t h[3] = {0x3FC0, 0xC020, 0x4049}, hh[3], hh2[3];  /* bf16 1.5, -2.5, 3.140625 */
    for (int i = 0; i < 7 * 19; i++) x[i] = value(i);
    for (int i = 0; i < 19 * 5; i++) w[i] = value(i + 1000);
    for (int i = 0; i < 7; i++) n[i] = i * 3 - 5;
    niche_f(x, w, n, h, probs, m, positive, hh, NULL);
    void *workspace = aligned_alloc(64, NICHE_F_WORKSPACE_BYTES ? NICHE_F_WORKSPACE_BYTES : 64);
    if (niche_f_workspace_bytes() != NICHE_F_WORKSPACE_BYTES) return 2;
    niche_f(x, w, n, h, probs2, m2, positive2, hh2, workspace);
    if (memcmp(probs, probs2, sizeof probs) || memcmp(m, m2, sizeof m) || memcmp(hh, hh2, sizeof hh)) return 3;
    for (int i = 0; i < 7 * 5; i++) printf("%.9g\n", probs[i]);
    for (int i = 0; i < 7; i++) printf("%d %d\n", m[i], (int)positive[i]);
    for (int i = 0; i < 3; i++) printf("%u\n", (unsigned)hh[i]);
    free(workspace);
    return 0;
}
"""


def test_c_program_gets_the_reference_numbers(tmp_path: Path, niche_main, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "f.nk"
    source.write_text(SOURCE)
    result = niche_main("compile", str(source), "--target", "cpu", "-o", str(tmp_path / "lib.so"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lib.so").is_file() and (tmp_path / "lib.h").is_file()
    header = (tmp_path / "lib.h").read_text()
    assert "void niche_f(const float *x, const float *w, const int32_t *n, const uint16_t *h" in header

    (tmp_path / "main.c").write_text(PROGRAM)
    build = subprocess.run(["cc", "-std=c11", "-O1", "-o", str(tmp_path / "main"), str(tmp_path / "main.c"),
                            f"-I{tmp_path}", f"-L{tmp_path}", "-l:lib.so", f"-Wl,-rpath,{tmp_path}"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    ran = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.split()

    index = np.arange(7 * 19 + 19 * 5)
    values = (((index * 37) % 101) / 50.0 - 1.0).astype(np.float32)
    x = values[:7 * 19].reshape(7, 19)
    w = (((np.arange(19 * 5) + 1000) * 37 % 101) / 50.0 - 1.0).astype(np.float32).reshape(19, 5)
    n = (np.arange(7) * 3 - 5).astype(np.int32)
    h = np.array([1.5, -2.5, 3.140625], dtype=np.float32)
    graph = Source.from_text(SOURCE).specialize({}, None)
    probs, m, positive, hh = run_graph(graph, {"x": x, "w": w, "n": n, "h": h})

    got_probs = np.array([float(v) for v in lines[:35]], dtype=np.float32).reshape(7, 5)
    np.testing.assert_allclose(got_probs, probs, rtol=2e-5, atol=1e-7)
    pairs = np.array([int(v) for v in lines[35:49]]).reshape(7, 2)
    np.testing.assert_array_equal(pairs[:, 0], m)
    np.testing.assert_array_equal(pairs[:, 1].astype(bool), positive)
    bits = np.array([int(v) for v in lines[49:52]], dtype=np.uint32)
    np.testing.assert_array_equal((bits << 16).view(np.float32), hh)


def test_library_for_a_target_without_one_is_an_error(tmp_path: Path, niche_main) -> None:
    source = tmp_path / "f.nk"
    source.write_text("def f(x: f32[3]) { return x }")
    result = niche_main("compile", str(source), "--target", "ref", "-o", str(tmp_path / "lib.so"))
    assert result.returncode == 1
    assert "cannot write a shared library" in result.stderr
