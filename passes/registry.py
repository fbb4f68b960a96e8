"""Pass registration: the `@register_pass` decorator, pass options, user fusion rules and plugins.

A pass is a small class (STYLE.md habit 5): a kebab-case `name`, a one-line `summary`, the IR `level`
it runs on ("graph" today, "loop" for loop-IR passes), an `Options` dataclass of typed fields, and
`run(ir, ctx) -> ir`, which returns a new IR and never mutates its input. `@register_pass` checks all
of that when the class is defined, so a mistake in a plugin is reported where it was made.

Passes come from three places, recorded in `PassInfo.origin`: Niche's own modules (`BUILTIN_MODULES`,
imported on first lookup), a file given with `--load-pass FILE` (`load_pass_file`), and installed
distributions that declare an entry point in the group `niche.passes` (`load_entry_points`), whose
value names a module (importing it registers its passes) or a pass class.

`@fusion_rule` registers a user veto for the fusion passes: `rule(graph, producer, consumer)` returns
None to allow fusing that pair, or a sentence saying why not, which `--explain-fusion` prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from compiler.diagnostics import CompileError, Diagnostic, NicheError
from ir.graph import Graph, Loc

ENTRY_POINT_GROUP = "niche.passes"
LEVELS = ("graph", "loop")
BUILTIN_MODULES = (
    "passes.canonicalize",
    "passes.cse",
    "passes.dce",
    "passes.fuse_epilogue",
    "passes.fuse_reductions",
    "passes.fuse_elementwise",
    "passes.sparsify",
    "passes.prune",
    "passes.sparse_propagate",
)
BUILTIN = "built-in"
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")


class PassRegistrationError(NicheError):
    """A pass or fusion rule is malformed, or a plugin could not be loaded."""


@dataclass(frozen=True)
class NoOptions:
    """The options of a pass that takes none."""


class Pass:
    """Base class of every pass; subclasses set the class attributes and implement `run`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    level: ClassVar[str] = "graph"
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    def run(self, ir: Graph, ctx: Any) -> Graph:
        raise NotImplementedError(f"pass '{self.name}' does not implement run(ir, ctx)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


@dataclass(frozen=True)
class PassInfo:
    """A registered pass and where it came from."""

    cls: type[Pass]
    origin: str  # BUILTIN, "FILE" for --load-pass, or "entry point NAME = VALUE"
    plugin_file: str | None = None  # the file to --load-pass when replaying it

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def builtin(self) -> bool:
        return self.origin == BUILTIN


@dataclass(frozen=True)
class FusionRule:
    """A user veto consulted by the fusion passes for every producer/consumer pair."""

    name: str
    check: Callable[[Graph, int, int], str | None]
    origin: str


_PASSES: dict[str, PassInfo] = {}
_RULES: dict[str, FusionRule] = {}
_loaded_files: dict[Path, str] = {}  # resolved path -> module name
_state = {"builtins": False, "entry_points": False}
_loading: list[tuple[str, str | None]] = []  # (origin, plugin file) of the plugin being imported


@contextlib.contextmanager
def _origin(origin: str, plugin_file: str | None) -> Iterator[None]:
    _loading.append((origin, plugin_file))
    try:
        yield
    finally:
        _loading.pop()


def _current_origin(cls_module: str) -> tuple[str, str | None]:
    if _loading:
        return _loading[-1]
    if cls_module.startswith("passes."):
        return BUILTIN, None
    return f"module {cls_module}", None


# ----------------------------------------------------------------------------------------------
# Registration


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: check the pass class and register it under its `name`."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise PassRegistrationError(f"@register_pass: {where} must subclass passes.registry.Pass")
    name = cls.__dict__.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PassRegistrationError(f"@register_pass: {where} needs a kebab-case class attribute `name` "
                                    f"(like 'fuse-silu'), got {name!r}")
    summary = cls.summary
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary.strip():
        raise PassRegistrationError(f"@register_pass: pass '{name}' ({where}) needs a one-line `summary`")
    if cls.level not in LEVELS:
        raise PassRegistrationError(f"@register_pass: pass '{name}' has level {cls.level!r}; levels are "
                                    f"{', '.join(LEVELS)}")
    if cls.run is Pass.run:
        raise PassRegistrationError(f"@register_pass: pass '{name}' ({where}) does not define run(ir, ctx)")
    if not dataclasses.is_dataclass(cls.Options):
        raise PassRegistrationError(f"@register_pass: pass '{name}': `Options` must be a dataclass")
    origin, plugin_file = _current_origin(cls.__module__)
    previous = _PASSES.get(name)
    if previous is not None and previous.origin != origin:
        raise PassRegistrationError(f"pass '{name}' from {origin} clashes with the pass of that name from "
                                    f"{previous.origin}")
    _PASSES[name] = PassInfo(cls, origin, plugin_file)
    return cls


def fusion_rule(check: Callable[[Graph, int, int], str | None]) -> Callable[[Graph, int, int], str | None]:
    """Decorator: register `check(graph, producer, consumer) -> reason | None` as a fusion veto.

    The rule's name is the function's name with underscores as dashes.
    """
    name = check.__name__.replace("_", "-")
    origin, _ = _current_origin(check.__module__)
    _RULES[name] = FusionRule(name, check, origin)
    return check


def fusion_rules() -> list[FusionRule]:
    return [_RULES[name] for name in sorted(_RULES)]


def unregister(name: str) -> None:
    """Remove a pass or fusion rule by name (tests and notebook sessions that redefine one)."""
    _PASSES.pop(name, None)
    _RULES.pop(name, None)


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Undo every registration and plugin load made inside the block (for tests)."""
    _load_builtins()
    saved = (dict(_PASSES), dict(_RULES), dict(_loaded_files), dict(_state))
    try:
        yield
    finally:
        _PASSES.clear()
        _PASSES.update(saved[0])
        _RULES.clear()
        _RULES.update(saved[1])
        _loaded_files.clear()
        _loaded_files.update(saved[2])
        _state.update(saved[3])


# ----------------------------------------------------------------------------------------------
# Lookup


def _load_builtins() -> None:
    if _state["builtins"]:
        return
    _state["builtins"] = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def all_passes(level: str | None = None) -> list[PassInfo]:
    """Every registered pass (built-in, loaded plugins and installed entry points), sorted by name."""
    _load_builtins()
    load_entry_points()
    return [_PASSES[n] for n in sorted(_PASSES) if level is None or _PASSES[n].cls.level == level]


def get_pass(name: str) -> PassInfo:
    """The registered pass called `name`; CompileError with close matches when there is none."""
    _load_builtins()
    if name not in _PASSES:
        load_entry_points()
    if name not in _PASSES:
        close = difflib.get_close_matches(name, list(_PASSES), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            "; `niche passes` lists them (plugins: --load-pass FILE)"
        raise CompileError([Diagnostic(f"unknown pass '{name}'{hint}")])
    return _PASSES[name]


def info_of(instance: Pass) -> PassInfo:
    """The registration of a pass instance (a class registered under its name, or an unregistered one)."""
    info = _PASSES.get(type(instance).name)
    if info is not None and info.cls is type(instance):
        return info
    origin, plugin_file = _current_origin(type(instance).__module__)
    return PassInfo(type(instance), origin, plugin_file)


# ----------------------------------------------------------------------------------------------
# Plugins


def load_pass_file(path: str | Path) -> str:
    """Import a Python file so that its `@register_pass` classes and `@fusion_rule`s register.

    Loading the same file twice does nothing. Errors while importing it become a CompileError that
    points at the line in the plugin that failed. Returns the module name it was loaded as.
    """
    given = str(path)
    path = Path(path)
    if not path.is_file():
        raise CompileError([Diagnostic(f"--load-pass: no such file '{given}'")])
    resolved = path.resolve()
    if resolved in _loaded_files:
        return _loaded_files[resolved]
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    module_name = f"niche_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise CompileError([Diagnostic(f"--load-pass: cannot import '{given}' as a Python module")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and typing look the module up by name
    try:
        with _origin(given, given):
            spec.loader.exec_module(module)
    except NicheError:
        sys.modules.pop(module_name, None)
        raise
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        loc = Loc(given, error.lineno or 1, error.offset or 1)
        raise CompileError([Diagnostic(f"syntax error in pass plugin: {error.msg}", loc,
                                       source_line=error.text)]) from error
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise CompileError([Diagnostic(f"error while loading pass plugin: {type(error).__name__}: {error}",
                                       _plugin_frame(error, resolved, given))]) from error
    _loaded_files[resolved] = module_name
    return module_name


def _plugin_frame(error: BaseException, resolved: Path, given: str) -> Loc | None:
    """The innermost traceback line inside the plugin file, as a location."""
    loc = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == resolved:
            loc = Loc(given, frame.lineno or 1, 1)
    return loc


def load_entry_points() -> None:
    """Import every installed plugin declared in the entry-point group `niche.passes` (once)."""
    if _state["entry_points"]:
        return
    _state["entry_points"] = True
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        origin = f"entry point {entry.name} = {entry.value}"
        try:
            with _origin(origin, None):
                loaded = entry.load()
                if isinstance(loaded, type) and issubclass(loaded, Pass) and loaded.name not in _PASSES:
                    register_pass(loaded)
        except NicheError:
            raise
        except Exception as error:
            raise CompileError([Diagnostic(f"cannot load the pass plugin {origin} (group {ENTRY_POINT_GROUP}): "
                                           f"{type(error).__name__}: {error}")]) from error
