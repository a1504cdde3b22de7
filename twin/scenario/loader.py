"""Find, read, override and validate scenario files."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from scenarios import builtin_names, builtin_path
from twin.errors import ScenarioError
from twin.scenario.schema import Demand, Scenario

__all__ = ["load_scenario", "parse_overrides", "apply_overrides", "validate_scenario", "scale_scenario",
           "format_overrides", "annotate_description", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_NODES"]

_PATH_HEAD = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")

#: The largest scenario file read (the national 37-warehouse scenario is 25 kB).
MAX_FILE_BYTES = 16 * 2**20
#: The deepest nesting of lists and mappings in a file (a scenario needs 4).
MAX_DEPTH = 64
#: The most values (scalars, lists, mappings) a file may hold once its aliases are expanded.
MAX_NODES = 1_000_000


class _ReadError(yaml.MarkedYAMLError):
    """YAML that the twin will not read: too deep, too large once expanded, a key that is not
    a name, a value Python cannot represent."""


def _short(x: Any, n: int = 60) -> str:
    """``repr(x)``, cut to about ``n`` characters."""
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001 - e.g. an int too long to print
        r = f"<{type(x).__name__}>"
    return r if len(r) <= n else r[: n - 5] + "...." + r[-1]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expanded(root: yaml.Node) -> None:
    """Refuse a document that is infinite (an alias inside its own anchor) or that expands to
    more than :data:`MAX_NODES` values (the "billion laughs": aliases of aliases)."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            open_.discard(nid)
            size[nid] = 1 + sum(size[id(k)] for k in _children(node))
            if size[nid] > MAX_NODES:
                raise _ReadError(None, None, f"the document expands to more than {MAX_NODES:,} values (aliases "
                                 "*name repeat their anchor &name: an alias bomb?)", node.start_mark)
            continue
        if nid in size:
            continue
        if nid in open_:
            raise _ReadError(None, None, "an alias refers to a list or mapping that contains it (the value would "
                             "be infinite)", node.start_mark)
        open_.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(_children(node)) if id(k) not in size)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader for scenario files and override values.

    It refuses a key given twice in one mapping (YAML would keep the last silently, and a
    what-if would quietly not apply), a key that is not a string (a field or a name: ``yes``
    and ``1`` are read as a boolean and a number), nesting deeper than :data:`MAX_DEPTH`, a
    document expanding to more than :data:`MAX_NODES` values or to an infinite one through
    its aliases, and a value Python cannot hold (an int of 5,000 digits, the date 2024-13-45);
    each as a YAML error with its line."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _ReadError(None, None, f"lists and mappings nested more than {MAX_DEPTH} deep",
                                 self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):  # noqa: ANN201
        node = super().compose_document()
        if node is not None:
            _check_expanded(node)
        return node

    def construct_object(self, node, deep=False):  # noqa: ANN001, ANN201
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            why = "an integer of more than 4300 digits" if "4300" in str(exc) else str(exc)
            raise _ReadError(None, None, f"cannot read the value {_short(value)}: {why}", node.start_mark) from None

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged below, own keys win
                continue
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: 1`, a complex key
                a, b = key_node.start_mark, key_node.end_mark
                text = a.buffer[a.pointer:b.pointer] if a.buffer is not None else ""
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _ReadError(None, None, f"a key must be a name (a string), got the {kind} "
                                 f"{_short(' '.join(text.split()))[1:-1] or '...'}", a)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                hint = {bool: " (YAML reads yes/no/on/off/true/false as booleans: quote it)",
                        type(None): " (YAML reads ~ and null as nothing: quote it)"}.get(type(key), " (quote it)")
                raise _ReadError(None, None, f"a key must be a name (a string), got {_short(key)} "
                                 f"({type(key).__name__}){hint}", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (it is given twice in one mapping)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML error: what, and where (line and column)."""
    if isinstance(exc, yaml.reader.ReaderError):
        pos = exc.position
        line, col = text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
        ch = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return f"not valid YAML at line {line}, column {col}: character U+{ch:04X} is not allowed ({exc.reason})"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = " ".join(str(getattr(exc, "problem", None) or getattr(exc, "context", None) or exc).split())
    if isinstance(exc, _ReadError):
        return f"at {where}: {what}" if where else what
    return f"not valid YAML{' at ' + where if where else ''}: {what}"


def _parse_yaml(text: str, source: str | None) -> Any:
    """The document in ``text``; a :class:`ScenarioError` naming the line for anything wrong."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ScenarioError(_yaml_problem(exc, text), source) from None


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, at most :data:`MAX_FILE_BYTES`), or a :class:`ScenarioError`."""
    src = str(path)
    too_big = f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB (a scenario file is a few kB)"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioError(too_big, src)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror or exc}", src) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(too_big, src)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, col = data.count(b"\n", 0, at) + 1, at - (data.rfind(b"\n", 0, at) + 1) + 1
        raise ScenarioError(f"not UTF-8 text: byte 0x{data[at]:02x} at line {line}, column {col} cannot be "
                            "decoded (save the file as UTF-8)", src) from None


def _resolve(name_or_path: str | Path) -> Path:
    if not isinstance(name_or_path, (str, Path)):
        raise ScenarioError(f"expected a built-in scenario name, a YAML file path or a Scenario, got "
                            f"{type(name_or_path).__name__}")
    p = Path(name_or_path)
    try:
        is_file = p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(name_or_path)
        if is_file and not p.is_file():
            raise ScenarioError(f"file not found: {str(p)!r}", source=str(p))
    except OSError as exc:  # a name too long, say
        raise ScenarioError(f"cannot read {_short(str(p))}: {exc.strerror or exc}", source=str(p)) from None
    if is_file:
        return p
    found = builtin_path(str(name_or_path))
    if found is None:
        raise ScenarioError(
            f"unknown scenario {str(name_or_path)!r}: not a file and not a built-in; "
            f"built-ins: {', '.join(builtin_names())}"
        )
    return found


def _format_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "tagged-union")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


# pydantic error types that only say "the input is not of this union member's shape"
_SHAPE_ERRORS = {"list_type", "dict_type", "model_type", "model_attributes_type", "literal_error"}


def _clean_loc(loc: Iterable[Any], doc: Any) -> tuple[list[Any], bool]:
    """Drop pydantic's union-member tags from an error location; say whether any was dropped.

    The location is walked along the document itself: a string part that is not a key of the
    mapping at that point is a tag (``WarehouseOutage``, ``list[Region]``, ``literal['all']``,
    or the discriminator value ``warehouse_outage``), unless it names a missing field.
    """
    node: Any = doc
    out: list[Any] = []
    dropped = False
    for part in loc:
        if isinstance(part, int):
            out.append(part)
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        part = str(part)
        if isinstance(node, Mapping):
            if part in node:
                out.append(part)
                node = node[part]
                continue
            values = {v for v in node.values() if isinstance(v, str)}
            is_tag = part in values or "[" in part or part[:1].isupper() or part.startswith("function-")
        else:  # a list or a scalar has no fields; past the document, only tag-like parts are tags
            is_tag = node is not None or "[" in part or part[:1].isupper() or part.startswith("function-")
        if is_tag:
            dropped = True
        else:
            out.append(part)
            node = None
    return out, dropped


def _split_problems(msg: str) -> list[str]:
    """Split a validator message joined by ``"; "`` into problems, keeping ``; allowed: ...``
    (and any other piece that does not start with a path) with the problem it belongs to."""
    pieces: list[str] = []
    for piece in msg.split("; "):
        if pieces and (not _PATH_HEAD.match(piece) or piece.startswith("allowed: ")):
            pieces[-1] += "; " + piece
        else:
            pieces.append(piece)
    return pieces


def _model_at(loc: list[Any], doc: Any) -> type[BaseModel] | None:
    """The schema model that holds the field at ``loc`` (a cleaned location), if it can tell."""

    def pick(tp: Any, node: Any) -> Any:
        while True:  # unwrap Annotated and unions down to one concrete type for ``node``
            origin = get_origin(tp)
            if origin is Annotated:
                tp = get_args(tp)[0]
            elif origin in (Union, UnionType):
                options = [a for a in get_args(tp) if a is not type(None)]
                models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
                if isinstance(node, Mapping) and models:
                    tagged = [m for m in models if "type" in m.model_fields
                              and node.get("type") in get_args(m.model_fields["type"].annotation)]
                    tp = (tagged or models)[0]
                else:
                    lists = [a for a in options if get_origin(a) is list]
                    tp = lists[0] if isinstance(node, list) and lists else options[0]
            else:
                return tp

    tp: Any = Scenario
    node: Any = doc
    try:
        for part in loc[:-1]:
            tp = pick(tp, node)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                tp = tp.model_fields[part].annotation
            elif get_origin(tp) in (list, dict):
                tp = get_args(tp)[-1]
            else:
                return None
            node = node[part] if node is not None else None
        tp = pick(tp, node)
        return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
    except (KeyError, IndexError, TypeError):
        return None


def _allowed_range(loc: list[Any], doc: Any) -> str:
    """``"; allowed: 0 to 8760"``: the bounds of the number field at ``loc``, if it can tell."""
    tp: Any = None
    if loc and isinstance(loc[-1], str):
        model = _model_at(loc, doc)
        if model is not None and loc[-1] in model.model_fields:
            f = model.model_fields[loc[-1]]
            tp = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
    elif loc[:2] == ["demand", "profile"] and len(loc) == 4:  # a [time_h, multiplier] point
        point = get_args(Demand.model_fields["profile"].annotation)[0]  # tuple[time, multiplier]
        tp = get_args(point)[loc[3]] if loc[3] in (0, 1) else None
    bounds: list[str] = []
    stack = [tp]
    while stack and not bounds:  # the number bounds under the type (through Optional)
        t = stack.pop()
        if get_origin(t) in (Union, UnionType):
            stack.extend(get_args(t))
        elif get_origin(t) is Annotated:
            for m in get_args(t)[1:]:
                for c in getattr(m, "metadata", [m]):
                    for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                        if getattr(c, attr, None) is not None:
                            bounds.append(f"{op} {getattr(c, attr):g}")
            stack.append(get_args(t)[0])
    return f"; allowed: finite numbers {' and '.join(bounds)}" if bounds else ""


def validate_scenario(doc: Any, source: str | None = None) -> Scenario:
    """Validate a parsed YAML document; raise :class:`ScenarioError` naming each bad path."""
    if doc is None:
        raise ScenarioError("the file is empty: it must hold a mapping of fields (name, horizon_h, warehouses, ...)",
                            source)
    if not isinstance(doc, Mapping):
        raise ScenarioError(f"the file must hold a mapping of fields, got {type(doc).__name__}", source)
    try:
        return Scenario.model_validate(dict(doc))
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc, dropped = _clean_loc(err["loc"], doc)
            errors.append((err, loc, dropped))
        problems = []
        for err, loc, dropped in errors:
            # a union member whose shape does not fit, when another member got further: noise
            if dropped and err["type"] in _SHAPE_ERRORS and any(
                len(other) > len(loc) and other[: len(loc)] == loc for _, other, _ in errors
            ):
                continue
            path = _format_loc(loc)
            msg = err["msg"].removeprefix("Value error, ")
            bad = err.get("input")
            ctx = err.get("ctx") or {}
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                key = str(ctx.get("discriminator", "type")).strip("'")
                allowed = str(ctx.get("expected_tags", "")).replace("'", "")
                if err["type"] == "union_tag_invalid":
                    problems.append(f"{path}.{key}: unknown {key} {ctx.get('tag')!r}; allowed: {allowed}")
                else:
                    problems.append(f"{path}.{key}: field required" + (f"; allowed: {allowed}" if allowed else ""))
                continue
            for piece in _split_problems(msg):
                m = _PATH_HEAD.match(piece)
                if m:  # the message names its own sub-path
                    sub = m.group(1)
                    full = f"{path}.{sub}" if path and not sub.startswith(path) else sub
                    problems.append(f"{full}: {piece[m.end():]}")
                elif err["type"] in ("missing",):
                    problems.append(f"{path}: field required")
                elif err["type"] == "extra_forbidden":
                    model = _model_at(loc, doc)
                    known = f"; allowed: {', '.join(model.model_fields)}" if model else ""
                    problems.append(f"{path}: unknown field {loc[-1]!r} (check the spelling){known}")
                elif isinstance(bad, (int, float, str, bool)) and not isinstance(bad, Mapping):
                    allowed = _allowed_range(loc, doc) if err["type"] == "finite_number" else ""
                    problems.append(f"{path or '<root>'}: {piece}, got {_short(bad)}{allowed}")
                else:
                    problems.append(f"{path or '<root>'}: {piece}")
        raise ScenarioError(list(dict.fromkeys(problems)), source) from None


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None, flag: str = "--set") -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (values as YAML, so JSON too) into a mapping; ``flag`` names
    the option in the error message."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item or not item.split("=", 1)[0].strip():
            if flag == "--set":  # a scenario override: a scenario error
                raise ScenarioError(f"--set {_short(item)}: expected KEY=VALUE, e.g. warehouses.shanghai.pick.agvs=150")
            raise ValueError(f"{flag} {_short(item)}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        try:
            out[key] = yaml.load(value, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except _ReadError as exc:  # YAML, but not a value the twin reads
            raise ScenarioError(f"{flag} {key}: {_yaml_problem(exc, value)}") from None
        except yaml.YAMLError:
            out[key] = value  # not YAML: the text itself
    return out


def apply_overrides(doc: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``doc`` with each dotted ``key`` set to its value.

    A list element is addressed by index or by its ``name`` (``warehouses.shanghai.pick.agvs``).
    """
    doc = copy.deepcopy(doc)
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ScenarioError(f"--set {_short(key)}: the key must be a dotted path such as warehouses.shanghai.pick.agvs")
        parts = key.split(".")
        node: Any = doc
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                idx = None
                if part.isascii() and part.isdigit() and len(part) < 19 and int(part) < len(node):
                    idx = int(part)
                else:
                    names = [e.get("name") for e in node if isinstance(e, Mapping)]
                    if part in names:
                        idx = names.index(part)
                if idx is None:
                    names = [str(e.get("name", i)) for i, e in enumerate(node) if isinstance(e, Mapping)]
                    raise ScenarioError(f"--set {key}: no element {part!r} at {where}; allowed: {', '.join(names)}")
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ScenarioError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a section")
    return doc


def load_scenario(
    name_or_path: str | Path | Scenario,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> Scenario:
    """Load a built-in scenario by name, or a YAML file by path, apply overrides, validate.

    Args:
        name_or_path: a built-in name (``twin scenarios`` lists them), a file path, or a
            :class:`Scenario` (returned with the overrides applied).
        overrides: ``{"warehouses.shanghai.pick.agvs": 150}`` or ``["KEY=VALUE", ...]``.

    Raises:
        ScenarioError: the file is missing, not YAML, or breaks the schema; the message names
            the path in the file, the value and what is allowed.
    """
    ov = parse_overrides(overrides)
    if isinstance(name_or_path, Scenario):
        if not ov:
            return name_or_path
        doc = _with_override_note(apply_overrides(name_or_path.model_dump(mode="json"), ov), ov)
        return validate_scenario(doc, name_or_path.name)
    path = _resolve(name_or_path)
    doc = _parse_yaml(_read_text(path), str(path))
    if isinstance(doc, dict) and ov:
        doc = _with_override_note(apply_overrides(doc, ov), ov)
    return validate_scenario(doc, str(path))


def format_overrides(overrides: Mapping[str, Any]) -> str:
    """``KEY=VALUE, ...`` of parsed overrides, each value as it would be typed (JSON for
    anything but a plain string)."""
    def typed(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, float) and not math.isfinite(v):
            return ".nan" if math.isnan(v) else ".inf" if v > 0 else "-.inf"  # YAML's spelling
        try:
            return json.dumps(v, separators=(",", ":"), default=str)
        except (ValueError, TypeError, RecursionError):  # a cyclic or very deep Python value
            return _short(v)

    return ", ".join(f"{k}={typed(v)}" for k, v in overrides.items())


_NOTE = re.compile(r" \(with (?P<what>(?:overrides: |scale x|horizon ).*)\)$")


def annotate_description(description: Any, note: str) -> Any:
    """``description`` with ``note`` (``"overrides: k=v"``, ``"scale x0.1"``) in the trailing
    ``(with ...)`` remark that says what changed since the text was written: the remark
    is extended if there is one, else appended. A non-string is returned as it is (the
    schema then reports it)."""
    if not isinstance(description, str):
        return description
    text = description.rstrip()
    m = _NOTE.search(text)
    if m:
        what = m.group("what")
        last = what.rsplit("; ", 1)[-1]
        if last.startswith("overrides: ") and note.startswith("overrides: "):  # one list of overrides
            return f"{text[: m.start()]} (with {what}, {note.removeprefix('overrides: ')})"
        return f"{text[: m.start()]} (with {what}; {note})"
    return f"{text} (with {note})" if text else f"(with {note})"


def _with_override_note(doc: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The description of ``doc`` was written for the file: after overrides it may state what
    they changed ("down for 24 h" after ``disruptions.0.end_h=20``), so it names them, unless
    an override sets the description itself."""
    if any(k.split(".")[0] == "description" for k in overrides):
        return doc
    doc["description"] = annotate_description(doc.get("description", ""), f"overrides: {format_overrides(overrides)}")
    return doc


def scale_scenario(scenario: Scenario, factor: float) -> Scenario:
    """The same scenario with demand and every capacity multiplied by ``factor``.

    Order rate, AGVs, pack stations, carrier capacities and stock scale together, so loads and
    utilisations stay about the same while a run takes ``factor`` times as long: for quick
    looks and for tests.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"scale factor must be a finite number > 0, got {factor!r}")
    doc = scenario.model_dump(mode="json")
    doc["description"] = annotate_description(doc.get("description", ""), f"scale x{factor:g}")

    def up(x: float) -> int | float:
        v = x * factor
        return (max(1, round(v)) if math.isfinite(v) else v) if x > 0 else 0  # inf: the schema says so

    doc["demand"]["base_rate_per_h"] *= factor
    for w in doc["warehouses"]:
        w["pick"]["agvs"] = up(w["pick"]["agvs"])
        w["pack"]["stations"] = up(w["pack"]["stations"])
        w["stock"]["units_per_sku"] = up(w["stock"]["units_per_sku"])
    for c in doc["carriers"]:
        c["capacity"] = up(c["capacity"])
        c["reefer_capacity"] = up(c["reefer_capacity"])
    return validate_scenario(doc, f"{scenario.name} (scaled x{factor:g})")
