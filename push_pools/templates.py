"""Base job templates: validation, job-variable merging and rendering.

A work pool's base job template has Prefect's shape, so users can bring their Prefect
templates unchanged::

    {"job_configuration": {... "{{ placeholder }}" strings ...},
     "variables": {JSON schema with "properties" (and defaults), maybe "definitions"}}

jsonschema is imported inside the functions that need it: the CLI imports this module and
`push-pools --help` must stay fast.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from push_pools.errors import InvalidInput

if TYPE_CHECKING:
    from jsonschema import ValidationError

__all__ = [
    "block_type_of",
    "check_credential_slots",
    "default_values",
    "merge_job_variables",
    "missing_required",
    "placeholders",
    "render_job_configuration",
    "validate_base_job_template",
    "validate_job_variables",
]

# Same character set Prefect accepts inside {{ }}, so dotted names such as
# "prefect.variables.x" are seen (and reported as undeclared) rather than silently left as text.
_NAME = r"[\w.\-\[\]$]+"
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*\}\}")
_WHOLE_PLACEHOLDER = re.compile(r"\s*\{\{\s*(" + _NAME + r")\s*\}\}\s*")

# Keywords whose values are data, not subschemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples", "example"})

# Root keywords that constrain the set of keys. Job variables are validated one override at a
# time, so these are either handled here (unknown keys, missing_required) or do not apply.
_OBJECT_LEVEL_KEYWORDS = (
    "required",
    "additionalProperties",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "minProperties",
    "maxProperties",
    "propertyNames",
)

_JSON_TYPES = "array, boolean, integer, null, number, object, string"


def placeholders(obj: Any) -> set[str]:
    """Names used as ``{{ name }}`` in any string inside ``obj`` (dict keys are not rendered)."""
    found: set[str] = set()
    for text in _strings(obj):
        found.update(_PLACEHOLDER.findall(text))
    return found


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _strings(item)


# --------------------------------------------------------------------------- template validation


def validate_base_job_template(template: Any) -> dict[str, Any]:
    """Return ``template`` if it is a usable base job template; else raise InvalidInput."""
    if not isinstance(template, dict):
        raise InvalidInput(
            f"a base job template must be a JSON object with 'job_configuration' and 'variables' "
            f"keys, got {_kind(template)}"
        )
    job_configuration = template.get("job_configuration")
    if not isinstance(job_configuration, dict):
        raise InvalidInput(
            "the base job template needs a 'job_configuration' object (the infrastructure "
            "settings, with {{ placeholders }} for job variables), got "
            + ("nothing" if "job_configuration" not in template else _kind(job_configuration))
        )
    variables = template.get("variables")
    if not isinstance(variables, dict):
        raise InvalidInput(
            "the base job template needs a 'variables' object (a JSON schema whose "
            "'properties' declare the job variables), got "
            + ("nothing" if "variables" not in template else _kind(variables))
        )

    _check_schema(variables)
    properties = variables.get("properties", {})

    undeclared = sorted(placeholders(job_configuration) - set(properties))
    if undeclared:
        names = ", ".join(f"'{name}'" for name in undeclared)
        message = (
            f"job_configuration uses placeholder(s) {names} that are not declared; declare each "
            "under variables.properties (with a 'type' and, if it should have one, a 'default')"
        )
        if any(name.startswith("prefect.") for name in undeclared):
            message += (
                "; push-pools does not resolve Prefect's {{ prefect.* }} references, so declare "
                "a job variable instead and set it on the work pool or deployment"
            )
        raise InvalidInput(message)

    errors = _variable_errors(template, default_values(template), label="default of job variable")
    if errors:
        raise InvalidInput("; ".join(errors) + "; fix or remove these defaults in the template")
    return template


def _check_schema(variables: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(variables)
    except SchemaError as error:
        where = _schema_location(error.path)
        if error.path and error.path[-1] == "type":
            detail = f"{_fmt(error.instance)} is not a JSON Schema type; use one of {_JSON_TYPES}"
        else:
            detail = error.message
        raise InvalidInput(
            f"'variables' is not a valid JSON schema (draft 2020-12) at {where}: {detail}"
        ) from None
    _check_refs(variables)


def _schema_location(path: Any) -> str:
    parts = ["variables", *(str(part) for part in path)]
    return "'" + ".".join(parts) + "'"


def _check_refs(variables: dict[str, Any]) -> None:
    """Fail now on references that would only blow up later, in the middle of a flow run."""
    for location, ref in _refs(variables, ()):
        where = _schema_location(location)
        if not ref.startswith("#"):
            raise InvalidInput(
                f"'$ref': {ref!r} at {where} points outside the template; only local references "
                "such as '#/definitions/Name' are supported, so copy that schema into "
                "variables.definitions and refer to it there"
            )
        if _resolve_ref(variables, ref) is None:
            raise InvalidInput(
                f"'$ref': {ref!r} at {where} does not resolve; add the referenced schema to the "
                "template (usually under variables.definitions) or fix the reference"
            )


def _refs(node: Any, location: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield location, ref
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value, (*location, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, (*location, index))


def _resolve_ref(root: dict[str, Any], ref: str) -> Any | None:
    """Resolve a local reference ("#", "#/json/pointer" or "#anchor"); None if it does not."""
    fragment = unquote(ref[1:])
    if not fragment:
        return root
    if not fragment.startswith("/"):
        return _find_anchor(root, fragment)
    node: Any = root
    for raw in fragment[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _find_anchor(node: Any, anchor: str) -> Any | None:
    if isinstance(node, dict):
        if node.get("$anchor") == anchor:
            return node
        children: Any = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_anchor(child, anchor)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- job variables


def default_values(template: dict[str, Any]) -> dict[str, Any]:
    """``{name: default}`` for every declared job variable that has a default."""
    return {
        name: copy.deepcopy(schema["default"])
        for name, schema in _properties(template).items()
        if isinstance(schema, dict) and "default" in schema
    }


def merge_job_variables(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Merge layers of job variables, e.g. pool defaults <- deployment <- run.

    Later layers win key by key. "env" is merged variable by variable, so a run can add one
    environment variable without repeating the deployment's. None means "not set" (at the top
    level and inside "env"), because API clients and CLI flags send null for options the user
    did not give; it must not wipe out a value set lower down.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, dict):
            raise InvalidInput(
                f"job variables must be a JSON object mapping variable names to values, "
                f"got {_kind(layer)}"
            )
        for key, value in layer.items():
            if value is None:
                continue
            if key == "env" and isinstance(value, dict):
                base = merged.get("env")
                env = dict(base) if isinstance(base, dict) else {}
                env.update({k: copy.deepcopy(v) for k, v in value.items() if v is not None})
                merged["env"] = env
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def block_type_of(template: dict[str, Any], variable: str) -> str | None:
    """Slug of the credentials block type ``variable`` refers to, or None if it is plain data.

    Our templates say ``"block_type": "<slug>"``; Prefect's reference a definition carrying
    ``"block_type_slug"`` through ``$ref``, ``allOf`` or (offering a choice) ``anyOf``/``oneOf``.
    """
    schema = _properties(template).get(variable)
    if not isinstance(schema, dict):
        return None
    slug, _ = _block_info(_variables(template), schema)
    return slug


def _block_info(variables: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, list[Any]]:
    """(block slug or None, the non-block alternatives a value may take instead of a name)."""
    slug = schema.get("block_type")
    if isinstance(slug, str) and slug:
        return slug, []
    slug = _ref_block_slug(variables, schema)
    if slug:
        return slug, []
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(keyword)
        if not isinstance(branches, list):
            continue
        slugs = [_ref_block_slug(variables, b) if isinstance(b, dict) else None for b in branches]
        found = next((s for s in slugs if s), None)
        if found:
            # anyOf/oneOf may offer a plain object as another choice (e.g. Azure's
            # image_registry: registry credentials block OR a managed identity object).
            others = (
                []
                if keyword == "allOf"
                else [branch for branch, s in zip(branches, slugs, strict=True) if not s]
            )
            return found, others
    return None, []


def _ref_block_slug(variables: dict[str, Any], schema: dict[str, Any]) -> str | None:
    slug = schema.get("block_type")
    if isinstance(slug, str) and slug:
        return slug
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    target = _resolve_ref(variables, ref)
    if isinstance(target, dict):
        slug = target.get("block_type_slug") or target.get("block_type")
        if isinstance(slug, str) and slug:
            return slug
    return None


def validate_job_variables(template: dict[str, Any], values: dict[str, Any]) -> None:
    """Raise InvalidInput unless every value in ``values`` fits its declared schema.

    ``values`` may be a partial override (a deployment's or a run's), so "required" is not
    enforced here; use missing_required() on the fully merged values before running.
    """
    if not isinstance(values, dict):
        raise InvalidInput(
            f"job variables must be a JSON object mapping variable names to values, "
            f"got {_kind(values)}"
        )
    errors = _variable_errors(template, values, label="job variable")
    if errors:
        raise InvalidInput("; ".join(errors))


def missing_required(template: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """Required job variables that neither ``values`` nor the template's defaults set."""
    required = _variables(template).get("required", [])
    if not isinstance(required, list):
        return []
    present = merge_job_variables(default_values(template), values)
    return [name for name in required if isinstance(name, str) and name not in present]


