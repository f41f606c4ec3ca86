#!/usr/bin/env python3
"""Check recorded HTTP exchanges of trainyard-gcp against Google's published API contracts.

usage: validate_requests.py EXCHANGES.json [--expect-errors]

EXCHANGES.json is a list of {method, path, query, content_type, request, status, response, media}
as tests/common/mod.rs records them. For every exchange:
  * the (HTTP method, path) must match exactly one method of the discovery documents shipped in
    google-api-python-client (aiplatform v1, run v2, cloudscheduler v1, storage v1), by flatPath;
  * every query parameter must be one the method (or the API) declares, with a valid value
    (integers, booleans, enums, google-fieldmask paths that name request fields);
  * a JSON request body must validate strictly against the method's request schema: no unknown
    field at any depth, JSON types, enums, int64 as decimal strings, google-duration,
    google-datetime, byte (base64), and no output-only field; methods without a request body
    must get none;
  * the ids and labels the discovery descriptions constrain must follow their rules
    (pipelineJobId, modelId, versionAliases, labels, Cloud Run serviceId, Scheduler job name);
  * Cloud Scheduler Job and Cloud Run Service bodies must also parse strictly as Google's proto
    messages (google-cloud-scheduler, google-cloud-run), which catches two members of a oneof;
  * 2xx responses must validate against the response schema (output-only allowed), operations'
    `response` / `metadata` against the message their "@type" names; error responses must have
    Google's error shape.
Exit 1 on any error. With --expect-errors (negative control) every exchange must produce at
least one error, and the exit code is 0 only if it does.
"""
import base64, binascii, json, os, re, sys

import googleapiclient
from google.protobuf import json_format

DOCS_DIR = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")
DOC_NAMES = ["aiplatform.v1.json", "run.v2.json", "cloudscheduler.v1.json", "storage.v1.json", "logging.v2.json"]

DUR = re.compile(r"^-?\d+(\.\d{1,9})?s$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
INT = re.compile(r"^-?\d+$")
CANONICAL = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
             "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
             "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
             "UNAUTHENTICATED"}

# Id rules from the discovery descriptions (and the Vertex SDK's job-id pattern).
PIPELINE_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
VERSION_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
RUN_SERVICE_ID = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")  # "fewer than 50 characters"
SCHED_JOB_NAME = re.compile(r"^projects/[A-Za-z0-9:.-]+/locations/[a-z0-9-]+/jobs/[A-Za-z0-9_-]{1,500}$")
RESOURCE = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/@]+$")


def walk(res):
    for r in res.get("resources", {}).values():
        for m in r.get("methods", {}).values():
            yield m
        yield from walk(r)


class Api:
    def __init__(self, name):
        self.name = name
        self.doc = json.load(open(os.path.join(DOCS_DIR, name)))
        self.prefix = ""
        for sch in self.doc["schemas"]:
            if sch.startswith("GoogleCloud"):
                self.prefix = re.match(r"(GoogleCloud[A-Z][a-z]+V\d)", sch).group(1)
                break
        self.methods = []
        sp = self.doc.get("servicePath", "")
        seg = "[^/]+" if name.startswith("storage") else "[^/:]+"
        for m in walk(self.doc):
            paths = ["/" + sp + m.get("flatPath", m["path"])]
            up = m.get("mediaUpload", {}).get("protocols", {}).get("simple", {}).get("path")
            if up:
                paths.append(up)
            for i, p in enumerate(paths):
                rx = "^" + re.sub(r"\\\{[^}]+\\\}", seg, re.escape(p)) + "$"
                self.methods.append((m["httpMethod"], re.compile(rx), m, i == 1))


