"""The docs are checked against the code, datasette-style: the exit statuses, the event kinds, the
gateway's refusal reasons and the archive's JSON files are read from the code (a static scan of
src/, the code's own enumerations, the files the writer writes) and must each be documented."""

from __future__ import annotations

import ast
import functools
import re
from enum import StrEnum
from pathlib import Path

import pytest

from emeritus.store import Store
from helpers import make_model

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "emeritus"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _modules() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(SRC.rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = _modules()


def _table(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with HEADER, as cell texts
    (`\\|` inside a cell is a literal bar)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    assert start is not None, f"no table headed {header!r}"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def _words(text: str) -> str:
    return " ".join(text.split())


# -- exit statuses --------------------------------------------------------------------------------


def _exit_codes() -> dict[int, list[str]]:
    """Every `exit_code = N` class attribute in src/, by code: the exception classes."""
    found: dict[int, list[str]] = {}
    for path, module in MODULES.items():
        for node in ast.walk(module):
            if not isinstance(node, ast.ClassDef):
                continue
            for statement in node.body:
                if (
                    isinstance(statement, ast.Assign)
                    and [ast.unparse(t) for t in statement.targets] == ["exit_code"]
                    and isinstance(statement.value, ast.Constant)
                ):
                    where = f"{path.relative_to(SRC)}:{node.name}"
                    found.setdefault(statement.value.value, []).append(where)
    return found


def _readme_exit_statuses() -> dict[int, str]:
    return {int(status.strip("`")): meaning for status, meaning in _table(README, "| status |")}


def _help_exit_statuses() -> dict[int, str]:
    """`EXIT_STATUS` in cli/root.py, the epilog of `emeritus --help`: `  N  text`, continued on
    lines indented further."""
    tree = MODULES[SRC / "cli" / "root.py"]
    text = next(
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [ast.unparse(t) for t in node.targets] == ["EXIT_STATUS"]
        and isinstance(node.value, ast.Constant)
    )
    statuses: dict[int, str] = {}
    last = None
    for line in text.splitlines():
        entry = re.match(r"\s+(\d+)\s+(.*)", line)
        if entry:
            last = int(entry.group(1))
            statuses[last] = entry.group(2)
        elif last is not None and line.strip():
            statuses[last] += " " + line.strip()
    return {status: _words(meaning) for status, meaning in statuses.items()}


def test_every_exit_code_has_a_row_in_the_readme() -> None:
    codes = _exit_codes()
    errors_py = {
        code for code, where in codes.items() if any(w.startswith("errors.py:") for w in where)
    }
    assert {1, 2, 3, 4, 5} <= errors_py, codes
    documented = _readme_exit_statuses()
    missing = {code: where for code, where in codes.items() if code not in documented}
    assert 0 in documented and not missing, f"exit codes not in the README's table: {missing}"
    assert set(documented) <= {0, *codes}, f"rows for codes nothing exits with: {documented}"


@pytest.mark.parametrize("status", sorted(_readme_exit_statuses()))
def test_each_readme_exit_status_reads_as_in_the_help(status: int) -> None:
    readme, shown = _readme_exit_statuses(), _help_exit_statuses()
    assert status in shown, f"exit status {status} is not in `emeritus --help` (EXIT_STATUS)"
    assert _words(readme[status]) == shown[status]


def test_the_help_lists_no_exit_status_the_readme_lacks() -> None:
    assert set(_help_exit_statuses()) <= set(_readme_exit_statuses())


# -- event kinds ----------------------------------------------------------------------------------
#
# A static scan: every `append_event(..., kind=...)` in src/, with the kind's expression resolved
# to the strings it can take. A literal is itself; `a if c else b` is both; an f-string is the
# product of its parts; a local name is whatever it is assigned; a module constant (imported or
# not) is its value; a parameter is whatever every caller of the function passes (`audit`,
# `Store.record`, `Registry._event`, `Channels._move` are found this way, with their callers'
# literals). Anything else fails the test with its place, so a new kind cannot slip past.


def _dotted(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


BY_NAME = {_dotted(path): path for path in MODULES}
PARENTS = {
    child: parent
    for module in MODULES.values()
    for parent in ast.walk(module)
    for child in ast.iter_child_nodes(parent)
}
CALLS = [
    (path, node)
    for path, module in MODULES.items()
    for node in ast.walk(module)
    if isinstance(node, ast.Call)
]


class Unresolved(Exception):
    pass


def _where(path: Path, node: ast.AST) -> str:
    return f"src/emeritus/{path.relative_to(SRC)}:{getattr(node, 'lineno', '?')}"


def _enclosing(node: ast.AST, kind: type[ast.AST] | tuple[type[ast.AST], ...]) -> ast.AST | None:
    while node in PARENTS:
        node = PARENTS[node]
        if isinstance(node, kind):
            return node
    return None


def _function(node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = _enclosing(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    assert found is None or isinstance(found, ast.FunctionDef | ast.AsyncFunctionDef)
    return found


def _origin(module: str, name: str) -> tuple[Path, ast.AST] | None:
    """Where NAME, as seen in MODULE, is defined: (file, its assignment or definition),
    following `from X import NAME` (and re-exports) to the defining module."""
    path = BY_NAME.get(module)
    if path is None:
        return None
    for node in MODULES[path].body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return path, node
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return path, node
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _origin(node.module, alias.name)
    return None


def _assignments(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> list[ast.expr]:
    values = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for element, value in zip(target.elts, node.value.elts, strict=True):
                        if isinstance(element, ast.Name) and element.id == name:
                            values.append(value)
                elif isinstance(target, ast.Tuple) and any(
                    isinstance(e, ast.Name) and e.id == name for e in target.elts
                ):
                    raise Unresolved(f"{name} is unpacked from {ast.unparse(node.value)}")
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr | ast.For):
            target = node.target
            if isinstance(target, ast.Name) and target.id == name:
                raise Unresolved(f"{name} is set by {ast.unparse(node)[:80]}")
    return values


def _callers(
    path: Path, function: ast.FunctionDef | ast.AsyncFunctionDef
) -> list[tuple[Path, ast.Call, int]]:
    """Every call of FUNCTION in src/, with the offset of its first positional argument among
    the parameters (1 for a method called through its instance). A function is called by its
    name where that name is it (its module, or an import of it); a method as `self.NAME` in its
    class, or `<x>.NAME` on anything else (`archive.store.record`): a call of another class's
    method of the same name is read too, so that no caller is missed (if its argument cannot be
    read, the test says where)."""
    owner = _enclosing(function, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    found = []
    for other, node in CALLS:
        call = node.func
        if isinstance(owner, ast.ClassDef):
            if not isinstance(call, ast.Attribute) or call.attr != function.name:
                continue
            in_class = other == path and _enclosing(node, ast.ClassDef) is owner
            if ast.unparse(call.value) != "self" or in_class:
                found.append((other, node, 1))
        elif (
            owner is None
            and isinstance(call, ast.Name)
            and call.id == function.name
            and (other == path or _origin(_dotted(other), call.id) == (path, function))
        ):
            found.append((other, node, 0))
    return found


def _resolve(expr: ast.expr, path: Path) -> set[tuple[str, Path]]:
    """The strings EXPR (in file PATH) can be, each with the file that chose it."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {(expr.value, path)}
    if isinstance(expr, ast.IfExp):
        return _resolve(expr.body, path) | _resolve(expr.orelse, path)
    if isinstance(expr, ast.JoinedStr):
        combined = {("", path)}
        for part in expr.values:
            if isinstance(part, ast.FormattedValue) and part.format_spec is None:
                pieces = _resolve(part.value, path)
            elif isinstance(part, ast.Constant):
                pieces = {(str(part.value), path)}
            else:
                raise Unresolved(ast.unparse(part))
            combined = {(a + b, where) for a, _ in combined for b, where in pieces}
        return combined
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr in {"removeprefix", "removesuffix"}
        and len(expr.args) == 1
        and isinstance(expr.args[0], ast.Constant)
    ):
        affix = expr.args[0].value
        strip = str.removeprefix if expr.func.attr == "removeprefix" else str.removesuffix
        return {(strip(value, affix), where) for value, where in _resolve(expr.func.value, path)}
    if isinstance(expr, ast.Name):
        return _resolve_name(expr, path)
    raise Unresolved(f"{ast.unparse(expr)} at {_where(path, expr)}")


def _resolve_name(expr: ast.Name, path: Path) -> set[tuple[str, Path]]:
    function = _function(expr)
    if function is not None:
        assigned = _assignments(function, expr.id)
        if assigned:
            return set().union(*(_resolve(value, path) for value in assigned))
        arguments = function.args
        positional = [a.arg for a in arguments.posonlyargs + arguments.args]
        if expr.id in positional or expr.id in [a.arg for a in arguments.kwonlyargs]:
            return _resolve_parameter(function, expr.id, path)
    origin = _origin(_dotted(path), expr.id)
    if origin is not None and isinstance(origin[1], ast.Assign):
        # a constant: the file that used it chose it
        return {(value, path) for value, _ in _resolve(origin[1].value, origin[0])}
    raise Unresolved(f"{expr.id} at {_where(path, expr)}")


def _resolve_parameter(
    function: ast.FunctionDef | ast.AsyncFunctionDef, name: str, path: Path
) -> set[tuple[str, Path]]:
    arguments = function.args
    positional = [a.arg for a in arguments.posonlyargs + arguments.args]
    callers = _callers(path, function)
    if not callers:
        raise Unresolved(f"{function.name}({name}) at {_where(path, function)} has no callers")
    found: set[tuple[str, Path]] = set()
    for caller, call, offset in callers:
        passed = next((k.value for k in call.keywords if k.arg == name), None)
        if passed is None and name in positional:
            index = positional.index(name) - offset
            if 0 <= index < len(call.args):
                passed = call.args[index]
        if passed is None or isinstance(passed, ast.Starred):
            raise Unresolved(f"the call at {_where(caller, call)} passes no plain {name}")
        found |= _resolve(passed, caller)
    return found


@functools.cache
def _recorded_kinds() -> dict[str, set[str]]:
    """Every event kind src/ can record, with the modules (src/emeritus/ paths) that record it."""
    kinds: dict[str, set[str]] = {}
    problems = []
    for path, node in CALLS:
        if ast.unparse(node.func).rsplit(".", 1)[-1] != "append_event":
            continue
        kind = next((k.value for k in node.keywords if k.arg == "kind"), None)
        if kind is None:
            problems.append(f"append_event without kind= at {_where(path, node)}")
            continue
        try:
            for value, where in _resolve(kind, path):
                kinds.setdefault(value, set()).add(str(where.relative_to(SRC)))
        except Unresolved as exc:
            problems.append(f"cannot tell the kinds of {_where(path, node)}: {exc}")
    assert not problems, problems
    return kinds


def test_the_scan_finds_the_kinds_recorded_through_every_helper() -> None:
    kinds = _recorded_kinds()
    assert kinds["model.registered"] == {"lifecycle/registry.py"}  # Registry._event
    assert kinds["access.denials"] == {"access/denials.py"}  # audit(), a constant's removeprefix
    assert kinds["access.key_revoked"] == {"access/grants.py", "access/keys.py"}
    assert kinds["archive.exported"] == {"archive/bag.py"}  # Store.record
    assert {"corner.paused", "corner.resumed", "corner.closed"} <= set(kinds)  # f"corner.{verb}"
    assert {"corner.approved", "corner.vetoed"} <= set(kinds)  # imported constants
    assert {"archive.verified", "archive.fixity_checked"} <= set(kinds)  # a conditional
    assert len(kinds) >= 50


EVENT_LOG = (ROOT / "docs" / "design" / "event-log.md").read_text(encoding="utf-8")


def _documented_kinds() -> dict[str, list[str]]:
    rows = _table(EVENT_LOG, "| kind |")
    documented: dict[str, list[str]] = {}
    for row in rows:
        kind = row[0].strip("`")
        assert kind not in documented, f"{kind} has two rows"
        documented[kind] = row
    return documented


def test_every_recorded_kind_is_in_the_event_log_table() -> None:
    documented = _documented_kinds()
    missing = sorted(set(_recorded_kinds()) - set(documented))
    assert not missing, f"event kinds recorded but not in event-log.md's Event kinds: {missing}"


def test_every_kind_in_the_table_is_recorded() -> None:
    stale = sorted(set(_documented_kinds()) - set(_recorded_kinds()))
    assert not stale, f"event kinds in event-log.md that nothing records: {stale}"


def test_the_table_names_the_modules_that_record_each_kind() -> None:
    documented = _documented_kinds()
    wrong = {}
    for kind, modules in _recorded_kinds().items():
        if kind not in documented:
            continue
        named = set(re.findall(r"`([a-z_/]+\.py)`", documented[kind][-1]))
        if named != modules:
            wrong[kind] = f"the table says {sorted(named)}, the code {sorted(modules)}"
    assert not wrong, wrong


def test_only_append_event_writes_events() -> None:
    # The scan above reads `append_event` calls; an event row made anywhere else would escape it.
    makers = [
        _where(path, node)
        for path, node in CALLS
        if ast.unparse(node.func).rsplit(".", 1)[-1] == "EventRow"
        and getattr(_function(node), "name", None) != "append_event"
    ]
    assert not makers, f"event rows made outside append_event: {makers}"


# -- refusal reasons ------------------------------------------------------------------------------

ACCESS = (ROOT / "docs" / "design" / "access.md").read_text(encoding="utf-8")
GATEWAY = SRC / "gateway"


def _status(expr: ast.expr | None) -> int | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, int) else None


@functools.cache
def _gateway_codes() -> dict[str, set[int | None]]:
    """The machine-readable `code`s the gateway answers with, by a static scan of gateway/ and
    access/, each with the HTTP statuses it comes with (None: decided at run time)."""
    from emeritus.access import gate
    from emeritus.gateway.app import STATUS

    # the gate's reasons: the StrEnum in access/gate.py whose members know their status
    enums = [
        value
        for value in vars(gate).values()
        if isinstance(value, type)
        and issubclass(value, StrEnum)
        and value.__module__ == gate.__name__
        and isinstance(getattr(value, "status", None), property)
    ]
    assert len(enums) == 1, enums
    codes: dict[str, set[int | None]] = {str(r): {r.status} for r in enums[0]}
    problems = []
    scanned = [p for p in MODULES if p.is_relative_to(GATEWAY) or p.is_relative_to(SRC / "access")]
    for path in scanned:
        for node in ast.walk(MODULES[path]):
            if isinstance(node, ast.Dict):
                # where the error bodies are built, from the codes found below; a new one fails
                known = {"code", "str(self.reason)", "item.code"}
                for key, value in zip(node.keys, node.values, strict=True):
                    is_code = isinstance(key, ast.Constant) and key.value == "code"
                    if is_code and ast.unparse(value) not in known:
                        problems.append(f"a new error body at {_where(path, node)}")
            if not isinstance(node, ast.Call):
                continue
            called = ast.unparse(node.func)
            code = status = None
            if called == "error" and len(node.args) >= 3:  # gateway/common.py's error()
                status, code = node.args[0], node.args[2]
            elif called in {"Outcome", "End"}:  # how an admitted request ended
                status = node.args[0] if called == "Outcome" and node.args else None
                given = {k.arg: k.value for k in node.keywords}
                code, status = given.get("code"), given.get("status", status)
            if code is None:
                continue
            if ast.unparse(code) in {"outcome.code", "early.code"}:
                continue  # an Outcome's or a stream End's code, found where it is made
            if ast.unparse(code) == "type(exc).__name__.lower()":
                # the exception handler: a refused operation's class name, status by its base
                for base, number in STATUS.items():
                    names = [base.__name__, *(c.__name__ for c in base.__subclasses__())]
                    for name in names:
                        codes.setdefault(name.lower(), set()).add(number)
                continue
            try:
                values = _resolve(code, path)
            except Unresolved as exc:
                problems.append(f"cannot tell the code at {_where(path, node)}: {exc}")
                continue
            for value, _ in values:
                codes.setdefault(value, set()).add(_status(status))
    assert not problems, problems
    return codes


def _documented_refusals() -> dict[str, str]:
    rows = _table(ACCESS, "| reason |")
    return {row[0].strip("`"): row[1] for row in rows if row[0].startswith("`")}


def test_every_refusal_reason_is_documented_with_its_status() -> None:
    codes, documented = _gateway_codes(), _documented_refusals()
    missing = sorted(set(codes) - set(documented))
    assert not missing, f"refusal reasons not in access.md's Refusal reasons: {missing}"
    wrong = {
        code: f"the table says {documented[code]!r}, the code {sorted(statuses, key=str)}"
        for code, statuses in codes.items()
        if any(s is not None and not re.search(rf"\b{s}\b", documented[code]) for s in statuses)
    }
    assert not wrong, wrong
    assert {"model_busy", "principal_mismatch", "body_too_large", "client_stalled"} <= set(codes)


def test_every_documented_refusal_reason_is_answered() -> None:
    stale = sorted(set(_documented_refusals()) - set(_gateway_codes()))
    assert not stale, f"refusal reasons in access.md that the gateway never answers: {stale}"


# -- the archive's JSON files ---------------------------------------------------------------------

ARCHIVE_FORMAT = (ROOT / "docs" / "design" / "archive-format.md").read_text(encoding="utf-8")
# Keys that are data, not names: OCFL's maps by digest (manifest, state, fixity) and by version.
DATA_KEY = re.compile(r"[0-9a-f]{64}|[0-9a-f]{128}|v[1-9][0-9]*")


def _example(heading: str) -> object:
    """The fenced JSON block under the `### ` heading that starts with HEADING."""
    import json

    found = re.search(
        rf"^### {re.escape(heading)}[^\n]*\n(?:(?!^#)[\s\S])*?^```json\n(.*?)^```",
        ARCHIVE_FORMAT,
        re.MULTILINE | re.DOTALL,
    )
    assert found, f"archive-format.md has no JSON example under {heading!r}"
    return json.loads(found.group(1))


def _is_map(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and all(DATA_KEY.fullmatch(k) for k in value)


def _shape(value: object) -> object:
    """What a JSON value is, without its data: an object's keys with the shapes of their
    values; a map's (or a list's) the set of its entries' shapes; otherwise the type."""
    if _is_map(value):
        assert isinstance(value, dict)
        return ("map", frozenset(_shape(v) for v in value.values()))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _shape(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("list", frozenset(_shape(v) for v in value))
    return type(value).__name__


def _differences(example: object, written: object, where: str = "") -> list[str]:
    """Where EXAMPLE's keys and value types differ from WRITTEN's, as readable lines."""
    if _is_map(written) and isinstance(example, dict):
        assert isinstance(written, dict)
        return _item_differences(list(example.values()), list(written.values()), f"{where}{{*}}")
    if type(example) is not type(written):
        kinds = type(example).__name__, type(written).__name__
        return [f"{where or '/'}: the example has a {kinds[0]}, the file a {kinds[1]}"]
    if isinstance(written, dict):
        assert isinstance(example, dict)
        found = [
            f"{where}/{k}: not in the example" for k in sorted(written.keys() - example.keys())
        ]
        found += [f"{where}/{k}: not in the file" for k in sorted(example.keys() - written.keys())]
        for key in sorted(written.keys() & example.keys()):
            found += _differences(example[key], written[key], f"{where}/{key}")
        return found
    if isinstance(written, list):
        assert isinstance(example, list)
        return _item_differences(example, written, f"{where}[*]")
    return []


def _item_differences(example: list[object], written: list[object], where: str) -> list[str]:
    """Items: each kind of item the file holds (by shape) must be in the example, and each of
    the example's in the file; a missing kind is shown against the closest item of the other
    side (the most keys in common)."""
    if not written:
        return []
    if not example:
        return [f"{where}: the example has no items"]
    shown, held = {_shape(v): v for v in example}, {_shape(v): v for v in written}
    found = []
    for shape, item in held.items():
        if shape not in shown:
            found += _differences(_closest(item, example), item, where) or [f"{where}: unlike"]
    for shape, item in shown.items():
        if shape not in held:
            found += _differences(item, _closest(item, written), where) or [f"{where}: unlike"]
    return sorted(set(found))


def _closest(item: object, candidates: list[object]) -> object:
    def common(other: object) -> int:
        if isinstance(item, dict) and isinstance(other, dict):
            return len(item.keys() & other.keys()) - len(item.keys() ^ other.keys())
        return 0

    return max(candidates, key=common)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the files are the same
def test_the_archive_examples_have_the_keys_and_types_written(store: Store, tmp_path: Path) -> None:
    import json

    from emeritus.archive import Archive, object_root
    from emeritus.lifecycle import Registry

    Registry(store).add("m")
    archive = Archive(store)
    archive.preserve("m", [make_model(tmp_path / "model")])
    root = store.settings.archive_dir / object_root("urn:emeritus:model:m")
    described = json.loads(archive.read_logical("m", "emeritus/object.json"))
    inventories = [f["tensor_inventory"] for f in described["files"] if "tensor_inventory" in f]
    assert len(inventories) == 2  # one per shard
    written = {
        "`emeritus/object.json`": described,
        "`inventory.json`": json.loads((root / "inventory.json").read_bytes()),
        "A tensor inventory": json.loads(archive.read_logical("m", inventories[0])),
    }
    found = {
        heading: _differences(_example(heading), document) for heading, document in written.items()
    }
    report = [f"{heading} {line}" for heading, lines in found.items() for line in lines]
    assert not report, "archive-format.md's examples differ from the files:\n" + "\n".join(report)
    assert all(_shape(_example(h)) == _shape(d) for h, d in written.items())
