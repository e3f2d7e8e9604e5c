#!/usr/bin/env python3
"""Checks on the rendered Kubernetes manifests and the Dockerfile that a JSON
schema cannot express: the shutdown timing, probes, hardening, selectors, the
database connection budget, environment variable names and values, the
metrics port, memory against the cache budget, and copies that must not
drift. Run by .ci/validate-deploy with the tools venv's Python (PyYAML).

usage: deploy_checks.py REPO_ROOT RENDERED.yaml...
Each RENDERED file is one `kubectl kustomize` output; its name (without
.yaml) names the overlay ("base", "production", ...). Exits 1 on any failure.
"""
import os
import re
import sys
import tomllib
from pathlib import Path

import yaml

API_SERVICE = "partnerportal.contacts.v1.ContactsService"
GRPC_PORT = 50051
# PostgreSQL's default max_connections (100) minus superuser_reserved_connections (3).
CONNECTION_BUDGET = int(os.environ.get("PG_CONNECTION_BUDGET", "97"))
# The binary's defaults (src/config.rs), for variables the manifests leave unset.
DEFAULT_POOL = 16
DEFAULT_DEADLINE_MS = 10_000
DEFAULT_ACQUIRE_TIMEOUT_MS = 3000
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
DEFAULT_CACHE_MB = 64
CHANGE_FEEDS = ("notify", "ttl")
METRICS_PATH = "/metrics"
# Resident memory of a replica besides its cache (bench/run: RSS 123 MB after
# the 1 000 000-partner run with the 64 MB cache full). The memory request must
# be at least REQUEST_HEADROOM x (cache + this), the limit LIMIT_HEADROOM x.
PROCESS_MIB = 60
REQUEST_HEADROOM = 1.25
LIMIT_HEADROOM = 1.5
# OpenTelemetry's standard variables that the pinned SDK (opentelemetry_sdk and
# opentelemetry-otlp 0.33, traces over gRPC) reads itself, besides the OTEL_*
# names src/telemetry/otel.rs reads: the pod may set them although src/ never
# names them.
OTEL_SDK_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
}

failures: list[str] = []


def fail(where: str, message: str) -> None:
    failures.append(f"{where}: {message}")