def _variable_errors(template: dict[str, Any], values: dict[str, Any], label: str) -> list[str]:
    from jsonschema import Draft202012Validator

    variables = _variables(template)
    properties = _properties(template)
    errors: list[str] = []
    instance: dict[str, Any] = {}
    schema_properties = dict(properties)

    for name, value in values.items():
        if value is None:
            continue  # None means "not set" (see merge_job_variables)
        if name == "env" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        if name not in properties:
            errors.append(_unknown_variable(name, properties))
            continue
        schema = properties[name]
        slug, alternatives = (
            _block_info(variables, schema) if isinstance(schema, dict) else (None, [])
        )
        if slug is None:
            instance[name] = value
        elif isinstance(value, str):
            # A block variable holds the name of a stored block, resolved at run time; the
            # block's own schema describes its contents, which the user does not pass here.
            if not value.strip():
                errors.append(
                    f"{label} '{name}': expected the name of a stored '{slug}' block, "
                    "got an empty string; give the block's name or leave the variable unset"
                )
        elif alternatives:
            schema_properties[name] = {"anyOf": alternatives}
            instance[name] = value
        else:
            errors.append(
                f"{label} '{name}': expected the name of a stored '{slug}' block, "
                f"got {_fmt(value)}; store the credentials as a block of type '{slug}' and "
                "pass the block's name"
            )

    root = {k: v for k, v in variables.items() if k not in _OBJECT_LEVEL_KEYWORDS}
    root["properties"] = schema_properties
    validator = Draft202012Validator(root)
    seen: set[str] = set()
    for error in validator.iter_errors(instance):
        path = _variable_path(error.absolute_path)
        # A constraint on the variables object as a whole has no single variable to name.
        subject = f"{label} '{path}'" if path else "job variables"
        message = f"{subject}: {_describe(error)}"
        if message not in seen:  # "required" yields one error per missing field
            seen.add(message)
            errors.append(message)
    return errors


