"""Tests for recorder.state, the pure state engine behind snapshots."""

import copy
import json

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonpointer import JsonPointerException

from recorder.state import (
    FoldResult,
    StateOpError,
    apply_op,
    diff,
    fold,
    merge_patch,
    validate_op,
)


def patch_op(patch, path=None):
    state = {"op": "patch", "patch": patch}
    if path is not None:
        state["path"] = path
    return state


# --------------------------------------------------------------------------
# RFC 6902 appendix A
# --------------------------------------------------------------------------

RFC6902_OK = [
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
        id="A.1 adding an object member",
    ),
    pytest.param(
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
        id="A.2 adding an array element",
    ),
    pytest.param(
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
        id="A.3 removing an object member",
    ),
    pytest.param(
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
        id="A.4 removing an array element",
    ),
    pytest.param(
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
        id="A.5 replacing a value",
    ),
    pytest.param(
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        id="A.6 moving a value",
    ),
    pytest.param(
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
        id="A.7 moving an array element",
    ),
    pytest.param(
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
        id="A.8 testing a value: success",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
        id="A.10 adding a nested member object",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
        id="A.11 ignoring unrecognized elements",
    ),
    pytest.param(
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
        id="A.14 escape ordering",
    ),
    pytest.param(
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
        id="A.16 adding an array value",
    ),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), RFC6902_OK)
def test_rfc6902_examples(doc, patch, expected):
    before = copy.deepcopy(doc)
    assert apply_op(doc, patch_op(patch)) == expected
    assert doc == before


RFC6902_FAILING = [
    pytest.param(
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        id="A.9 testing a value: error",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        id="A.12 adding to a nonexistent target",
    ),
    pytest.param(
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": "10"}],
        id="A.15 comparing strings and numbers",
    ),
    pytest.param(
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/5", "value": 1}],
        id="add beyond the end of an array",
    ),
    pytest.param(
        {"foo": {"bar": 1}},
        [{"op": "move", "from": "/foo", "path": "/foo/bar/baz"}],
        id="move into own child",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "remove", "path": "/nope"}],
        id="remove a missing member",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "add", "path": "/foo/x", "value": 1}],
        id="patch inside a string",
    ),
    pytest.param(
        {"foo": "bar"},
        [{"op": "replace", "path": "", "value": [1, 2]}],
        id="root would stop being an object",
    ),
]


@pytest.mark.parametrize(("doc", "patch"), RFC6902_FAILING)
def test_rfc6902_failures_raise_and_leave_doc_untouched(doc, patch):
    before = copy.deepcopy(doc)
    with pytest.raises(StateOpError):
        apply_op(doc, patch_op(patch))
    assert doc == before


# A.13 is a patch with a duplicate "op" member, which cannot survive JSON
# parsing into a dict; these are the invalid patch documents that can.
INVALID_PATCH_OPS = [
    pytest.param([{"path": "/a", "value": 1}], "state.patch[0].op must be one of", id="no op"),
    pytest.param(
        [{"op": "frobnicate", "path": "/a"}],
        "state.patch[0].op must be one of",
        id="unknown op",
    ),
    pytest.param([{"op": "add", "value": 1}], "state.patch[0].path is required", id="no path"),
    pytest.param(
        [{"op": "add", "path": "/a"}],
        "state.patch[0].value is required",
        id="add without value",
    ),
    pytest.param(
        [{"op": "test", "path": "/a"}],
        "state.patch[0].value is required",
        id="test without value",
    ),
    pytest.param(
        [{"op": "move", "path": "/a"}],
        "state.patch[0].from is required",
        id="move without from",
    ),
    pytest.param(
        [{"op": "copy", "path": "/a", "from": "b"}],
        "state.patch[0].from is not a valid",
        id="bad from",
    ),
    pytest.param(
        [{"op": "remove", "path": "a"}],
        "state.patch[0].path is not a valid",
        id="no leading slash",
    ),
    pytest.param(
        [{"op": "remove", "path": "/a~2"}],
        "state.patch[0].path is not a valid",
        id="bad escape",
    ),
    pytest.param(
        [{"op": "remove", "path": 5}],
        "state.patch[0].path must be a string",
        id="path not a string",
    ),
    pytest.param(["remove /a"], "state.patch[0] must be an object", id="op not an object"),
    pytest.param(
        [{"op": "add", "path": "/a", "value": 1}, {"op": "nope", "path": "/a"}],
        "state.patch[1].op",
        id="second op invalid",
    ),
]