def load(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return found[0] if len(found) == 1 else None


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def known_env_names(root: Path) -> set[str]:
    """Every `env = "..."` of the clap configuration, every "OTEL_..." string
    src/ reads itself, and the OpenTelemetry SDK's own variables (read, never
    built)."""
    names = set(OTEL_SDK_ENV)
    for path in (root / "src").rglob("*.rs"):
        text = path.read_text()
        names.update(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', text))
        names.update(re.findall(r'"(OTEL_[A-Z0-9_]+)"', text))
    return names


def liveness_service_name(root: Path) -> str:
    """The health name src/server/mod.rs keeps SERVING whatever the database does."""
    text = (root / "src/server/mod.rs").read_text()
    m = re.search(r'pub const LIVENESS_SERVICE_NAME: &str = "([^"]+)";', text)
    if not m:
        raise SystemExit("src/server/mod.rs defines no LIVENESS_SERVICE_NAME")
    return m.group(1)


def mebibytes(quantity) -> float:
    """A Kubernetes memory quantity (128Mi, 1Gi, 200M, 134217728) in MiB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity))
    if not m:
        raise ValueError(f"memory quantity {quantity!r}")
    factor = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
              "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m[2]]
    return float(m[1]) * factor / 2**20


def pod_env(objs: list[dict], container: dict, where: str, env_names: set[str]) -> dict:
    """The environment a container gets: its envFrom ConfigMaps, then its env."""
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            continue  # Secrets: DATABASE_URL only, not rendered here.
        cm = one(objs, "ConfigMap", ref["name"])
        if cm is None:
            fail(where, f"envFrom names ConfigMap {ref['name']}, which is not rendered")
            continue
        for k, v in cm.get("data", {}).items():
            if k not in env_names:
                fail(where, f"ConfigMap {ref['name']} sets {k}, which src/ does not read (typo, or not implemented yet)")
            env[k] = v
    for e in container.get("env", []):
        env[e["name"]] = e.get("value")
        if e["name"] not in env_names:
            fail(where, f"container {container['name']} env {e['name']} is not read by src/")
    return env


def check_overlay(root: Path, name: str, objs: list[dict], env_names: set[str]) -> None:
    w = name
    deploy = one(objs, "Deployment", "partner-contacts")
    if deploy is None:
        fail(w, "no Deployment partner-contacts")
        return
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    c = containers.get("partner-contacts")
    if c is None:
        fail(w, "no container partner-contacts in the Deployment")
        return

    # Environment: every name the pod gets must be one the binary reads.
    if one(objs, "ConfigMap", "partner-contacts-env") is None:
        fail(w, "no ConfigMap partner-contacts-env")
        return
    env = pod_env(objs, c, w, env_names)

    # Values the server checks at start, checked here before a rollout.
    deadline = int(env.get("PARTNER_CONTACTS_DEFAULT_DEADLINE_MS", DEFAULT_DEADLINE_MS))
    for var, default in (("PARTNER_CONTACTS_DB_ACQUIRE_TIMEOUT_MS", DEFAULT_ACQUIRE_TIMEOUT_MS),
                         ("PARTNER_CONTACTS_DB_STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS)):
        if not int(env.get(var, default)) < deadline:
            fail(w, f"{var} ({env.get(var, default)}) must be below PARTNER_CONTACTS_DEFAULT_DEADLINE_MS ({deadline}): the server refuses to start")
    feed = env.get("PARTNER_CONTACTS_CHANGE_FEED", "notify")
    if feed not in CHANGE_FEEDS:
        fail(w, f"PARTNER_CONTACTS_CHANGE_FEED {feed!r} is not one of {', '.join(CHANGE_FEEDS)}")

    # Metrics: the listener, the container port "metrics" and the scrape
    # annotations name the same port.
    metrics_listen = env.get("PARTNER_CONTACTS_METRICS_LISTEN")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    annotations = pod["metadata"].get("annotations", {})
    if metrics_listen:
        listen_port = int(metrics_listen.rsplit(":", 1)[-1])
        if metrics_listen.startswith("127.") or metrics_listen.startswith("[::1]"):
            fail(w, f"PARTNER_CONTACTS_METRICS_LISTEN {metrics_listen} is loopback: nothing outside the pod can scrape it")
        if listen_port == GRPC_PORT:
            fail(w, f"PARTNER_CONTACTS_METRICS_LISTEN must not use the gRPC port {GRPC_PORT}")
        if ports.get("metrics") != listen_port:
            fail(w, f"container port 'metrics' ({ports.get('metrics')}) is not PARTNER_CONTACTS_METRICS_LISTEN's port {listen_port}")
        if annotations.get("prometheus.io/scrape") == "true":
            if annotations.get("prometheus.io/port") != str(listen_port):
                fail(w, f"annotation prometheus.io/port {annotations.get('prometheus.io/port')!r} is not the metrics port {listen_port}")
            if annotations.get("prometheus.io/path", METRICS_PATH) != METRICS_PATH:
                fail(w, f"annotation prometheus.io/path must be {METRICS_PATH}")
        else:
            print(f"  {w}: metrics on {metrics_listen} without prometheus.io/scrape (a PodMonitor, then)")
    elif "metrics" in ports or annotations.get("prometheus.io/scrape") == "true":
        fail(w, "a metrics port or scrape annotation, but PARTNER_CONTACTS_METRICS_LISTEN is not set (metrics are off)")

    # Memory: the cache is bounded by PARTNER_CONTACTS_CACHE_MAX_MB, the rest of
    # the process by about PROCESS_MIB, whatever the number of partners.
    cache = int(env.get("PARTNER_CONTACTS_CACHE_MAX_MB", DEFAULT_CACHE_MB))
    res = c.get("resources", {})
    try:
        request = mebibytes(res.get("requests", {}).get("memory", 0))
        limit = mebibytes(res.get("limits", {}).get("memory", 0))
    except ValueError as e:
        fail(w, str(e))
    else:
        expected = cache + PROCESS_MIB
        if request < REQUEST_HEADROOM * expected or limit < LIMIT_HEADROOM * expected:
            fail(w, f"memory request {request:.0f} Mi / limit {limit:.0f} Mi too small for a {cache} MB cache: "
                    f"need >= {REQUEST_HEADROOM} / {LIMIT_HEADROOM} x ({cache} + {PROCESS_MIB}) Mi")
        else:
            print(f"  {w}: memory: cache {cache} MB + process ~{PROCESS_MIB} Mi = ~{expected} Mi; request {request:.0f} Mi, limit {limit:.0f} Mi")

    # Shutdown timing: preStop sleep + drain < terminationGracePeriodSeconds.
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    if sleep is None:
        fail(w, "no lifecycle.preStop.sleep: endpoints may still route to a replica that got SIGTERM")
        sleep = 0
    grace = int(env.get("PARTNER_CONTACTS_SHUTDOWN_GRACE_SECONDS", "10"))
    if not sleep + grace < tgps:
        fail(w, f"preStop sleep {sleep} s + shutdown grace {grace} s must be < terminationGracePeriodSeconds {tgps} s")
    else:
        print(f"  {w}: shutdown timing: preStop {sleep} s + drain {grace} s + margin {tgps - sleep - grace} s = terminationGracePeriodSeconds {tgps} s")

    # Probes.
    for probe in ("readinessProbe", "startupProbe"):
        p = c.get(probe)
        if not p or "grpc" not in p:
            fail(w, f"{probe} must be a native gRPC probe")
            continue
        if p["grpc"].get("port") != GRPC_PORT or p["grpc"].get("service") != API_SERVICE:
            fail(w, f"{probe} must check port {GRPC_PORT}, service {API_SERVICE}")
    live = c.get("livenessProbe", {}).get("grpc")
    if live is None:
        fail(w, "livenessProbe must be a native gRPC probe (a TCP check passes for a wedged process)")
    elif live.get("port") != GRPC_PORT or live.get("service") != liveness_service_name(root):
        fail(
            w,
            f"livenessProbe must check port {GRPC_PORT}, service {liveness_service_name(root)!r}: "
            f"\"\" and {API_SERVICE} follow the database and would restart every replica in a database outage",
        )
    if str(GRPC_PORT) not in env.get("PARTNER_CONTACTS_LISTEN", ""):
        fail(w, f"PARTNER_CONTACTS_LISTEN must listen on {GRPC_PORT}, where the probes are")
    if "PARTNER_CONTACTS_AUTH_CONFIG" not in env and not env.get("PARTNER_CONTACTS_LISTEN", "").startswith("127."):
        fail(w, "a non-loopback PARTNER_CONTACTS_LISTEN needs PARTNER_CONTACTS_AUTH_CONFIG (the server refuses to start)")

    # Hardening, for every pod template (Deployment and Job).
    templates = [("Deployment/partner-contacts", pod)]
    job = one(objs, "Job", "partner-contacts-migrate")
    job_pool = DEFAULT_POOL
    if job is None:
        fail(w, "no migration Job partner-contacts-migrate")
    else:
        templates.append(("Job/partner-contacts-migrate", job["spec"]["template"]))
        jc = job["spec"]["template"]["spec"]["containers"][0]
        if jc.get("args") != ["migrate"]:
            fail(w, "the migration Job must run `partner-contacts migrate`")
        if jc.get("image") != c.get("image"):
            fail(w, f"the migration Job runs {jc.get('image')}, the Deployment {c.get('image')}")
        # `migrate` skips the auth-config and loopback checks, so the Job may
        # get the Deployment's environment; whatever it gets must be read.
        job_env = pod_env(objs, jc, f"{w}: migration Job", env_names)
        if not any(e.get("name") == "DATABASE_URL" for e in jc.get("env", [])) and not any(
            "secretRef" in s for s in jc.get("envFrom", [])
        ):
            fail(w, "the migration Job gets no DATABASE_URL (it would migrate an SQLite file in the pod)")
        job_pool = int(job_env.get("PARTNER_CONTACTS_DB_MAX_CONNECTIONS", DEFAULT_POOL))
    for where, tpl in templates:
        ps = tpl["spec"]
        psc = ps.get("securityContext", {})
        if ps.get("automountServiceAccountToken") is not False:
            fail(w, f"{where}: automountServiceAccountToken must be false")
        for cont in ps["containers"]:
            sc = cont.get("securityContext", {})
            cw = f"{where} container {cont['name']}"
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                fail(w, f"{cw}: runAsNonRoot")
            if not (sc.get("runAsUser", psc.get("runAsUser")) or 0) > 0:
                fail(w, f"{cw}: numeric non-root runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(w, f"{cw}: readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(w, f"{cw}: allowPrivilegeEscalation false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                fail(w, f"{cw}: capabilities.drop ALL")
            if sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") != "RuntimeDefault":
                fail(w, f"{cw}: seccompProfile RuntimeDefault")
            res = cont.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                fail(w, f"{cw}: requests cpu+memory and a memory limit")
            image = cont.get("image", "")
            if image.endswith(":latest") or ("@" not in image and ":" not in image.rsplit("/", 1)[-1]):
                fail(w, f"{cw}: image {image!r} must be pinned by tag or digest")

    # Selectors: Service and PDB pick the server pods, never the Job's.
    labels = pod["metadata"]["labels"]
    if not matches(deploy["spec"]["selector"]["matchLabels"], labels):
        fail(w, "Deployment selector does not match its pod template")
    job_labels = job["spec"]["template"]["metadata"]["labels"] if job else {}
    selectors = [(f"Service/{s['metadata']['name']}", s["spec"]["selector"]) for s in objs if s["kind"] == "Service"]
    pdb = one(objs, "PodDisruptionBudget")
    if pdb is None:
        fail(w, "no PodDisruptionBudget")
    else:
        selectors.append(("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]))
    for where, sel in selectors:
        if not matches(sel, labels):
            fail(w, f"{where} selector does not match the server pods")
        if job and matches(sel, job_labels):
            fail(w, f"{where} selector also matches the migration Job's pod")
    for s in objs:
        if s["kind"] == "Service":
            for port in s["spec"]["ports"]:
                if port.get("targetPort") not in ("grpc", GRPC_PORT):
                    fail(w, f"Service/{s['metadata']['name']} targets {port.get('targetPort')}, not the grpc port")

    # Autoscaling, disruption budget, connection budget.
    hpa = one(objs, "HorizontalPodAutoscaler")
    if hpa is None:
        fail(w, "no HorizontalPodAutoscaler")
        return
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    if hpa["spec"]["scaleTargetRef"]["name"] != "partner-contacts":
        fail(w, "HPA does not target the Deployment")
    if lo < 2:
        fail(w, "HPA minReplicas must be >= 2 (one replica is drained at a time)")
    if "replicas" in deploy["spec"] and not lo <= deploy["spec"]["replicas"] <= hi:
        fail(w, f"Deployment replicas {deploy['spec']['replicas']} outside the HPA bounds {lo}..{hi}")
    if pdb is not None:
        if "minAvailable" in pdb["spec"] and not int(pdb["spec"]["minAvailable"]) < lo:
            fail(w, f"PDB minAvailable {pdb['spec']['minAvailable']} blocks every drain at {lo} replicas")
    strategy = deploy["spec"].get("strategy", {}).get("rollingUpdate", {})
    if strategy.get("maxUnavailable", 1) != 0:
        fail(w, "rolling update must keep capacity: maxUnavailable 0")
    surge = int(strategy.get("maxSurge", 1))
    pool = int(env.get("PARTNER_CONTACTS_DB_MAX_CONNECTIONS", DEFAULT_POOL))
    # During a rollout: maxReplicas + surge + one replica still draining, and
    # the migration Job.
    need = (hi + surge + 1) * pool + job_pool
    if need > CONNECTION_BUDGET:
        fail(w, f"database connections: ({hi} + {surge} + 1) x {pool} + {job_pool} (Job) = {need} > budget {CONNECTION_BUDGET}")
    else:
        print(f"  {w}: database connections at most ({hi} + {surge} + 1) x {pool} + {job_pool} (Job) = {need} <= {CONNECTION_BUDGET}")

    # The gate policy ConfigMap is a copy of deploy/gate-policy.toml.
    policy = one(objs, "ConfigMap", "partner-contacts-gate-policy")
    if policy is None:
        fail(w, "no ConfigMap partner-contacts-gate-policy")
    elif name == "base" and policy["data"].get("gate-policy.toml") != (root / "deploy/gate-policy.toml").read_text():
        fail(w, "ConfigMap partner-contacts-gate-policy differs from deploy/gate-policy.toml: change both together")


def check_dockerfile(root: Path) -> None:
    w = "deploy/Dockerfile"
    text = (root / "deploy/Dockerfile").read_text()
    cargo = tomllib.loads((root / "Cargo.toml").read_text())
    m = re.search(r"^ARG RUST_VERSION=(\d+)\.(\d+)", text, re.M)
    need = tuple(int(x) for x in cargo["package"]["rust-version"].split(".")[:2])
    if not m or (int(m[1]), int(m[2])) < need:
        fail(w, f"ARG RUST_VERSION must be >= Cargo.toml rust-version {cargo['package']['rust-version']}")
    bins = [b["name"] for b in cargo.get("bin", [])] or [cargo["package"]["name"]]
    if f'ENTRYPOINT ["/usr/local/bin/{bins[0]}"]' not in text:
        fail(w, f"ENTRYPOINT must be the {bins[0]} binary (exec form)")
    if not re.search(rf"^EXPOSE {GRPC_PORT}\b", text, re.M):
        fail(w, f"EXPOSE {GRPC_PORT}")
    users = re.findall(r"^USER (\S+)", text, re.M)
    if not users or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]):
        fail(w, "the last USER must be numeric and not root")
    if "--locked" not in text:
        fail(w, "cargo build must use --locked")


def main() -> int:
    root = Path(sys.argv[1])
    env_names = known_env_names(root)
    for arg in sys.argv[2:]:
        path = Path(arg)
        check_overlay(root, path.stem, load(path), env_names)
    check_dockerfile(root)
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
