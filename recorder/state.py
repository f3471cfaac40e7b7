"""The state engine behind snapshots: pure functions over JSON documents.

An event may carry a ``state`` op that changes the session's state document:

``{"op": "set", "path": "/a/b", "value": ...}``
    Assign ``value`` at the JSON pointer ``path`` (RFC 6901).  Missing
    intermediate objects are created, like ``mkdir -p``: setting ``/a/b/c`` on
    ``{}`` gives ``{"a": {"b": {"c": ...}}}``.  Only *missing* members are
    created; an existing ``null``, number, string or boolean in the way is an
    error (we never silently throw a value away).  In an array, index ``i``
    replaces element ``i`` (assignment, unlike RFC 6902 ``add`` which
    inserts), and ``-`` or ``i == len`` appends; anything beyond is an error.
    ``path`` is required; ``""`` or ``"/"`` replaces the whole document.

``{"op": "merge", "value": {...}, "path": optional}``
    RFC 7386 JSON Merge Patch.  Without ``path`` it is applied to the whole
    document.  With ``path`` it is applied to the value at ``path``, and the
    result is stored there with the same ``mkdir -p`` rule as ``set``; a
    missing target counts as ``{}``.  ``value`` must be an object: a
    non-object merge patch just replaces the target, which is what ``set`` is
    for, so we reject it instead of letting a typo wipe the state.

``{"op": "patch", "patch": [...], "path": optional}``
    RFC 6902 JSON Patch.  With ``path``, every ``path``/``from`` inside the
    patch is *relative* to it: ``{"path": "/grid", "patch": [{"op": "remove",
    "path": "/rows/0"}]}`` removes ``/grid/rows/0``.  The target at ``path``
    is not created: a patch can only change something that exists.
    A patch is atomic: either every operation applies or nothing changes.

Two deliberate deviations from plain RFC 6901 pointers, both only for the
op-level ``path`` (pointers *inside* an RFC 6902 patch are pure RFC):

* ``"/"`` means the whole document (RFC 6901 would read it as the member
  named ``""``), because that is what people type.
* The state document is always a JSON object.  An op that would turn it into
  anything else fails.  This keeps snapshots easy to display, and it means
  ``None`` is never a real state, so callers can use ``None`` for "no
  keyframe yet" without ambiguity.

Documents are treated as immutable values.  Keyframes are cached and stored,
so ``apply_op`` and ``fold`` never modify the document they are given;
instead they copy only the containers on the way to the change
(copy-on-write) and share everything else with the input.  The flip side is
that **a returned document shares unchanged subtrees with its input: never
modify a document in place**, copy it first (``copy.deepcopy``) if you must.

Nothing here imports Django: the DB layer picks keyframes and feeds ops in
timeline order; this module only folds them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from jsonpointer import JsonPointer, JsonPointerException, escape

__all__ = [
    "PATCH_OPS",
    "STATE_OPS",
    "FoldResult",
    "StateOpError",
    "apply_op",
    "diff",
    "fold",
    "merge_patch",
    "validate_op",
]

STATE_OPS = ("set", "merge", "patch")
PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")

# Library messages can embed whole documents (jsonpointer prints the object it
# searched).  Errors are stored and shown per event, so keep them readable.
MAX_ERROR_CHARS = 300

# RFC 6901 array index: no sign, no leading zeros.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")

_MISSING = object()  # "no such member", distinct from a JSON null


class StateOpError(ValueError):
    """A state op could not be applied; the document was left unchanged."""


@dataclass
class FoldResult:
    """The document after a fold, plus one entry per op that was skipped.

    ``errors`` items look like ``{"event": ref, "error": "message"}`` so the
    UI can link each failure to the event that caused it.
    """

    doc: Any
    errors: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------
# Validation (cheap, structural; used at ingestion)
# --------------------------------------------------------------------------


def validate_op(state: Any) -> str | None:
    """Return an error message if ``state`` is structurally invalid, else None.

    Ingestion rejects an event whose state op fails this check, so the message
    is written for the client.  It only looks at the op itself: whether a
    ``test`` passes or a path exists depends on the document at replay time,
    and is reported by ``fold`` instead.
    """
    if not isinstance(state, dict):
        return "state must be an object"
    op = state.get("op")
    if op not in STATE_OPS:
        return "state.op must be one of " + ", ".join(STATE_OPS)

    if "path" in state:
        error = _pointer_error(state["path"], "state.path")
        if error:
            return error
    elif op == "set":
        return 'state.path is required for op set (use "" for the whole document)'

    if op == "set":
        if "value" not in state:
            return "state.value is required for op set"
        if _is_root(state["path"]) and not isinstance(state["value"], dict):
            return "state.value must be an object when setting the whole document"
    elif op == "merge":
        if "value" not in state:
            return "state.value is required for op merge"
        if not isinstance(state["value"], dict):
            return "state.value must be an object for op merge (use set to replace a value)"
    else:  # patch
        return _patch_error(state.get("patch", _MISSING))
    return None


def _patch_error(patch: Any) -> str | None:
    """Structural checks for an RFC 6902 patch document."""
    if not isinstance(patch, list):
        return "state.patch must be an array of JSON Patch operations"
    for i, item in enumerate(patch):
        where = f"state.patch[{i}]"
        if not isinstance(item, dict):
            return f"{where} must be an object"
        if item.get("op") not in PATCH_OPS:
            return f"{where}.op must be one of " + ", ".join(PATCH_OPS)
        if "path" not in item:
            return f"{where}.path is required"
        error = _pointer_error(item["path"], f"{where}.path")
        if error:
            return error
        if item["op"] in ("move", "copy"):
            if "from" not in item:
                return f"{where}.from is required for op {item['op']}"
            error = _pointer_error(item["from"], f"{where}.from")
            if error:
                return error
        if item["op"] in ("add", "replace", "test") and "value" not in item:
            return f"{where}.value is required for op {item['op']}"
    return None


def _pointer_error(pointer: Any, where: str) -> str | None:
    if not isinstance(pointer, str):
        return f"{where} must be a string (a JSON pointer)"
    try:
        _parts(pointer)
    except JsonPointerException as exc:
        return f"{where} is not a valid JSON pointer: {exc}"
    return None


# --------------------------------------------------------------------------
# Applying ops
# --------------------------------------------------------------------------


def apply_op(doc: Any, state: dict) -> Any:
    """Apply one state op and return the new document.

    ``doc`` is never modified; the result shares unchanged parts with it (see
    the module docstring).  ``None`` means the empty document ``{}``.  On any
    failure, structural or semantic, ``StateOpError`` is raised, and since
    nothing was modified the caller simply keeps ``doc``.
    """
    error = validate_op(state)
    if error:
        raise StateOpError(error)
    if doc is None:
        doc = {}

    op = state["op"]
    parts = _op_path_parts(state.get("path", ""))
    if op == "set":
        # Copy the value so the document never aliases the event's data.
        new = _set_in(doc, parts, _clone(state["value"]))
    elif op == "merge":
        current = _get_in(doc, parts)
        target = None if current is _MISSING else current
        new = _set_in(doc, parts, merge_patch(target, state["value"]))
    else:
        new = _apply_json_patch(doc, parts, state["patch"])

    if not isinstance(new, dict):
        raise StateOpError(
            f"the state document must stay a JSON object, this op would make it {_kind(new)}"
        )
    return new


def fold(ops: Iterable[tuple[Hashable, dict | None]], doc: Any = None) -> FoldResult:
    """Apply ``ops`` in order, starting from ``doc`` (a keyframe) or ``{}``.

    ``ops`` yields ``(ref, state)`` pairs, where ``ref`` is whatever lets the
    caller find the event again (e.g. its id).  A failing op is skipped and
    reported with its ref; the fold carries on, because one bad event must
    not hide the rest of a session.  Pairs whose state is ``None`` (events
    without a state op) are ignored, so a whole timeline can be passed in.

    Folding is associative over split points, which is what makes keyframes
    correct: ``fold(ops[k:], fold(ops[:k]).doc)`` equals ``fold(ops)``, with
    the errors of both halves concatenated.
    """
    current = {} if doc is None else doc
    errors: list[dict[str, Any]] = []
    for ref, state in ops:
        if state is None:
            continue
        try:
            current = apply_op(current, state)
        except StateOpError as exc:
            errors.append({"event": ref, "error": str(exc)})
    return FoldResult(doc=current, errors=errors)


def diff(a: Any, b: Any) -> list[dict]:
    """Return an RFC 6902 patch that turns ``a`` into ``b``.

    Used for "what changed between t1 and t2".  The operations do not alias
    ``b`` (the library deep-copies them).
    """
    return jsonpatch.make_patch(a, b).patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch), without modifying either argument.

    Written here rather than taken from the ``json-merge-patch`` package,
    because that package merges into ``target`` in place and lets the result
    alias lists of the patch, and we must not touch cached keyframes.  Only
    the objects on the merged keys are copied.
    """
    if not isinstance(patch, dict):
        return _clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------