@pytest.mark.parametrize(("patch", "message"), INVALID_PATCH_OPS)
def test_invalid_patch_documents(patch, message):
    state = patch_op(patch)
    assert validate_op(state).startswith(message)
    doc = {"a": 1}
    with pytest.raises(StateOpError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_op(doc, state)
    assert doc == {"a": 1}


# --------------------------------------------------------------------------
# RFC 7386 appendix A (every row)
# --------------------------------------------------------------------------

RFC7386_ROWS = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_ROWS)
def test_rfc7386_merge_patch(target, patch, expected):
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    assert merge_patch(target, patch) == expected
    assert target == target_before
    assert patch == patch_before


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [row for row in RFC7386_ROWS if isinstance(row[1], dict)],
)
def test_rfc7386_rows_through_merge_op_at_a_path(target, patch, expected):
    # The merge op needs an object patch; applied at /x, the row's target can
    # be any JSON value, exactly like in the RFC table.
    doc = {"x": target, "other": 1}
    assert apply_op(doc, {"op": "merge", "path": "/x", "value": patch}) == {
        "x": expected,
        "other": 1,
    }


def test_merge_at_root():
    doc = {"a": {"b": 1, "c": 2}, "d": 3}
    assert apply_op(doc, {"op": "merge", "value": {"a": {"c": None, "e": 4}, "d": None}}) == {
        "a": {"b": 1, "e": 4}
    }


def test_merge_at_missing_path_creates_parents():
    assert apply_op({}, {"op": "merge", "path": "/a/b", "value": {"c": 1, "d": None}}) == {
        "a": {"b": {"c": 1}}
    }


def test_merge_result_does_not_alias_the_event():
    value = {"list": [1, 2], "obj": {"k": "v"}}
    doc = apply_op({}, {"op": "merge", "value": value})
    value["list"].append(3)
    value["obj"]["k"] = "changed"
    assert doc == {"list": [1, 2], "obj": {"k": "v"}}


# --------------------------------------------------------------------------
# set
# --------------------------------------------------------------------------


def test_set_nested_pointer_creates_parents():
    assert apply_op({}, {"op": "set", "path": "/a/b/c", "value": 1}) == {"a": {"b": {"c": 1}}}
    assert apply_op({"a": {"x": 0}}, {"op": "set", "path": "/a/b/c", "value": 1}) == {
        "a": {"x": 0, "b": {"c": 1}}
    }


@pytest.mark.parametrize("path", ["", "/"])
def test_set_replaces_root(path):
    assert apply_op({"old": 1}, {"op": "set", "path": path, "value": {"new": 2}}) == {"new": 2}


def test_set_escapes():
    doc = apply_op({}, {"op": "set", "path": "/a~1b/c~0d", "value": 1})
    assert doc == {"a/b": {"c~d": 1}}
    doc = apply_op(doc, {"op": "set", "path": "/~01", "value": 2})
    assert doc == {"a/b": {"c~d": 1}, "~1": 2}


def test_set_in_arrays():
    doc = {"a": [10, 20]}
    assert apply_op(doc, {"op": "set", "path": "/a/0", "value": 1}) == {"a": [1, 20]}
    assert apply_op(doc, {"op": "set", "path": "/a/-", "value": 30}) == {"a": [10, 20, 30]}
    assert apply_op(doc, {"op": "set", "path": "/a/2", "value": 30}) == {"a": [10, 20, 30]}
    assert apply_op(doc, {"op": "set", "path": "/a/-/k", "value": 1}) == {"a": [10, 20, {"k": 1}]}


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"a": [1]}, "/a/5", "out of range"),
        ({"a": [1]}, "/a/01", "not an array index"),
        ({"a": [1]}, "/a/x", "not an array index"),
        ({"a": "str"}, "/a/b", "/a is a string"),
        ({"a": None}, "/a/b", "/a is null"),
        ({"a": {"b": 3}}, "/a/b/c/d", "/a/b is a number"),
    ],
)
def test_set_errors(doc, path, message):
    before = copy.deepcopy(doc)
    with pytest.raises(StateOpError, match=message):
        apply_op(doc, {"op": "set", "path": path, "value": 1})
    assert doc == before


