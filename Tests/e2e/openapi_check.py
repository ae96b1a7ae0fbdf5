"""Validate real HTTP responses (and request bodies) against openapi.yaml."""
import re
import urllib.parse

import yaml
from openapi_schema_validator import OAS31Validator

import harness

SPEC_PATH = harness.ROOT / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
OBSERVED: set[tuple[str, str, str]] = set()
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _template_regex(template):
    # a path parameter of meshauthz may contain "/" (the rest of the target)
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", ".+", re.escape(template)) + "$")


_TEMPLATES = sorted(((t, _template_regex(t)) for t in SPEC["paths"]), key=lambda x: ("{" in x[0], x[0]))


def documented():
    out = set()
    for t, item in SPEC["paths"].items():
        for m in METHODS:
            if m in item:
                for code in item[m]["responses"]:
                    out.add((t, m, str(code)))
    return out


def resolve(obj):
    while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
        node = SPEC
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def validator(schema):
    root = dict(schema)
    root["components"] = SPEC["components"]
    return OAS31Validator(root)


def schema_errors(instance, schema):
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(schema).iter_errors(instance)]


def component(name):
    return {"$ref": f"#/components/schemas/{name}"}


def template_for(path):
    p = urllib.parse.urlsplit(path).path
    for t, rx in _TEMPLATES:
        if rx.match(p):
            return t
    return None


def check_response(method, path, resp):
    """Return a list of problems (empty if the response is exactly as documented)."""
    method = method.lower()
    t = template_for(path)
    if t is None:
        return [f"{path} is not documented in openapi.yaml"]
    op = SPEC["paths"][t].get(method)
    if op is None:
        return [f"{method.upper()} {t} is not documented"]
    code = str(resp.status_code)
    r = op["responses"].get(code)
    if r is None:
        return [f"{method.upper()} {t} -> {code} is not documented (documented: {sorted(op['responses'])})"]
    OBSERVED.add((t, method, code))
    r = resolve(r)
    problems = []
    for name, h in (r.get("headers") or {}).items():
        h = resolve(h)
        if h.get("required") and name not in resp.headers:
            problems.append(f"header {name} is required but missing")
        elif name in resp.headers and h.get("schema"):
            problems += [f"header {name}: {e}" for e in schema_errors(resp.headers[name], h["schema"])]
    content = r.get("content")
    if content and method != "head":
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype not in content:
            problems.append(f"Content-Type {ctype!r} not in {sorted(content)}")
        else:
            schema = content[ctype].get("schema")
            if schema is not None:
                if ctype == "application/json":
                    try:
                        body = resp.json()
                    except ValueError as e:
                        return problems + [f"body is not JSON: {e}: {resp.text[:200]!r}"]
                else:
                    body = resp.text
                problems += schema_errors(body, schema)
    elif not content and resp.content and method != "head":
        problems.append(f"undocumented body: {resp.text[:200]!r}")
    return [f"{method.upper()} {path} -> {code}: {p}" for p in problems]
