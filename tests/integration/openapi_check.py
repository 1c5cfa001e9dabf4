"""Checks HTTP responses against docs/openapi.json, with the standard
library only.

Validates the JSON Schema subset the document uses: type (one or a list,
so "null" in a list means nullable), properties, required,
additionalProperties (true, false or a schema), items, enum, minimum,
oneOf and $ref to #/components/...; annotation keywords (description,
format, contentMediaType) are ignored.  A mismatch raises SchemaError
whose message names the offending field as a path ($.runs[0].status).

    import openapi_check
    openapi_check.check("GET", "/api/v1/runs/{id}", 200, body)
    openapi_check.check_path("GET", "/api/v1/runs/12", 200, body)
"""
import json
import os
import re

SPEC_PATH = os.path.join(os.environ.get("QANAT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", ".."),
                         "docs", "openapi.json")
_SPEC = None
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaError(AssertionError):
    pass


def spec():
    global _SPEC
    if _SPEC is None:
        with open(SPEC_PATH) as f:
            _SPEC = json.load(f)
    return _SPEC


def resolve(node):
    """Follows $ref (only local ones, #/...) until a plain node."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SchemaError("unsupported $ref %s" % ref)
        node = spec()
        for part in ref[2:].split("/"):
            node = node[part]
        seen += 1
        if seen > 32:
            raise SchemaError("$ref loop at %s" % ref)
    return node


def validate(value, schema, where="$"):
    """Raises SchemaError naming `where` (a JSON path) when value does not
    match schema."""
    schema = resolve(schema)
    if schema is True or schema == {}:
        return
    if schema is False:
        raise SchemaError("%s: not allowed here" % where)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_TYPES[t](value) for t in names):
            raise SchemaError("%s: expected %s, got %s %s" % (
                where, " or ".join(names), type(value).__name__, _short(value)))
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError("%s: %s is not one of %s" % (where, _short(value), schema["enum"]))
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        raise SchemaError("%s: %s is below the minimum %s" % (where, value, schema["minimum"]))
    if isinstance(value, dict):
        _validate_object(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], "%s[%d]" % (where, i))
    if "oneOf" in schema:
        matched = []
        errors = []
        for i, option in enumerate(schema["oneOf"]):
            try:
                validate(value, option, where)
                matched.append(i)
            except SchemaError as e:
                errors.append(str(e))
        if len(matched) != 1:
            raise SchemaError("%s: matches %d of the oneOf options (needs exactly one)%s" % (
                where, len(matched), ": " + "; ".join(errors) if errors else ""))


def _validate_object(value, schema, where):
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise SchemaError("%s: required field %r is missing (has %s)" % (where, name, sorted(value)))
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        path = "%s.%s" % (where, name)
        if name in props:
            validate(item, props[name], path)
        elif extra is False:
            raise SchemaError("%s: unexpected field" % path)
        elif extra is not True:
            validate(item, extra, path)


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def operation(method, path_template):
    paths = spec()["paths"]
    if path_template not in paths:
        raise SchemaError("%s is not in docs/openapi.json" % path_template)
    op = paths[path_template].get(method.lower())
    if op is None:
        raise SchemaError("%s %s is not in docs/openapi.json" % (method, path_template))
    return op


def response_schema(method, path_template, status):
    """The JSON schema of a documented response, or None when the
    response has no JSON body (204, 304, text, event streams)."""
    op = operation(method, path_template)
    response = op["responses"].get(str(status))
    if response is None:
        raise SchemaError("%s %s: status %s is not documented (documented: %s)" % (
            method, path_template, status, sorted(op["responses"])))
    content = resolve(response).get("content", {})
    media = content.get("application/json")
    return media["schema"] if media else None


def check(method, path_template, status, body):
    """Validates a decoded JSON body (or None for none) against the
    documented response of method path_template status."""
    schema = response_schema(method, path_template, status)
    if schema is None:
        if body not in (None, b"", ""):
            raise SchemaError("%s %s %s: documented without a JSON body, got %s" % (
                method, path_template, status, _short(body)))
        return
    try:
        validate(body, schema)
    except SchemaError as e:
        raise SchemaError("%s %s %s: %s" % (method, path_template, status, e)) from None


def check_request(method, path_template, body):
    """Validates a request body against the documented request schema."""
    op = operation(method, path_template)
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    validate(body, schema)


def template_of(method, path):
    """The documented path template a concrete path (query stripped)
    matches, literal segments preferred: /api/v1/runs/events before
    /api/v1/runs/{id}."""
    path = path.split("?", 1)[0]
    best = None
    for template, item in spec()["paths"].items():
        if method.lower() not in item:
            continue
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if template == "/ui/{path}" or template.endswith("/{path}"):
            pattern = "^" + re.escape(template[:-len("{path}")]) + ".+$"
        if re.match(pattern, path):
            score = template.count("{")
            if best is None or score < best[0]:
                best = (score, template)
    if best is None:
        raise SchemaError("%s %s matches no path of docs/openapi.json" % (method, path))
    return best[1]


def check_path(method, path, status, body):
    check(method, template_of(method, path), status, body)


def _self_test():
    """Each rule rejects what it should (python3 openapi_check.py)."""
    run = {"run_id": 1, "workflow": "w", "version": 1, "status": "running", "created": "2026-12-07T18:00:00.000000Z",
           "finished": None, "cancel_requested": False, "filename": "w.yaml", "owner": "admin", "no_cache": False,
           "duration_s": None, "params": {"n": 3}, "tasks": []}
    check("GET", "/api/v1/runs/{id}", 200, run)
    bad = [({**run, "status": "done"}, "$.status"),
           ({k: v for k, v in run.items() if k != "owner"}, "'owner'"),
           ({**run, "run_id": "1"}, "$.run_id"),
           ({**run, "tasks": [{"name": "a"}]}, "$.tasks[0]"),
           ({**run, "params": {"n": [1]}}, "$.params.n"),
           ({**run, "version": -1}, "minimum")]
    for body, needle in bad:
        try:
            check("GET", "/api/v1/runs/{id}", 200, body)
        except SchemaError as e:
            assert needle in str(e), (needle, str(e))
        else:
            raise AssertionError("accepted %s" % needle)
    check_request("POST", "/api/v1/runs", {"source": "x"})
    for body in ({}, {"source": "x", "workflow": "w"}, {"source": "x", "extra": 1}):
        try:
            check_request("POST", "/api/v1/runs", body)
        except SchemaError:
            continue
        raise AssertionError("request accepted: %s" % body)
    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node)               # raises KeyError when dangling
            for value in node.values():
                refs(value)
        elif isinstance(node, list):
            for value in node:
                refs(value)
    refs(spec())
    for template, item in spec()["paths"].items():
        for method, op in item.items():
            for status in op["responses"]:
                response_schema(method, template, status)
    assert template_of("GET", "/api/v1/runs/events") == "/api/v1/runs/events"
    assert template_of("GET", "/api/v1/runs/12?x=1") == "/api/v1/runs/{id}"
    assert template_of("GET", "/ui/runs/12/metrics") == "/ui/{path}"
    print("openapi_check: self test ok (%d paths)" % len(spec()["paths"]))


if __name__ == "__main__":
    _self_test()