def test_set_value_is_copied():
    value = {"rows": [1]}
    doc = apply_op({}, {"op": "set", "path": "/grid", "value": value})
    value["rows"].append(2)
    assert doc == {"grid": {"rows": [1]}}


# --------------------------------------------------------------------------
# patch relative to a path
# --------------------------------------------------------------------------


def test_patch_paths_are_relative_to_op_path():
    doc = {"grid": {"rows": [1, 2], "meta": {}}, "other": True}
    state = patch_op(
        [
            {"op": "remove", "path": "/rows/0"},
            {"op": "copy", "from": "/rows", "path": "/meta/backup"},
            {"op": "test", "path": "", "value": {"rows": [2], "meta": {"backup": [2]}}},
        ],
        path="/grid",
    )
    assert apply_op(doc, state) == {
        "grid": {"rows": [2], "meta": {"backup": [2]}},
        "other": True,
    }


def test_patch_relative_to_escaped_path():
    doc = {"a/b": {"x": 1}}
    assert apply_op(doc, patch_op([{"op": "replace", "path": "/x", "value": 2}], path="/a~1b")) == {
        "a/b": {"x": 2}
    }


def test_patch_at_missing_path_fails():
    with pytest.raises(StateOpError, match=r"patch\[0\]"):
        apply_op({}, patch_op([{"op": "add", "path": "/x", "value": 1}], path="/nope"))


def test_patch_is_atomic_when_third_op_fails():
    doc = {"a": 1, "list": [1, 2], "nested": {"k": "v"}}
    before = copy.deepcopy(doc)
    state = patch_op(
        [
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "test", "path": "/nested/k", "value": "other"},
            {"op": "remove", "path": "/nested"},
        ]
    )
    with pytest.raises(StateOpError, match=r"patch\[2\] \(test /nested/k\)"):
        apply_op(doc, state)
    assert doc == before
    result = fold([("e1", state), ("e2", {"op": "set", "path": "/b", "value": 1})], doc)
    assert result.doc == {**before, "b": 1}
    assert [e["event"] for e in result.errors] == ["e1"]


def test_move_after_array_shift_does_not_touch_input():
    # Removing /a/0 shifts the array, so /a/1 names a different element
    # after the removal than before it.
    doc = {"a": [{"n": 0}, {"n": 1}, {"n": 2}]}
    before = copy.deepcopy(doc)
    result = apply_op(doc, patch_op([{"op": "move", "from": "/a/0", "path": "/a/1/moved"}]))
    assert result == {"a": [{"n": 1}, {"n": 2, "moved": {"n": 0}}]}
    assert doc == before


def test_error_messages_stay_short():
    doc = {f"key{i}": "x" * 50 for i in range(200)}
    with pytest.raises(StateOpError) as info:
        apply_op(doc, patch_op([{"op": "remove", "path": "/missing"}]))
    assert len(str(info.value)) < 400


# --------------------------------------------------------------------------
# fold, errors, non-mutation
# --------------------------------------------------------------------------


def test_fold_starts_from_empty_object():
    assert fold([]) == FoldResult(doc={}, errors=[])
    assert fold([(1, {"op": "set", "path": "/a", "value": 1})]).doc == {"a": 1}