class Validator:
    def __init__(self, api, is_request):
        self.api, self.doc, self.req = api, api.doc, is_request
        self.errors = []

    def schema(self, ref):
        return self.doc["schemas"][ref]

    def check(self, val, sch, path):
        if "$ref" in sch:
            sch = self.schema(sch["$ref"])
        if self.req and (sch.get("readOnly") or sch.get("description", "").startswith("Output only")):
            self.errors.append(f"{path}: output-only field set in a request")
        t = sch.get("type")
        if t == "any" or (t is None and "properties" not in sch):
            return
        if t == "object":
            if not isinstance(val, dict):
                return self.errors.append(f"{path}: expected object, got {type(val).__name__}")
            props, addl = sch.get("properties"), sch.get("additionalProperties")
            for k, v in val.items():
                if props is not None and k in props:
                    self.check(v, props[k], f"{path}.{k}")
                elif addl is not None:
                    if k == "@type" and isinstance(v, str):
                        continue
                    self.check(v, addl, f"{path}[{k!r}]")
                else:
                    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k)
                    hint = f" (did you mean {camel!r}?)" if props and camel in props else ""
                    self.errors.append(f"{path}.{k}: unknown field{hint}")
            return
        if t == "array":
            if not isinstance(val, list):
                return self.errors.append(f"{path}: expected array")
            for i, x in enumerate(val):
                self.check(x, sch["items"], f"{path}[{i}]")
            return
        fmt = sch.get("format")
        if t == "string":
            if not isinstance(val, str):
                return self.errors.append(f"{path}: expected string (format {fmt}), got {type(val).__name__} {val!r}")
            if "enum" in sch and val not in sch["enum"]:
                self.errors.append(f"{path}: {val!r} not in enum {sch['enum']}")
            if fmt in ("int64", "uint64") and not INT.match(val):
                self.errors.append(f"{path}: int64 must be a decimal string, got {val!r}")
            if fmt == "byte":
                try:
                    base64.b64decode(val.replace("-", "+").replace("_", "/"), validate=True)
                except (binascii.Error, ValueError):
                    self.errors.append(f"{path}: not base64")
            if fmt == "google-duration" and not DUR.match(val):
                self.errors.append(f"{path}: duration must look like '180s', got {val!r}")
            if fmt == "google-datetime" and not RFC3339.match(val):
                self.errors.append(f"{path}: not RFC3339: {val!r}")
        elif t == "integer":
            if isinstance(val, bool) or not (isinstance(val, int) or (isinstance(val, str) and INT.match(val))):
                self.errors.append(f"{path}: expected integer, got {val!r}")
        elif t == "number":
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                self.errors.append(f"{path}: expected number, got {val!r}")
        elif t == "boolean":
            if not isinstance(val, bool):
                self.errors.append(f"{path}: expected boolean, got {val!r}")

    def check_any(self, val, path):
        """An Any-like object (operation response/metadata): validate against its @type."""
        if not isinstance(val, dict) or "@type" not in val:
            return
        short = val["@type"].rsplit(".", 1)[-1]
        name = self.api.prefix + short
        if name in self.doc["schemas"]:
            self.check({k: v for k, v in val.items() if k != "@type"}, {"$ref": name}, path)
        elif short != "Empty":
            self.errors.append(f"{path}: @type {val['@type']} is not a schema of {self.api.name}")


def check_query(api, m, query, errors):
    declared = dict(api.doc.get("parameters", {}))
    declared.update({k: p for k, p in m.get("parameters", {}).items() if p.get("location") == "query"})
    for k, v in query:
        p = declared.get(k)
        if p is None:
            errors.append(f"query {k}={v!r}: not a parameter of {m['id']}")
            continue
        t, fmt = p.get("type"), p.get("format")
        if t == "integer" and not INT.match(v):
            errors.append(f"query {k}={v!r}: expected integer")
        if t == "boolean" and v not in ("true", "false"):
            errors.append(f"query {k}={v!r}: expected true/false")
        if "enum" in p and v not in p["enum"]:
            errors.append(f"query {k}={v!r}: not in {p['enum']}")
        if fmt == "google-fieldmask":
            req = m.get("request", {}).get("$ref")
            props = api.doc["schemas"][req]["properties"] if req else {}
            for f in v.split(","):
                if f.split(".")[0] not in props:
                    errors.append(f"query {k}: field {f!r} is not in {req}")
    for k, p in m.get("parameters", {}).items():
        if p.get("location") == "query" and p.get("required") and k not in dict(query):
            errors.append(f"query {k}: required by {m['id']}")


def check_labels(labels, where, errors):
    if not isinstance(labels, dict):
        return
    if len(labels) > 64:
        errors.append(f"{where}: more than 64 labels")
    for k, v in labels.items():
        if not LABEL_KEY.match(k):
            errors.append(f"{where}: label key {k!r} breaks [a-z][a-z0-9_-]{{0,62}}")
        if not isinstance(v, str) or not LABEL_VALUE.match(v):
            errors.append(f"{where}: label value {k}={v!r} breaks [a-z0-9_-]{{0,63}}")


def check_semantics(mid, query, body, errors):
    q = dict(query)
    if mid == "aiplatform.projects.locations.pipelineJobs.create":
        if not PIPELINE_JOB_ID.match(q.get("pipelineJobId", "")):
            errors.append(f"pipelineJobId {q.get('pipelineJobId')!r} breaks [a-z][-a-z0-9]{{0,127}}")
        check_labels((body or {}).get("labels", {}), "$.labels", errors)
        if not str((body or {}).get("runtimeConfig", {}).get("gcsOutputDirectory", "")).startswith("gs://"):
            errors.append("$.runtimeConfig.gcsOutputDirectory: required, a gs:// path")
    if mid == "aiplatform.projects.locations.models.upload":
        body = body or {}
        if "modelId" in body and not MODEL_ID.match(body["modelId"]):
            errors.append(f"$.modelId {body['modelId']!r} breaks [a-z0-9_-]{{1,63}}, no leading digit or hyphen")
        if "parentModel" in body and not RESOURCE.match(body["parentModel"]):
            errors.append(f"$.parentModel {body['parentModel']!r} is not a model resource name")
        model = body.get("model", {})
        for a in model.get("versionAliases", []):
            if not VERSION_ALIAS.match(a):
                errors.append(f"$.model.versionAliases: {a!r} breaks [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9]")
        check_labels(model.get("labels", {}), "$.model.labels", errors)
        for req in ("displayName", "containerSpec"):
            if req not in model:
                errors.append(f"$.model.{req}: required for an upload")
    if mid == "run.projects.locations.services.create":
        if not RUN_SERVICE_ID.match(q.get("serviceId", "")):
            errors.append(f"serviceId {q.get('serviceId')!r}: letter first, no trailing hyphen, fewer than 50 characters")
    if mid.startswith("cloudscheduler.projects.locations.jobs.") and body and "name" in body:
        if not SCHED_JOB_NAME.match(body["name"]):
            errors.append(f"$.name {body['name']!r} is not projects/P/locations/L/jobs/[A-Za-z0-9_-]{{1,500}}")


