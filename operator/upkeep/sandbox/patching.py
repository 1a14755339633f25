"""Patches as the Kubernetes API server applies them: JSON merge patch, JSON patch and strategic merge patch.

Pure functions over JSON-shaped values (dict, list, str, int, float, bool, None). They never change their
arguments: a result shares unchanged subtrees with the target, except that the result's top-level mapping and its
``metadata`` mapping are always new objects, so the caller may set metadata fields on the result in place.

The behaviour follows the Go code kube-apiserver runs, error messages included: gopkg.in/evanphx/json-patch.v4 for
merge patch and JSON patch, k8s.io/apimachinery/pkg/util/strategicpatch for strategic merge patch.

Error hierarchy::

    PatchError             the patch cannot be applied; carries the Status the API server answers with
     └── PatchTestFailed   a JSON patch ``test`` operation did not hold

How kube-apiserver answers (k8s.io/apiserver/pkg/endpoints/handlers/patch.go), which ``PatchError.code``,
``.reason`` and ``.message`` reproduce:

- merge patch: a body that is null, a string, a number or a boolean is 400 BadRequest "Invalid JSON Patch"; an
  array replaces the whole document, which then fails to decode: 422.
- JSON patch: a body that is not a list of objects is 400 BadRequest with the decoder's message; more than 10,000
  operations is 413; any failing operation, ``test`` included, is 422 Invalid whose Status message is the fixed
  text "the server rejected our request due to an error in our request" (the library's message is not sent, it is
  kept in ``PatchError.detail``). A null body is no operation at all.
- strategic merge patch: a body that is not an object is 400 BadRequest; malformed ``$setElementOrder``,
  ``$deleteFromPrimitiveList`` or ``$retainKeys`` directives are 400; a list of lists is 422; every other library
  error (an item without its merge key, an unknown ``$patch`` value, list items of mixed types) is 500 with the
  library's message and an empty reason. A null body changes nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_JSON_PATCH_OPERATIONS",
    "ListSemantics",
    "PatchError",
    "PatchTestFailed",
    "Semantics",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver refuses JSON patches with more operations than this (413)."""


@dataclass(frozen=True)
class ListSemantics:
    """How the field at one path merges: the OpenAPI ``x-kubernetes-*`` extensions of its schema node.

    The first four fields are what every schema source gives; the others refine server-side apply
    (see ``upkeep.sandbox.fieldmanager``) and may stay at their defaults.
    """

    patch_strategy: str = ""
    """x-kubernetes-patch-strategy: "merge", "replace", "retainKeys" or "merge,retainKeys"; "" when absent."""
    merge_key: str = ""
    """x-kubernetes-patch-merge-key: the field that identifies list items for strategic merge patch."""
    list_type: str = ""
    """x-kubernetes-list-type: "atomic", "set" or "map"; "" when absent (then derived from patch_strategy)."""
    map_keys: tuple[str, ...] = ()
    """x-kubernetes-list-map-keys: the fields that identify the items of a list of type map."""
    map_type: str = ""
    """x-kubernetes-map-type of an object: "atomic" makes server-side apply own it as one field; else granular."""
    free_form: bool = False
    """Whether the object's keys are map entries (additionalProperties, preserve-unknown-fields), not properties."""
    key_defaults: tuple[tuple[str, Any], ...] = ()
    """Schema defaults of list-map key fields, (name, default) pairs; server-side apply keys items with them."""


Semantics = Callable[[tuple[str, ...]], ListSemantics]
"""The semantics of the field at a path of map keys (list indices left out): ("spec", "containers", "ports")."""