def test_fold_reports_errors_with_event_ref_and_keeps_going():
    ops = [
        ("e1", {"op": "set", "path": "/a", "value": {"b": 1}}),
        ("e2", patch_op([{"op": "test", "path": "/a/b", "value": 2}])),
        ("e3", {"op": "frob"}),
        ("e4", {"op": "set", "path": "/a/b/c", "value": 1}),
        ("e5", None),  # an event without a state op
        ("e6", {"op": "merge", "value": {"z": 26}}),
    ]
    result = fold(ops)
    assert result.doc == {"a": {"b": 1}, "z": 26}
    assert [e["event"] for e in result.errors] == ["e2", "e3", "e4"]
    assert result.errors[1]["error"] == "state.op must be one of set, merge, patch"
    assert all(isinstance(e["error"], str) and e["error"] for e in result.errors)


def test_apply_op_and_fold_do_not_mutate_input():
    doc = {"a": {"b": {"c": [1, {"d": 2}]}}, "e": [{"f": 1}], "g": 1}
    before = copy.deepcopy(doc)
    states = [
        {"op": "set", "path": "/a/b/c/1/d", "value": 3},
        {"op": "set", "path": "/e/0/f", "value": 2},
        {"op": "merge", "value": {"a": {"b": {"x": 1}}, "g": None}},
        {"op": "merge", "path": "/e/0", "value": {"f": None}},
        patch_op([{"op": "add", "path": "/a/b/c/1/new", "value": 1}]),
        patch_op(
            [
                {"op": "remove", "path": "/e/0/f"},
                {"op": "move", "from": "/a/b", "path": "/moved"},
            ]
        ),
        patch_op([{"op": "copy", "from": "/a", "path": "/e/-"}]),
        patch_op([{"op": "replace", "path": "/a/b/c/0", "value": 9}]),
        {"op": "set", "path": "", "value": {"fresh": True}},
    ]
    for state in states:
        apply_op(doc, state)
        assert doc == before, state
    fold([(i, s) for i, s in enumerate(states)], doc)
    assert doc == before


def test_fold_result_shares_nothing_it_changed_with_the_keyframe():
    keyframe = {"a": {"n": 1}, "b": {"n": 2}}
    result = fold([(1, {"op": "set", "path": "/a/n", "value": 5})], keyframe).doc
    assert result["a"] is not keyframe["a"]
    assert result["b"] is keyframe["b"]  # untouched subtrees are shared, by design


# --------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------


def test_diff_round_trips():
    a = {"a": 1, "b": [1, 2, 3], "c": {"d": 1}}
    b = {"a": 2, "b": [1, 3], "e": None}
    patch = diff(a, b)
    assert jsonpatch.apply_patch(a, patch) == b
    assert apply_op(a, patch_op(patch)) == b
    assert diff(a, a) == []


# --------------------------------------------------------------------------
# validate_op
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        {"op": "set", "path": "/a", "value": None},
        {"op": "set", "path": "", "value": {}},
        {"op": "set", "path": "/", "value": {"a": 1}},
        {"op": "set", "path": "/a~1b/~0", "value": [1]},
        {"op": "merge", "value": {}},
        {"op": "merge", "path": "/a", "value": {"b": None}},
        {"op": "patch", "patch": []},
        {"op": "patch", "path": "/grid", "patch": [{"op": "remove", "path": "/0"}]},
        {"op": "set", "path": "/a", "value": 1, "extra": "ignored"},
    ],
)
def test_validate_op_accepts(state):
    assert validate_op(state) is None


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (None, "state must be an object"),
        ([], "state must be an object"),
        ("set", "state must be an object"),
        ({}, "state.op must be one of set, merge, patch"),
        ({"op": "delete", "path": "/a"}, "state.op must be one of set, merge, patch"),
        (
            {"op": "set", "value": 1},
            'state.path is required for op set (use "" for the whole document)',
        ),
        ({"op": "set", "path": "/a"}, "state.value is required for op set"),
        (
            {"op": "set", "path": 3, "value": 1},
            "state.path must be a string (a JSON pointer)",
        ),
        (
            {"op": "set", "path": "a", "value": 1},
            "state.path is not a valid JSON pointer: Location must start with /",
        ),
        (
            {"op": "set", "path": "/a~", "value": 1},
            "state.path is not a valid JSON pointer: Found invalid escape ~",
        ),
        (
            {"op": "set", "path": "", "value": [1]},
            "state.value must be an object when setting the whole document",
        ),
        ({"op": "merge"}, "state.value is required for op merge"),
        (
            {"op": "merge", "value": 5},
            "state.value must be an object for op merge (use set to replace a value)",
        ),
        (
            {"op": "merge", "path": "x", "value": {}},
            "state.path is not a valid JSON pointer: Location must start with /",
        ),
        ({"op": "patch"}, "state.patch must be an array of JSON Patch operations"),
        (
            {"op": "patch", "patch": {"op": "add"}},
            "state.patch must be an array of JSON Patch operations",
        ),
    ],
)
def test_validate_op_rejects(state, message):
    assert validate_op(state) == message
    if isinstance(state, dict):
        with pytest.raises(StateOpError):
            apply_op({}, state)