def check_proto(mid, body, errors):
    if body is None:
        return
    if mid in ("cloudscheduler.projects.locations.jobs.create", "cloudscheduler.projects.locations.jobs.patch"):
        from google.cloud import scheduler_v1
        cls = scheduler_v1.Job.pb()
    elif mid in ("run.projects.locations.services.create", "run.projects.locations.services.patch"):
        from google.cloud import run_v2
        cls = run_v2.Service.pb()
    else:
        return
    try:
        json_format.ParseDict(body, cls(), ignore_unknown_fields=False)
    except json_format.ParseError as e:
        errors.append(f"proto {cls.DESCRIPTOR.full_name}: {e}")


def check_error_shape(resp, status, errors):
    e = (resp or {}).get("error") if isinstance(resp, dict) else None
    if not isinstance(e, dict):
        return errors.append("error response without {'error': {...}}")
    if e.get("code") != status:
        errors.append(f"error.code {e.get('code')!r} != HTTP {status}")
    if not isinstance(e.get("message"), str):
        errors.append("error.message missing")
    if e.get("status") not in CANONICAL:
        errors.append(f"error.status {e.get('status')!r} is not a canonical code")


def validate(ex, apis):
    errors = []
    path = ex["path"]
    # Each API has its own host; the recorder says which one got the request.
    host_apis = [a for a in apis if a.name.split(".")[0] == ex.get("api", a.name.split(".")[0])]
    matches = [(api, m, media) for api in host_apis for (verb, rx, m, media) in api.methods
               if verb == ex["method"] and rx.match(path)]
    if len(matches) != 1:
        return None, [f"{ex['method']} {path}: matches {len(matches)} discovery methods " +
                      str([m['id'] for _, m, _ in matches])]
    api, m, media = matches[0]
    mid = m["id"]
    check_query(api, m, ex.get("query", []), errors)
    body = ex.get("request")
    if media:
        if dict(ex.get("query", [])).get("uploadType") not in ("media", "multipart", "resumable"):
            errors.append("media upload without a valid uploadType")
    elif "request" in m:
        if body is None:
            errors.append(f"{mid} needs a JSON body")
        else:
            v = Validator(api, True)
            v.check(body, m["request"], "$")
            errors += v.errors
    elif ex.get("request_bytes", 0) and body not in (None, {}):
        errors.append(f"{mid} takes no body, got {body!r}")
    check_semantics(mid, ex.get("query", []), body, errors)
    check_proto(mid, body, errors)
    status = ex["status"]
    if 200 <= status < 300:
        if not ex.get("media") and "response" in m:
            v = Validator(api, False)
            v.check(ex.get("response"), m["response"], "response")
            resp = ex.get("response") or {}
            if m["response"].get("$ref") == "GoogleLongrunningOperation":
                v.check_any(resp.get("response"), "response.response")
                v.check_any(resp.get("metadata"), "response.metadata")
            errors += v.errors
    else:
        check_error_shape(ex.get("response"), status, errors)
    return mid, errors


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect_errors = "--expect-errors" in sys.argv
    exchanges = json.load(open(args[0]))
    apis = [Api(n) for n in DOC_NAMES]
    import importlib.metadata as md
    print(f"google-api-python-client {md.version('google-api-python-client')}; " +
          ", ".join(f"{a.name} rev {a.doc.get('revision')}" for a in apis))
    failed, covered = 0, {}
    for i, ex in enumerate(exchanges):
        mid, errors = validate(ex, apis)
        covered[mid] = covered.get(mid, 0) + 1
        label = f"#{i} {ex['method']} {ex['path']} -> {ex['status']} [{mid}]"
        if expect_errors:
            if errors:
                print(f"REJECTED (as expected) {label}: {errors[0]}")
            else:
                failed += 1
                print(f"NOT REJECTED {label}")
        elif errors:
            failed += 1
            print(f"FAIL {label}")
            for e in errors:
                print(f"    {e}")
    print("methods covered:")
    for k in sorted(covered, key=str):
        print(f"  {covered[k]:3d}  {k}")
    if expect_errors:
        print("negative control:", "OK" if not failed else f"{failed} bad exchange(s) passed")
    else:
        print("OK" if not failed else f"{failed} of {len(exchanges)} exchange(s) failed", f"({len(exchanges)} checked)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
