"""Builtin calls bind their arguments directly when `inspect.Signature.bind` would accept them."""

from __future__ import annotations

import inspect
import itertools

from compiler.builtins import BUILTINS, _binds


def test_the_direct_binding_check_agrees_with_signature_bind() -> None:
    checked = 0
    for function in set(BUILTINS.values()):
        signature = inspect.signature(function)
        names = list(signature.parameters)[2:]  # after (gen, loc)
        candidates = names + ["gen", "loc", "bogus"]
        for positional in range(len(names) + 2):
            for size in range(3):
                for keywords in itertools.combinations(candidates, size):
                    given = {name: 0 for name in keywords}
                    try:
                        signature.bind(None, None, *range(positional), **given)
                        binds = True
                    except TypeError:
                        binds = False
                    assert _binds(function, positional + 2, given) == binds, (function.__name__, positional, keywords)
                    checked += 1
    assert checked > 1000