# Pointer helpers for set and merge (copy-on-write)
# --------------------------------------------------------------------------


def _is_root(path: str) -> bool:
    return path in ("", "/")


def _op_path_parts(path: str) -> list[str]:
    """Parts of an op-level path; "/" is the whole document (see module doc)."""
    return [] if _is_root(path) else list(_parts(path))


@functools.lru_cache(maxsize=4096)
def _parts(pointer: str) -> tuple[str, ...]:
    """Unescaped parts of an RFC 6901 pointer; raises JsonPointerException.

    Cached because sessions reuse the same few pointers over and over, and
    parsing was the largest cost of applying small ops.  A tuple, so a
    cached value cannot be changed by a caller.
    """
    return tuple(JsonPointer(pointer).parts)


def _pointer(parts: list[str]) -> str:
    return "".join("/" + escape(part) for part in parts)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _array_index(array: list, part: str, parts: list[str], depth: int) -> int:
    """Index for writing into ``array``: 0..len, where len means append."""
    if part == "-":
        return len(array)
    where = _pointer(parts[:depth]) or "the document root"
    if not _ARRAY_INDEX.fullmatch(part):
        raise StateOpError(
            f"cannot set {_pointer(parts)}: {part!r} is not an array index for {where}"
        )
    index = int(part)
    if index > len(array):
        raise StateOpError(
            f"cannot set {_pointer(parts)}: index {index} is out of range "
            f"({where} has {len(array)} items)"
        )
    return index