def _unknown_variable(name: str, properties: dict[str, Any]) -> str:
    allowed = sorted(properties)
    message = f"unknown job variable '{name}'"
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    if allowed:
        return message + f"; this work pool's template allows: {', '.join(allowed)}"
    return message + "; this work pool's template declares no job variables"


def _variable_path(path: Any) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _describe(error: ValidationError) -> str:
    expected, got = _expected(error)
    return f"expected {expected}, got {got}" if got is not None else expected


def _expected(error: ValidationError) -> tuple[str, str | None]:
    """(what the schema wanted, what was given) for one jsonschema error."""
    keyword = error.validator
    want: Any = error.validator_value
    instance = error.instance
    got = _fmt(instance)
    if keyword == "type":
        types = want if isinstance(want, list) else [want]
        return " or ".join(str(t) for t in types), got
    if keyword == "enum":
        return "one of " + ", ".join(_fmt(option) for option in want), got
    if keyword == "const":
        return _fmt(want), got
    if keyword == "pattern":
        return f"a string matching the pattern {want!r}", got
    bounds = {
        "minimum": ">=",
        "exclusiveMinimum": ">",
        "maximum": "<=",
        "exclusiveMaximum": "<",
    }
    if keyword in bounds:
        return f"a number {bounds[keyword]} {want}", got
    if keyword == "multipleOf":
        return f"a multiple of {want}", got
    if keyword == "minLength":
        return f"at least {want} character(s)", got
    if keyword == "maxLength":
        return f"at most {want} character(s)", got
    if keyword == "minItems":
        return f"at least {want} item(s)", f"{len(instance)}"
    if keyword == "maxItems":
        return f"at most {want} item(s)", f"{len(instance)}"
    if keyword == "uniqueItems":
        return "items without duplicates", got
    if keyword == "required" and isinstance(instance, dict):
        missing = [field for field in want if field not in instance]
        return "the field(s) " + ", ".join(f"'{f}'" for f in missing) + " to be set", got
    if keyword == "additionalProperties" and isinstance(instance, dict):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        patterns = (
            error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
        )
        extra = [
            key
            for key in instance
            if key not in declared and not any(re.search(p, key) for p in patterns)
        ]
        allowed = ", ".join(f"'{key}'" for key in declared) or "no other fields"
        return (
            f"only the fields {allowed}",
            "unexpected field(s) " + ", ".join(f"'{key}'" for key in extra),
        )
    if keyword in ("anyOf", "oneOf") and error.context:
        # Summarise the alternatives ("expected boolean or string") instead of jsonschema's
        # "is not valid under any of the given schemas".
        options: list[str] = []
        for sub in error.context:
            if not sub.relative_path:
                option, _ = _expected(sub)
                if option not in options:
                    options.append(option)
        if options:
            return " or ".join(options), got
    return error.message, None


# --------------------------------------------------------------------------- credential slots