def test_semantic_failures_pass_validation():
    # Only replay can tell whether these work; ingestion must accept them.
    assert validate_op(patch_op([{"op": "test", "path": "/a", "value": 1}])) is None
    assert validate_op({"op": "set", "path": "/a/99", "value": 1}) is None


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

KEYS = ["a", "b", "c"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=6,
)
objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=3)
pointers = st.lists(st.sampled_from(KEYS + ["0", "1", "-"]), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts)
)
bad_pointers = st.sampled_from(["a", "/a~", "/~2", 7])

patch_items = st.one_of(
    st.builds(
        lambda o, p, v: {"op": o, "path": p, "value": v},
        st.sampled_from(["add", "replace", "test"]),
        pointers,
        json_values,
    ),
    st.builds(lambda p: {"op": "remove", "path": p}, pointers),
    st.builds(
        lambda o, f, p: {"op": o, "from": f, "path": p},
        st.sampled_from(["move", "copy"]),
        pointers,
        pointers,
    ),
)
patches = st.lists(patch_items, min_size=1, max_size=3)

state_ops = st.one_of(
    st.builds(lambda p, v: {"op": "set", "path": p, "value": v}, pointers, json_values),
    st.builds(lambda v: {"op": "set", "path": "", "value": v}, objects),
    st.builds(lambda v: {"op": "merge", "value": v}, objects),
    st.builds(lambda p, v: {"op": "merge", "path": p, "value": v}, pointers, objects),
    st.builds(lambda ps: {"op": "patch", "patch": ps}, patches),
    st.builds(lambda p, ps: {"op": "patch", "path": p, "patch": ps}, pointers, patches),
    # structurally invalid ops, which a fold must skip and report
    st.builds(lambda p: {"op": "set", "path": p, "value": 1}, bad_pointers),
    st.just({"op": "merge", "value": [1]}),
    st.just({"op": "unknown", "path": "/a"}),
    st.just({"op": "patch", "patch": [{"op": "add", "path": "/a"}]}),
)


def snapshot(doc):
    # A deep, order-independent fingerprint for "nothing changed".
    return json.dumps(doc, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(state_ops, max_size=12), st.data())
def test_keyframe_property(ops, data):
    refs = list(enumerate(ops))
    k = data.draw(st.integers(0, len(refs)), label="split")
    whole = fold(refs)
    first = fold(refs[:k])
    keyframe = snapshot(first.doc)
    rest = fold(refs[k:], doc=first.doc)
    assert rest.doc == whole.doc
    assert first.errors + rest.errors == whole.errors
    # the keyframe must not have been modified by folding the rest
    assert snapshot(first.doc) == keyframe


@settings(max_examples=300, deadline=None)
@given(objects, patches)
def test_patch_matches_jsonpatch_deepcopy_semantics(doc, patch):
    # The copy-on-write application must behave exactly like the library's
    # own (slow, deep-copying) application, and never touch the input.
    before = snapshot(doc)
    try:
        expected = jsonpatch.apply_patch(doc, patch)
    except (jsonpatch.JsonPatchException, JsonPointerException):
        expected = StateOpError
    try:
        actual = apply_op(doc, patch_op(patch))
    except StateOpError:
        actual = StateOpError
    if expected is not StateOpError and not isinstance(expected, dict):
        expected = StateOpError  # the state document must stay an object
    assert actual == expected
    assert snapshot(doc) == before
