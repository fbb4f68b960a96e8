"""Source text -> AST: the grammar's forms, the newline rules of the postlexer, and source locations."""

from __future__ import annotations

import pytest

from compiler import syntax as ast
from compiler.frontend import parse
from ir.graph import Loc


def body(source: str) -> tuple[ast.Stmt, ...]:
    return list(parse(source, "p.nk").funcs.values())[-1].body


def expr(text: str) -> ast.Expr:
    (stmt,) = body(f"def f() {{ return {text} }}")
    (value,) = stmt.values
    return value


def test_mlp_contract_forms() -> None:
    module = parse("const B = 8   # a comment\n\n"
                   "def mlp(x: f32[B, 784], @weight w1: f32[784, 512], @weight b1: f32[512],\n"
                   "        @weight w2: f32[512, 10]) -> f32[B, 10] {\n"
                   "    h = relu(x @ w1 + b1)         # numpy broadcasting\n"
                   "    return softmax(h @ w2, axis=-1)\n}", "mlp.nk")
    (const,) = module.consts
    assert const.name == "B" and const.value == ast.Number(Loc("mlp.nk", 1, 11), 8, "8")
    func = module.funcs["mlp"]
    assert [p.name for p in func.params] == ["x", "w1", "b1", "w2"]
    assert [p.has_decorator("weight") for p in func.params] == [False, True, True, True]
    assert func.params[0].type.name == "f32"
    assert func.params[0].type.dims == (ast.Name(Loc("mlp.nk", 3, 16), "B"),
                                        ast.Number(Loc("mlp.nk", 3, 19), 784, "784"))
    assert func.results[0].loc == Loc("mlp.nk", 4, 38)
    assign, ret = func.body
    assert assign.targets == ("h",) and isinstance(assign.value, ast.Call)
    (call,) = ret.values
    assert call.keywords[0].name == "axis"
    assert call.keywords[0].value == ast.UnaryOp(Loc("mlp.nk", 6, 33), "neg", ast.Number(Loc("mlp.nk", 6, 34), 1, "1"))


def test_precedence_follows_python() -> None:
    e = expr("-a ** 2 + b * c @ d")
    assert isinstance(e, ast.BinaryOp) and e.op == "add"
    assert e.left == ast.UnaryOp(e.left.loc, "neg", ast.BinaryOp(e.left.operand.loc, "pow",
                                                                 ast.Name(Loc("p.nk", 1, 19), "a"),
                                                                 ast.Number(Loc("p.nk", 1, 24), 2, "2")))
    assert e.right.op == "matmul" and e.right.left.op == "mul"  # * and @ share a level, left to right
    assert expr("a < b + 1").op == "lt"
    assert expr("not a and b or c").op == "logical_or"
    assert expr("a ** b ** c").right.op == "pow"  # right associative


def test_conditional_expression() -> None:
    e = expr("a if n > 1 else b")
    assert isinstance(e, ast.Conditional)
    assert e.condition.op == "gt" and e.then.id == "a" and e.otherwise.id == "b"
    nested = expr("a if p else b if q else c")
    assert isinstance(nested.otherwise, ast.Conditional)


def test_tuples_and_subscripts() -> None:
    assert expr("()") == ast.TupleExpr(Loc("p.nk", 1, 18), ())
    assert len(expr("(a,)").items) == 1
    assert len(expr("[a, b, c,]").items) == 3
    assert isinstance(expr("(a)"), ast.Name)
    index = expr("x[1:, ::2, ..., None, -1]")
    kinds = [type(s).__name__ for s in index.subscripts]
    assert kinds == ["RangeExpr", "RangeExpr", "EllipsisExpr", "Name", "UnaryOp"]
    assert index.subscripts[0].stop is None and index.subscripts[1].step.value == 2


def test_method_calls_and_attributes() -> None:
    e = expr("x.sum(axis=1).T")
    assert isinstance(e, ast.Attribute) and e.name == "T"
    assert isinstance(e.value, ast.Call) and e.value.func.name == "sum"


def test_newlines_inside_brackets_and_one_line_blocks() -> None:
    (stmt,) = body("def f(x) {\n    return concat((x,\n                   x),\n                  axis=0)\n}")
    assert isinstance(stmt, ast.Return)
    assert len(body("def f(x) { y = x; return y }")) == 2
    assert len(body("def f(x) {\n\n  y = x   # c\n\n  return y\n\n}\n\n")) == 2
    assert len(body("def f(x) {\n    y = x + \\\n        x\n    return y\n}")) == 2  # backslash continuation


def test_multiple_targets_returns_and_for() -> None:
    stmts = body("def f(x) {\n    a, b = split(x, 2)\n    for i in range(3) {\n        a = a + b\n    }\n"
                 "    return a, b\n}")
    assert stmts[0].targets == ("a", "b")
    assert isinstance(stmts[1], ast.For) and stmts[1].var == "i" and len(stmts[1].body) == 1
    assert len(stmts[2].values) == 2


def test_signatures() -> None:
    module = parse("@tokens(B * S, users=B)\n"
                   "def f(x: bf16[B, S], n: int, s = 2.0, @weight w: f32[4, 8]<bsr(2, 4)>, @weight v: f32[4, 4]<2:4>,\n"
                   "      @weight c: f32[4, 4]<csr>, @weight d: f32[4, 4]<csc>) -> (f32[B], f32[]) {\n"
                   "    return x, x\n}", "p.nk")
    func = module.funcs["f"]
    (tokens,) = func.decorators
    assert tokens.name == "tokens" and tokens.keywords[0].name == "users"
    assert func.params[1].type == ast.TypeExpr("int", None, None, Loc("p.nk", 2, 25))
    assert func.params[2].type is None and func.params[2].default.value == 2.0
    formats = [p.type.format for p in func.params[3:]]
    assert [(f.kind, f.args) for f in formats] == [("bsr", (2, 4)), ("nm", (2, 4)), ("csr", ()), ("csc", ())]
    assert len(func.results) == 2 and func.results[1].dims == ()


def test_several_functions_keep_their_order() -> None:
    module = parse("def a() { return 1 }\ndef b() { return 2 }\ndef c() { return 3 }")
    assert list(module.funcs) == ["a", "b", "c"]


@pytest.mark.parametrize("source, message", [
    ("def f() { return 1 }\ndef f() { return 2 }", "function 'f' is defined twice"),
    ("def f(x) { return g(a=1, a=2) }", "keyword argument 'a' given twice"),
    ("def f(x) { return g(a=1, x) }", "positional argument after keyword arguments"),
    ("def f(x: f32[4]<bsr(2.5, 2)>) { return x }", "format arguments are integers, got 2.5"),
    ("def f(x, y, x) { return x }", "parameter 'x' appears twice in 'f'"),
])
def test_syntax_errors_after_parsing(source: str, message: str) -> None:
    from compiler import CompileError
    with pytest.raises(CompileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(source, "p.nk")


def test_keywords_are_reserved() -> None:
    from compiler import CompileError
    for keyword in ("def", "for", "return", "const", "if", "else", "in"):
        with pytest.raises(CompileError):
            parse(f"def f(x) {{ {keyword} = x; return x }}")