def _set_in(node: Any, parts: list[str], value: Any, depth: int = 0) -> Any:
    """Return a copy of ``node`` with ``value`` at ``parts[depth:]``.

    Only the containers along the path are copied; siblings are shared.
    Missing object members on the way are created as ``{}``.
    """
    if depth == len(parts):
        return value
    key = parts[depth]
    last = depth == len(parts) - 1
    if isinstance(node, dict):
        new = dict(node)
        new[key] = value if last else _set_in(node.get(key, {}), parts, value, depth + 1)
        return new
    if isinstance(node, list):
        index = _array_index(node, key, parts, depth)
        child = (
            value
            if last
            else _set_in(node[index] if index < len(node) else {}, parts, value, depth + 1)
        )
        new = list(node)
        if index == len(node):
            new.append(child)
        else:
            new[index] = child
        return new
    where = _pointer(parts[:depth]) or "the document root"
    raise StateOpError(
        f"cannot set {_pointer(parts)}: {where} is {_kind(node)}, not an object or array"
    )


def _get_in(node: Any, parts: list[str]) -> Any:
    """Value at ``parts``, or ``_MISSING`` if any step does not exist."""
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return _MISSING
        elif isinstance(node, list) and _ARRAY_INDEX.fullmatch(part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _clone(value: Any) -> Any:
    """Deep copy of a JSON value; much faster than copy.deepcopy for JSON."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


# --------------------------------------------------------------------------
# RFC 6902 on top of the jsonpatch library, copy-on-write
# --------------------------------------------------------------------------
#
# jsonpatch either mutates the document in place or deep-copies all of it
# first.  A deep copy of a few hundred keys per op is too slow for 500 ops in
# a snapshot, and in-place would corrupt cached keyframes.  So we let the
# library do each operation in place, but first replace every container the
# operation will write to (the parent of its target) by a private shallow
# copy, along with the containers above it.  ``owned`` remembers the copies
# made during one patch so each container is copied at most once.  Since the
# input document is never written to, a failing operation leaves it intact,
# which gives RFC 6902 atomicity for free: we just drop the partial result.


_CONTAINER_DUMP = re.compile(r" in [\[{].*$", re.DOTALL)


def _apply_json_patch(doc: Any, prefix: list[str], patch: list[dict]) -> Any:
    owned: dict[int, Any] = {}  # id -> container; the dict keeps ids unique
    base = _pointer(prefix)
    for i, operation in enumerate(patch):
        if base:
            # Relative paths: a pointer is "" or starts with "/", so plain
            # concatenation of escaped pointers is a valid pointer.
            operation = dict(operation, path=base + operation["path"])
            if "from" in operation:
                operation["from"] = base + operation["from"]
        try:
            doc = _apply_patch_operation(doc, operation, owned)
        except Exception as exc:  # library boundary: a fold must never break
            message = str(exc) or type(exc).__name__
            # jsonpatch quotes the whole container ("member 'x' not found in {...}"): drop
            # it. It repeats what the path says, and its key order depends on where the
            # document came from (jsonb on PostgreSQL reorders keys), so the same failure
            # would read differently from a keyframe than from a full fold.
            message = _CONTAINER_DUMP.sub("", message)
            if len(message) > MAX_ERROR_CHARS:
                message = message[:MAX_ERROR_CHARS] + "..."
            raise StateOpError(
                f"patch[{i}] ({operation['op']} {operation['path']}) failed: {message}"
            ) from exc
    return doc


def _apply_patch_operation(doc: Any, operation: dict, owned: dict[int, Any]) -> Any:
    name = operation["op"]
    operation_cls = jsonpatch.JsonPatch.operations[name]
    if name == "test":  # reads only
        return operation_cls(operation).apply(doc)
    if name == "move":
        return _move(doc, operation, owned)
    doc = _own_spine(doc, _parts(operation["path"]), owned)
    return operation_cls(operation).apply(doc)


def _move(doc: Any, operation: dict, owned: dict[int, Any]) -> Any:
    """RFC 6902 move as remove + add, owning containers between the two steps.

    The library's move resolves the target only after the removal, which can
    shift array indices; the container it then writes to may not be the one
    we copied beforehand.  Owning again after the removal avoids that.
    """
    source = JsonPointer(operation["from"])
    target = JsonPointer(operation["path"])
    value = source.resolve(doc)  # "from" must exist, even for a no-op move
    if target == source:
        return doc
    if target.contains(source):
        raise jsonpatch.JsonPatchConflict("cannot move a value into one of its own children")
    doc = _own_spine(doc, source.parts, owned)
    doc = jsonpatch.RemoveOperation({"op": "remove", "path": operation["from"]}).apply(doc)
    doc = _own_spine(doc, target.parts, owned)
    return jsonpatch.AddOperation({"op": "add", "path": operation["path"], "value": value}).apply(
        doc
    )


def _own(node: Any, owned: dict[int, Any]) -> Any:
    if id(node) in owned:
        return node
    copy = dict(node) if isinstance(node, dict) else list(node)
    owned[id(copy)] = copy
    return copy


def _own_spine(doc: Any, parts: Sequence[str], owned: dict[int, Any]) -> Any:
    """Make the root and every container above the target of ``parts`` ours.

    Stops quietly where the path cannot be followed; the operation itself
    then fails with the library's error message.
    """
    if not isinstance(doc, (dict, list)):
        return doc
    root = node = _own(doc, owned)
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                break
            key: Any = part
        elif _ARRAY_INDEX.fullmatch(part) and int(part) < len(node):
            key = int(part)
        else:
            break
        child = node[key]
        if not isinstance(child, (dict, list)):
            break
        mine = _own(child, owned)
        if mine is not child:
            node[key] = mine
        node = mine
    return root