class PatchError(Exception):
    """A patch that cannot be applied, with the Status the API server answers with.

    ``detail`` is the underlying library's message; ``message`` is what goes into the Status (for 422 the API
    server sends a fixed text instead of the detail); ``reason`` is the Status reason ("" for 500 answers).
    """

    def __init__(self, detail: str, *, code: int, reason: str, message: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.reason = reason
        self.message = detail if message is None else message


class PatchTestFailed(PatchError):
    """A JSON patch ``test`` operation found a different value (422)."""


_UNPROCESSABLE_MESSAGE = "the server rejected our request due to an error in our request"


def _bad_request(detail: str) -> PatchError:
    return PatchError(detail, code=400, reason="BadRequest")


def _unprocessable(detail: str) -> PatchError:
    return PatchError(detail, code=422, reason="Invalid", message=_UNPROCESSABLE_MESSAGE)


def _invalid(detail: str) -> PatchError:
    return PatchError(detail, code=422, reason="Invalid")


def _internal(detail: str) -> PatchError:
    return PatchError(detail, code=500, reason="")


_MISSING: Any = object()


def _json_kind(value: Any) -> str:
    """The JSON type name Go's decoder uses in "cannot unmarshal X into ..." messages."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"


def _fresh_metadata(result: dict[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    metadata: Any = result.get("metadata")
    if metadata is target.get("metadata") and isinstance(metadata, dict):
        result["metadata"] = dict(metadata)
    return result


# --- JSON merge patch (RFC 7386, as evanphx/json-patch v4 implements it) ---------------------------------------


def merge_patch(target: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a JSON merge patch (``application/merge-patch+json``): objects merge, null deletes, the rest replaces.

    As the API server's library does, nulls are also dropped from objects nested in arrays of the patch, except
    where an array replaces an object. Raises PatchError for a patch that is not an object.
    """
    if not isinstance(patch, dict):
        if isinstance(patch, list):
            raise _invalid("a merge patch must be a JSON object, not an array")
        raise PatchError(
            f"Invalid JSON Patch: a merge patch must be a JSON object, not {_json_kind(patch)}",
            code=400,
            reason="BadRequest",
            message="Invalid JSON Patch",
        )
    return _fresh_metadata(_merge_objects(target, patch), target)


def _merge_objects(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
            continue
        current = out.get(key)
        if not isinstance(current, dict):  # absent, null or not an object: the patch value replaces it
            out[key] = _prune_nulls(value)
        elif not isinstance(value, dict):
            out[key] = value
        else:
            out[key] = _merge_objects(current, value)
    return out


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _prune_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [None if item is None else _prune_nulls(item) for item in value]
    return value


# --- JSON patch (RFC 6902, as evanphx/json-patch v4 implements it) ---------------------------------------------


class _OpError(Exception):
    """A failure inside one operation, worded as the Go library words it."""


_ATOI = re.compile(r"[+-]?[0-9]+\Z")
_INT64_MAX = 2**63 - 1


def _atoi(text: str) -> int:
    if not _ATOI.match(text):
        raise _OpError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    number = int(text)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise _OpError(f'strconv.Atoi: parsing "{text}": value out of range')
    return number


def _unescape(token: str) -> str:
    # Replacing "~1" first cannot create a new "~0", so this is the single left-to-right pass RFC 6901 asks for.
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


def _invalid_index(index: int) -> _OpError:
    return _OpError(f"Unable to access invalid index: {index}: invalid index referenced")


class _Document:
    """A JSON patch target that copies each container before its first change, leaving the caller's intact."""

    def __init__(self, root: Any) -> None:
        self._owned: dict[int, Any] = {}
        self.root = self.own(root)

    def own(self, container: Any) -> Any:
        if id(container) in self._owned:
            return container
        copy = dict(container) if isinstance(container, dict) else list(container)
        self._owned[id(copy)] = copy  # keeping the copy alive keeps its id from being reused
        return copy

    def find(self, path: str) -> tuple[Any, str]:
        """The container holding the last token of ``path`` (owned, so it can be changed) and that token."""
        tokens = path.split("/")
        if len(tokens) < 2:
            return None, ""
        doc = self.root
        for token in tokens[1:-1]:
            key = _unescape(token)
            if isinstance(doc, dict):
                child = doc.get(key)
                slot: Any = key
            else:
                try:
                    index = _atoi(key)
                except _OpError:
                    return None, ""
                if index < 0:
                    if index < -len(doc):
                        return None, ""
                    index += len(doc)
                if index >= len(doc):
                    return None, ""
                child = doc[index]
                slot = index
            if not isinstance(child, dict | list):
                return None, ""
            owned = self.own(child)
            if owned is not child:
                doc[slot] = owned
            doc = owned
        return doc, _unescape(tokens[-1])


def _container_get(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    index = _atoi(key)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    if index >= len(container):
        raise _invalid_index(index)
    return container[index]


def _container_add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    try:
        index = _atoi(key)
    except _OpError as error:
        raise _OpError(f"value was not a proper array index: '{key}': {error}") from None
    size = len(container) + 1
    if index >= size:
        raise _invalid_index(index)
    if index < 0:
        if index < -size:
            raise _invalid_index(index)
        index += size
    container.insert(index, value)


def _container_set(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    index = _atoi(key)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    container[index] = value


def _container_remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise _OpError(f"Unable to remove nonexistent key: {key}: missing value")
        del container[key]
        return
    index = _atoi(key)
    if index >= len(container):
        raise _invalid_index(index)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    del container[index]


def _json_equal(left: Any, right: Any) -> bool:
    """Equality of two JSON values as the Go library sees it: 1 and 1.0 differ, and true is not 1."""
    if isinstance(left, dict):
        if not isinstance(right, dict) or len(left) != len(right):
            return False
        return all(key in right and _json_equal(value, right[key]) for key, value in left.items())
    if isinstance(left, list):
        if not isinstance(right, list) or len(left) != len(right):
            return False
        return all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and bool(left == right)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def _op_field(operation: Mapping[str, Any], name: str, missing: str) -> str:
    value = operation.get(name)
    if value is None:
        raise _OpError(missing)
    if not isinstance(value, str):
        raise _OpError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type string")
    return value


def _op_path(operation: Mapping[str, Any]) -> str:
    return _op_field(operation, "path", "operation missing path field: missing value")


def _op_from(operation: Mapping[str, Any]) -> str:
    return _op_field(operation, "from", "operation, missing from field: missing value")


def json_patch(target: Mapping[str, Any], operations: Any) -> dict[str, Any]:
    """Apply a JSON patch (``application/json-patch+json``): add, remove, replace, move, copy and test.

    Paths are JSON pointers (``~1`` for "/", ``~0`` for "~"; "-" appends to an array; negative indices count from
    the end, as the Go library allows). Raises PatchTestFailed when a ``test`` does not hold and PatchError for
    any other failure (see the module docstring for the status codes).
    """
    if operations is None:
        return _fresh_metadata(dict(target), target)
    if not isinstance(operations, list):
        raise _bad_request(f"json: cannot unmarshal {_json_kind(operations)} into Go value of type jsonpatch.Patch")
    for operation in operations:
        if operation is not None and not isinstance(operation, dict):
            raise _bad_request(
                f"json: cannot unmarshal {_json_kind(operation)} into Go value of type jsonpatch.Operation"
            )
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        detail = f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}"
        raise PatchError(
            detail, code=413, reason="RequestEntityTooLarge", message=f"Request entity too large: {detail}"
        )
    document = _Document(target)
    for operation in operations:
        _apply_operation(document, operation or {})
    result = document.root
    if not isinstance(result, dict):
        raise _invalid("the patched document is not a JSON object")
    return _fresh_metadata(result, target)


def _apply_operation(document: _Document, operation: Mapping[str, Any]) -> None:
    kind = operation.get("op")
    if not isinstance(kind, str):
        kind = "unknown"
    handler = _OPERATIONS.get(kind)
    if handler is None:
        raise _unprocessable(f"Unexpected kind: {kind}")
    try:
        handler(document, operation)
    except _TestFailed as failure:
        raise PatchTestFailed(str(failure), code=422, reason="Invalid", message=_UNPROCESSABLE_MESSAGE) from None
    except _OpError as error:
        raise _unprocessable(str(error)) from None


class _TestFailed(Exception):
    pass


def _op_add(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        path = _op_path(operation)
    except _OpError:
        raise _OpError("add operation failed to decode path: missing value") from None
    container, key = document.find(path)
    if container is None:
        raise _OpError(f'add operation does not apply: doc is missing path: "{path}": missing value')
    try:
        _container_add(container, key, operation.get("value"))
    except _OpError as error:
        raise _OpError(f"error in add for path: '{path}': {error}") from None


def _op_remove(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        path = _op_path(operation)
    except _OpError:
        raise _OpError("remove operation failed to decode path: missing value") from None
    container, key = document.find(path)
    if container is None:
        raise _OpError(f'remove operation does not apply: doc is missing path: "{path}": missing value')
    try:
        _container_remove(container, key)
    except _OpError as error:
        raise _OpError(f"error in remove for path: '{path}': {error}") from None


def _op_replace(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        path = _op_path(operation)
    except _OpError as error:
        raise _OpError(f"replace operation failed to decode path: {error}") from None
    if path == "":
        value = operation.get("value")
        if not isinstance(value, dict | list):
            raise _OpError("replace operation value must be object or array: %!w(<nil>)")
        document.root = document.own(value)
        return
    container, key = document.find(path)
    if container is None:
        raise _OpError(f"replace operation does not apply: doc is missing path: {path}: missing value")
    try:
        _container_get(container, key)
    except _OpError:
        raise _OpError(f"replace operation does not apply: doc is missing key: {path}: missing value") from None
    try:
        _container_set(container, key, operation.get("value"))
    except _OpError as error:
        raise _OpError(f"error in remove for path: '{path}': {error}") from None


def _op_move(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        source = _op_from(operation)
    except _OpError as error:
        raise _OpError(f"move operation failed to decode from: {error}") from None
    container, key = document.find(source)
    if container is None:
        raise _OpError(f"move operation does not apply: doc is missing from path: {source}: missing value")
    try:
        value = _container_get(container, key)
        _container_remove(container, key)
    except _OpError as error:
        raise _OpError(f"error in move for path: '{key}': {error}") from None
    try:
        path = _op_path(operation)
    except _OpError as error:
        raise _OpError(f"move operation failed to decode path: {error}") from None
    container, key = document.find(path)
    if container is None:
        raise _OpError(f"move operation does not apply: doc is missing destination path: {path}: missing value")
    try:
        _container_add(container, key, value)
    except _OpError as error:
        raise _OpError(f"error in move for path: '{path}': {error}") from None


def _op_test(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        path = _op_path(operation)
    except _OpError as error:
        raise _OpError(f"test operation failed to decode path: {error}") from None
    if path == "":
        if "value" in operation and _json_equal(document.root, operation["value"]):
            return
        raise _TestFailed(f"testing value {path} failed: test failed")
    container, key = document.find(path)
    if container is None:
        raise _OpError(f"test operation does not apply: is missing path: {path}: missing value")
    try:
        value = _container_get(container, key)
    except _OpError as error:
        raise _OpError(f"error in test for path: '{path}': {error}") from None
    expected = operation.get("value")
    if value is None:
        if expected is None:
            return
        raise _TestFailed(f"testing value {path} failed: test failed")
    if "value" not in operation or not _json_equal(value, expected):
        raise _TestFailed(f"testing value {path} failed: test failed")


def _op_copy(document: _Document, operation: Mapping[str, Any]) -> None:
    try:
        source = _op_from(operation)
    except _OpError as error:
        raise _OpError(f"copy operation failed to decode from: {error}") from None
    container, key = document.find(source)
    if container is None:
        raise _OpError(f"copy operation does not apply: doc is missing from path: {source}: missing value")
    try:
        value = _container_get(container, key)
    except _OpError as error:
        raise _OpError(f"error in copy for from: '{source}': {error}") from None
    try:
        path = _op_path(operation)
    except _OpError:
        raise _OpError("copy operation failed to decode path: missing value") from None
    container, key = document.find(path)
    if container is None:
        raise _OpError(f"copy operation does not apply: doc is missing destination path: {path}: missing value")
    try:
        _container_add(container, key, _deep_copy(value))
    except _OpError as error:
        raise _OpError(f"error while adding value during copy: {error}") from None


_OPERATIONS: dict[str, Callable[[_Document, Mapping[str, Any]], None]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "test": _op_test,
    "copy": _op_copy,
}


# --- strategic merge patch (k8s.io/apimachinery/pkg/util/strategicpatch) ----------------------------------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

_ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_ERR_LIST_OF_LISTS = "lists of lists are not supported"

_MAP_TYPE = "map[string]interface {}"
_SLICE_TYPE = "[]interface {}"


def strategic_merge_patch(target: Mapping[str, Any], patch: Any, semantics: Semantics) -> dict[str, Any]:
    """Apply a strategic merge patch (``application/strategic-merge-patch+json``) to a built-in object.

    Objects merge recursively and null deletes. Lists whose ``patch_strategy`` includes "merge" merge: items that
    are objects by their ``merge_key`` (containers by name, ports by containerPort, conditions by type, ...),
    primitives as sets keeping order (finalizers); other lists are replaced. Directives: ``$patch`` (replace or
    delete; merge is refused as the API server refuses it), ``$retainKeys``, ``$setElementOrder/<field>``,
    ``$deleteFromPrimitiveList/<field>``. ``semantics`` answers for a path of map keys (list indices left out).

    As the Go library does, nulls and directives inside patch content that replaces or is appended verbatim are
    kept; decoding into the typed object drops them on a real server. Raises PatchError.
    """
    if patch is None:
        return _fresh_metadata(dict(target), target)
    if not isinstance(patch, dict):
        raise _bad_request(f"json: cannot unmarshal {_json_kind(patch)} into Go value of type {_MAP_TYPE}")
    lookup = _cached(semantics)
    try:
        result = _smp_map(target, patch, (), lookup)
    except RecursionError:
        raise _bad_request("the patch is nested too deeply") from None
    return _fresh_metadata(result, target)


def _cached(semantics: Semantics) -> Semantics:
    cache: dict[tuple[str, ...], ListSemantics] = {}

    def lookup(path: tuple[str, ...]) -> ListSemantics:
        found = cache.get(path)
        if found is None:
            found = cache[path] = semantics(path)
        return found

    return lookup


def _strategy(semantics: ListSemantics) -> str:
    """The patch strategy other than retainKeys ("merge", "replace" or "")."""
    others = [part for part in semantics.patch_strategy.split(",") if part and part != "retainKeys"]
    return others[0] if others else ""


def _go_type(value: Any) -> str:
    """The Go type a JSON value decodes to in the library, as reflect prints it."""
    if isinstance(value, dict):
        return _MAP_TYPE
    if isinstance(value, list):
        return _SLICE_TYPE
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "%!s(<nil>)"


def _bad_arg_type(expected: str, actual: Any) -> PatchError:
    return _internal(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(item: Mapping[str, Any], merge_key: str) -> PatchError:
    return _internal(f"map: {_go_format(item)} does not contain declared merge key: {merge_key}")


def _go_format(value: Any) -> str:
    """A JSON value as Go's fmt %v prints the decoded value (maps with sorted keys, strings unquoted)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{_go_format(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(item) for item in value) + "]"
    if isinstance(value, float):
        return _go_float_g(value)
    return str(value)


def _go_float_g(number: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form below 1e-4 and from 1e6 ("1e+06")."""
    if math.isinf(number) or math.isnan(number):
        return "+Inf" if number > 0 else "-Inf" if number < 0 else "NaN"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point from the left of the digits
    leading = point - 1
    prefix = "-" if sign else ""
    if leading < -4 or leading >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if leading < 0 else '+'}{abs(leading):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _scalar_key(value: Any) -> tuple[str, Any]:
    """A hashable identity for a list item compared with Go's interface equality (1 and 1.0 differ)."""
    return (type(value).__name__, value)


def _discard_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _discard_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_discard_nulls(item) for item in value]
    return value


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """The value without directive maps, and whether the value itself is kept (it is not if it is a directive)."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        out = {}
        for key, item in value.items():
            cleaned, keep = _remove_directives(item)
            if keep:
                out[key] = cleaned
        return out, True
    if isinstance(value, list):
        items = []
        for item in value:
            cleaned, keep = _remove_directives(item)
            if keep:
                items.append(cleaned)
        return items, True
    return value, True


def _extract_key(key: str, prefix: str) -> str:
    head, _, rest = key.partition("/")
    if not _ or head != prefix:
        raise _bad_request(_ERR_PRIMITIVE_LIST if prefix == _DELETE_FROM_PRIMITIVE_LIST else _ERR_SET_ELEMENT_ORDER)
    return rest


def _smp_map(
    original: Mapping[str, Any] | None, patch: Mapping[str, Any], path: tuple[str, ...], semantics: Semantics
) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            return {key: value for key, value in patch.items() if key != _DIRECTIVE}
        if directive == "delete":
            return {}
        raise _internal(f"unknown patch type: {_go_format(directive)} in map: {_go_format(patch)}")
    out: dict[str, Any] = dict(original) if original is not None else {}
    pending = dict(patch)
    _apply_retain_keys(out, pending)
    _apply_set_element_order(out, pending, path, semantics)
    for raw_key, value in pending.items():
        key = raw_key
        delete_list = False
        if raw_key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            key = _extract_key(raw_key, _DELETE_FROM_PRIMITIVE_LIST)
            delete_list = True
        if value is None:
            out.pop(key, None)
            continue
        if key not in out:
            if not delete_list:
                cleaned, keep = _remove_directives(_discard_nulls(value))
                if keep:
                    out[key] = cleaned
            continue
        current = out[key]
        if _go_type(current) != _go_type(value):
            if not delete_list:
                cleaned, keep = _remove_directives(_discard_nulls(value))
                if keep:
                    out[key] = cleaned
                else:
                    del out[key]
            continue
        child = (*path, key)
        if isinstance(current, dict):
            if _strategy(semantics(child)) == "replace":
                out[key] = value
            else:
                out[key] = _smp_map(current, value, child, semantics)
        elif isinstance(current, list):
            field = semantics(child)
            if _strategy(field) == "merge" or delete_list:
                out[key] = _smp_list(current, value, child, field.merge_key, semantics, delete_list=delete_list)
            else:
                out[key] = value
        else:
            cleaned, keep = _remove_directives(value)
            if keep:
                out[key] = cleaned
            else:
                del out[key]
    return out


def _apply_retain_keys(out: dict[str, Any], pending: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in pending:
        return
    retain = pending.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _bad_request(_ERR_RETAIN_KEYS)
    try:
        kept = {_scalar_key(item) for item in retain}
    except TypeError:
        raise _internal("runtime error: hash of unhashable type in $retainKeys") from None
    for key, value in pending.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if ("str", key) not in kept:
            raise _bad_request(_ERR_RETAIN_KEYS)
    for key in [key for key in out if ("str", key) not in kept]:
        del out[key]


def _apply_set_element_order(
    out: dict[str, Any], pending: dict[str, Any], path: tuple[str, ...], semantics: Semantics
) -> None:
    for directive_key in [key for key in pending if key.startswith(_SET_ELEMENT_ORDER)]:
        order = pending.pop(directive_key)
        if not isinstance(order, list):
            raise _bad_arg_type(_SLICE_TYPE, order)
        key = _extract_key(directive_key, _SET_ELEMENT_ORDER)
        found_original = key in out
        found_patch = key in pending
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(out[key], list):
                raise _bad_arg_type(_SLICE_TYPE, out[key])
            original_list = out[key]
        if found_patch:
            if not isinstance(pending[key], list):
                raise _bad_arg_type(_SLICE_TYPE, pending[key])
            patch_list = pending[key]
        field = semantics((*path, key))
        merge_key = field.merge_key
        _validate_patch_with_set_order(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _remove_directives(patch_list)[0]
        elif found_original and found_patch:
            if _strategy(field) == "merge":
                merged = _smp_list(original_list, patch_list, (*path, key), merge_key, semantics, delete_list=False)
            else:
                merged = patch_list
        else:
            continue
        server_order = original_list
        if found_original and found_patch and _strategy(field) == "merge" and merge_key:
            server_order = _aliased_original(original_list, patch_list, merge_key)
        if merge_key:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        else:
            patch_items, server_only = _partition_primitives(merged, order)
        kind = _slice_element_type(server_order, patch_list)
        out[key] = _normalize_element_order(patch_items, server_only, order, server_order, merge_key, kind)
        pending.pop(key, None)


def _aliased_original(original: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    """The original list as Go sees it after merging: the library deletes and appends in its backing array.

    ``$setElementOrder`` then orders server-only items by this view, not by the list as it was; kubectl's
    client-side apply sends exactly such patches (an order, a deleted item and an added one).
    """
    backing = list(original)
    length = len(backing)
    replace = False
    for item in patch:
        directive = item.get(_DIRECTIVE, _MISSING) if isinstance(item, dict) else _MISSING
        if directive == "delete":
            while (index := _find_by_key(backing[:length], merge_key, item.get(merge_key))) >= 0:
                backing[index : length - 1] = backing[index + 1 : length]
                length -= 1
        elif directive == "replace":
            replace = True
    if replace:
        return backing
    for item in patch:
        if not isinstance(item, dict) or _DIRECTIVE in item:
            continue
        if _find_by_key(backing[:length], merge_key, item.get(merge_key)) >= 0:
            continue
        if length == len(backing):
            break  # append outgrows the array: Go copies to a new one and the original stays as it is
        backing[length] = item
        length += 1
    return backing


def _merge_key_value_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _go_equal(left, right)
    if not isinstance(left, dict):
        raise _bad_arg_type(_MAP_TYPE, left)
    if not isinstance(right, dict):
        raise _bad_arg_type(_MAP_TYPE, right)
    if merge_key not in left:
        raise _no_merge_key(left, merge_key)
    if merge_key not in right:
        raise _no_merge_key(right, merge_key)
    return _go_equal(left[merge_key], right[merge_key])


def _hashable(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _validate_patch_with_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if not order or not patch_list:
        return
    items = _extract_to_delete_items(patch_list)[0] if merge_key else patch_list
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        if isinstance(items[patch_index], dict) and _DIRECTIVE in items[patch_index]:
            patch_index += 1
            continue
        if _merge_key_value_equal(items[patch_index], order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(items) and order_index >= len(order):
        raise _internal(
            f"The order in patch list:\n{_go_format(patch_list)}\n doesn't match {_SET_ELEMENT_ORDER} list:\n"
            f"{_go_format(order)}\n"
        )


def _slice_element_type(*lists: list[Any]) -> str:
    found: str | None = None
    for items in lists:
        for item in items:
            kind = _go_type(item)
            if found is None:
                if item is None:
                    raise _internal("runtime error: invalid memory address or nil pointer dereference")
                if kind == _SLICE_TYPE:
                    raise PatchError(_ERR_LIST_OF_LISTS, code=422, reason="Invalid", message=_UNPROCESSABLE_MESSAGE)
                found = kind
            elif kind != found:
                raise _internal(f"list element types are not identical: {_go_format(list(lists))}")
    if found is None:
        raise _internal("no elements in any of the given slices")
    return found


def _smp_list(
    original: list[Any],
    patch: list[Any],
    path: tuple[str, ...],
    merge_key: str,
    semantics: Semantics,
    *,
    delete_list: bool,
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _slice_element_type(original, patch)
    if kind != _MAP_TYPE:
        if delete_list:
            doomed = {_scalar_key(item) for item in patch}
            return [item for item in original if _scalar_key(item) not in doomed]
        merged = _dedupe_scalars([*original, *patch])
        patch_items, server_only = _partition_primitives(merged, patch)
        return _normalize_element_order(patch_items, server_only, patch, original, "", kind)
    if not merge_key:
        raise _internal("cannot merge lists without merge key for struct")
    original, plain = _merge_special_elements(original, patch, merge_key)
    merged = _merge_plain_elements(original, plain, merge_key, path, semantics)
    patch_items, server_only = _partition_maps(merged, plain, merge_key)
    return _normalize_element_order(patch_items, server_only, plain, original, merge_key, kind)


def _dedupe_scalars(items: list[Any]) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    out = []
    for item in items:
        identity = _scalar_key(item)
        if identity not in seen:
            seen.add(identity)
            out.append(item)
    return out


def _merge_special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    plain = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = _delete_matching(original, merge_key, item[merge_key])
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _internal("merging lists cannot yet be specified in the patch")
        else:
            raise _internal(f"unknown patch type: {_go_format(directive)} in map: {_go_format(item)}")
    if replace:
        return plain, []
    return original, plain


def _go_equal(left: Any, right: Any) -> bool:
    """Go's interface equality of two decoded JSON values: same dynamic type and equal."""
    return type(left) is type(right) and bool(left == right)


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _internal(f"value for key {index} is not a map")
        if merge_key in item and _go_equal(item[merge_key], value):
            return index
    return -1


def _delete_matching(original: list[Any], merge_key: str, value: Any) -> list[Any]:
    kept = list(original)
    while (index := _find_by_key(kept, merge_key, value)) >= 0:
        del kept[index]
    return kept


def _merge_plain_elements(
    original: list[Any], patch: list[Any], merge_key: str, path: tuple[str, ...], semantics: Semantics
) -> list[Any]:
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find_by_key(merged, merge_key, item[merge_key])
        if index >= 0:
            merged[index] = _smp_map(merged[index], item, path, semantics)
        else:
            merged.append(item)
    return merged


def _partition_primitives(items: list[Any], present: list[Any]) -> tuple[list[Any], list[Any]]:
    wanted = {_scalar_key(item) for item in present if _hashable(item)}
    in_patch = [item for item in items if _hashable(item) and _scalar_key(item) in wanted]
    server_only = [item for item in items if not (_hashable(item) and _scalar_key(item) in wanted)]
    return in_patch, server_only


def _partition_maps(items: list[Any], present: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    in_patch = []
    server_only = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_MAP_TYPE, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        if _find_by_key(present, merge_key, item[merge_key]) >= 0:
            in_patch.append(item)
        else:
            server_only.append(item)
    return in_patch, server_only


def _extract_to_delete_items(items: list[Any]) -> tuple[list[Any], list[Any]]:
    keep: list[Any] = []
    doomed: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad_arg_type(_MAP_TYPE, item)
        (doomed if item.get(_DIRECTIVE) == "delete" else keep).append(item)
    return keep, doomed


def _order_value(item: Any, merge_key: str, maps: bool) -> Any:
    if maps:
        return _scalar_key(item.get(merge_key)) if isinstance(item, dict) and _hashable(item.get(merge_key)) else None
    return _scalar_key(item) if _hashable(item) else None


def _index_of(order: list[Any], merge_key: str, maps: bool) -> dict[Any, int]:
    positions: dict[Any, int] = {}
    for index, item in enumerate(order):
        positions.setdefault(_order_value(item, merge_key, maps), index)
    return positions


def _validate_merge_key_in_lists(merge_key: str, *lists: list[Any]) -> None:
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                raise _bad_arg_type(_MAP_TYPE, item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)


def _normalize_slice_order(items: list[Any], order: list[Any], merge_key: str, maps: bool) -> list[Any]:
    doomed: list[Any] = []
    if maps:
        _validate_merge_key_in_lists(merge_key, items, order)
        items, doomed = _extract_to_delete_items(items)
    positions = _index_of(order, merge_key, maps)
    ordered = sorted(items, key=lambda item: positions.get(_order_value(item, merge_key, maps), -1))
    return ordered + doomed


def _normalize_element_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str,
) -> list[Any]:
    maps = kind == _MAP_TYPE
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, maps)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, maps)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, maps)


def _merge_sorted(left: list[Any], right: list[Any], server_order: list[Any], merge_key: str, maps: bool) -> list[Any]:
    """Interleave server-only items (left) into patch items (right), each keeping its relative order."""
    positions = _index_of(server_order, merge_key, maps)
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            left_at = positions.get(_order_value(left[i], merge_key, maps), -1)
            right_at = positions.get(_order_value(right[j], merge_key, maps), -1)
            if left_at >= 0 and right_at >= 0 and left_at < right_at:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
