#!/usr/bin/env python3
"""validate-crd.py CRD.yaml MANIFEST.yaml: checks every document of MANIFEST whose apiVersion
and kind CRD.yaml defines against that version's openAPIV3Schema, as an API server with
strict field validation (`kubectl apply --validate=strict`) would.

Why a script: kubernetes-validate knows only the built-in kinds; a custom resource (JobSet) is
checked against its own published CRD. It runs in the venv that provision.sh makes for
kubernetes-validate, whose `jsonschema` (>= 4.23, a dependency of kubernetes-validate 1.37.0)
and PyYAML it uses.

What it adds to plain JSON schema, from the Kubernetes structural-schema rules:
- unknown fields are errors: every object schema with `properties` and neither
  `additionalProperties` nor `x-kubernetes-preserve-unknown-fields` gets
  `additionalProperties: false` (the server's strict field validation);
- `nullable: true` admits null;
- `x-kubernetes-list-type: map` (with `x-kubernetes-list-map-keys`) and `set` reject duplicate
  entries;
- `x-kubernetes-int-or-string` is already spelled as `anyOf` integer/string by controller-gen;
- `x-kubernetes-validations` (CEL): there is no CEL evaluator here, so each rule this CRD has
  is written out in Python in CEL_RULES, keyed by its text; a rule not in that table fails the
  check (a newer CRD's new rule is never passed unread). `self == oldSelf` (immutability) only
  applies to updates and passes on create.

Exit status: 0 when every document it knows passes (and at least one did), 1 otherwise.
"""

import json
import sys

import jsonschema
import yaml


def load_schemas(crd_path):
    """{(apiVersion, kind): openAPIV3Schema} for each served version of the CRD."""
    with open(crd_path, encoding="utf-8") as handle:
        crds = [doc for doc in yaml.safe_load_all(handle) if doc]
    schemas = {}
    for crd in crds:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def structural(schema):
    """The schema with the Kubernetes rules above turned into JSON schema."""
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key == "x-kubernetes-validations":
            out[key] = value
        elif isinstance(value, (dict, list)):
            out[key] = structural(value)
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def list_type(validator, kind, instance, schema):
    """`x-kubernetes-list-type`: `map` entries are unique by their map keys, `set` entries
    are unique."""
    if not validator.is_type(instance, "array"):
        return
    if kind == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = set()
        for item in instance:
            if not isinstance(item, dict):
                continue
            key = tuple(json.dumps(item.get(name), sort_keys=True) for name in keys)
            if key in seen:
                yield jsonschema.ValidationError(
                    f"duplicate entry for list-map keys {keys}: {dict(zip(keys, key))}"
                )
            seen.add(key)
    elif kind == "set":
        seen = set()
        for item in instance:
            text = json.dumps(item, sort_keys=True)
            if text in seen:
                yield jsonschema.ValidationError(f"duplicate entry in a set: {text}")
            seen.add(text)


def _startup_policy_vs_depends_on(spec):
    policy = spec.get("startupPolicy")
    return not (
        policy is not None
        and policy.get("startupPolicyOrder") == "InOrder"
        and any("dependsOn" in job for job in spec.get("replicatedJobs", []))
    )


def _claim_templates_have_no_namespace(policy):
    return all(
        not template.get("metadata", {}).get("namespace")
        for template in policy.get("templates", [])
    )


# The CEL rules of jobset.x-k8s.io_jobsets.yaml, in Python: rule text (whitespace collapsed)
# -> a function of `self` that is true when the rule holds on create.
CEL_RULES = {
    "self == oldSelf": lambda _self: True,
    "!(has(self.startupPolicy) && self.startupPolicy.startupPolicyOrder == 'InOrder' && "
    "self.replicatedJobs.exists(x, has(x.dependsOn)))": _startup_policy_vs_depends_on,
    "self.templates.all(t, !has(t.metadata.namespace) || size(t.metadata.namespace) == 0)":
        _claim_templates_have_no_namespace,
}


def validations(_validator, rules, instance, _schema):
    """`x-kubernetes-validations`: each rule through CEL_RULES."""
    for rule in rules:
        text = " ".join(rule["rule"].split())
        check = CEL_RULES.get(text)
        if check is None:
            yield jsonschema.ValidationError(
                f"CEL rule {text!r} is not in validate-crd.py's CEL_RULES: add its meaning"
            )
        elif not check(instance):
            yield jsonschema.ValidationError(f"{rule.get('message', text)} (CEL: {text})")


Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-kubernetes-list-type": list_type, "x-kubernetes-validations": validations},
)


def main(argv):
    if len(argv) != 3:
        print("usage: validate-crd.py CRD.yaml MANIFEST.yaml", file=sys.stderr)
        return 2
    schemas = load_schemas(argv[1])
    with open(argv[2], encoding="utf-8") as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc]
    failed = checked = 0
    for document in documents:
        key = (document.get("apiVersion"), document.get("kind"))
        name = document.get("metadata", {}).get("name", "?")
        if key not in schemas:
            print(f"SKIP {key[1]}/{name}: {key[0]} {key[1]} is not defined by {argv[1]}")
            continue
        checked += 1
        schema = structural(schemas[key])
        errors = sorted(Validator(schema).iter_errors(document), key=lambda e: list(e.path))
        if errors:
            failed += 1
            for error in errors:
                where = "/".join(str(part) for part in error.path) or "(root)"
                print(f"ERROR {key[1]}/{name}: {where}: {error.message}")
        else:
            print(f"PASS {key[1]}/{name} against {key[0]} from {argv[1]}")
    if checked == 0:
        print(f"ERROR no document of {argv[2]} is a kind that {argv[1]} defines")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