def check_credential_slots(
    template: dict[str, Any], slots: tuple[str, ...], pool_type: str
) -> None:
    """Refuse a template that would put a credentials block anywhere but a credential slot.

    A block placeholder is allowed only as the whole value of one of the pool type's slot
    fields (top-level keys of job_configuration): there the executor builds its cloud client
    from the block and passes nothing of it on. Anywhere else (env, command, a task definition)
    the decrypted secret would reach the infrastructure, its logs and whoever can describe it.
    """
    job_configuration = template.get("job_configuration") if isinstance(template, dict) else None
    if not isinstance(job_configuration, dict):
        return  # validate_base_job_template reports this
    for path, text in _strings_with_paths(job_configuration, ()):
        for name in dict.fromkeys(_PLACEHOLDER.findall(text)):
            slug = block_type_of(template, name)
            if slug is None:
                continue
            in_slot = len(path) == 1 and path[0] in slots
            if in_slot and _WHOLE_PLACEHOLDER.fullmatch(text):
                continue
            where = "job_configuration" + _variable_path_suffix(path)
            if slots:
                allowed = (
                    f"a '{pool_type}' pool takes credentials blocks only as the whole value of "
                    + ", ".join(f"job_configuration.{slot}" for slot in slots)
                )
            else:
                allowed = f"a '{pool_type}' pool takes no credentials blocks"
            raise InvalidInput(
                f"{where} uses '{{{{ {name} }}}}', a '{slug}' credentials block; {allowed}, "
                "so that its secrets never reach the job's environment, command or "
                f"infrastructure; remove the placeholder from {where}"
            )


def _strings_with_paths(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings_with_paths(value, (*path, key))
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _strings_with_paths(item, (*path, index))


def _variable_path_suffix(path: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


# --------------------------------------------------------------------------- rendering


def render_job_configuration(
    template: dict[str, Any],
    values: dict[str, Any],
    resolve_block: Callable[[str, str], dict[str, Any]] | None = None,
    credential_slots: tuple[str, ...] = (),
    pool_type: str = "",
) -> dict[str, Any]:
    """The template's job_configuration with every ``{{ placeholder }}`` filled in.

    A string that is exactly one placeholder takes the value itself (keeping ints, dicts,
    bools; None when unset). Placeholders inside longer text become ``str(value)`` ("" when
    unset). Defaults are applied underneath ``values``. When a resolver is given, the block
    variables filling ``credential_slots`` become ``resolve_block(slug, name)``; a template with
    a block anywhere else is refused (check_credential_slots), even one stored before that rule.
    The template is not modified.
    """
    job_configuration = template.get("job_configuration") if isinstance(template, dict) else None
    if not isinstance(job_configuration, dict):
        raise InvalidInput(
            "the base job template has no 'job_configuration' object; fix the work pool's "
            "template (see validate_base_job_template)"
        )
    merged = merge_job_variables(default_values(template), values)
    if resolve_block is not None:
        check_credential_slots(template, credential_slots, pool_type or "this")
        for slot in credential_slots:
            whole = _WHOLE_PLACEHOLDER.fullmatch(str(job_configuration.get(slot, "")))
            if whole is None:
                continue
            name = whole.group(1)
            slug = block_type_of(template, name)
            value = merged.get(name)
            if slug is None or not isinstance(value, str):
                continue
            # No block can be named "", so an empty name means "no credentials given".
            merged[name] = resolve_block(slug, value) if value.strip() else None
    rendered: dict[str, Any] = _render(job_configuration, merged)
    return rendered


def _render(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, str):
        whole = _WHOLE_PLACEHOLDER.fullmatch(node)
        if whole:
            # Copy so that one value used in two places (ECS uses env twice) is not shared.
            return copy.deepcopy(values.get(whole.group(1)))
        return _PLACEHOLDER.sub(lambda m: _as_text(values.get(m.group(1))), node)
    if isinstance(node, dict):
        return {key: _render(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, values) for item in node]
    return copy.deepcopy(node)


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- helpers


def _variables(template: dict[str, Any]) -> dict[str, Any]:
    variables = template.get("variables") if isinstance(template, dict) else None
    if not isinstance(variables, dict):
        raise InvalidInput(
            "the base job template has no 'variables' object; fix the work pool's template "
            "(see validate_base_job_template)"
        )
    return variables


def _properties(template: dict[str, Any]) -> dict[str, Any]:
    properties = _variables(template).get("properties", {})
    if not isinstance(properties, dict):
        raise InvalidInput(
            "the base job template's variables.properties must be an object mapping job "
            "variable names to JSON schemas"
        )
    return properties


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _fmt(value: Any, limit: int = 80) -> str:
    """Show a given value the way the user wrote it: 'text' for strings, JSON otherwise."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str, sort_keys=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
