#!/usr/bin/env python3
"""Checks on the rendered Kubernetes manifests, the monitoring objects, the
alert rules, the dashboard and the Dockerfile that a JSON schema cannot
express: the shutdown timing, probes, hardening, selectors, the HPA owning
the replica count, the NetworkPolicy, the database connection budget,
environment variable names and values, the metrics port, memory against the
cache budget, the generated gate-policy ConfigMap, the ServiceMonitor and
PrometheusRule (unknown fields, selectors, generated from the rule file),
metric names against deploy/prometheus/metrics.txt, runbook links, and the
Grafana dashboard. Run by .ci/validate-deploy with the tools venv's Python
(PyYAML, promql-parser).

usage: deploy_checks.py REPO_ROOT RENDERED.yaml... [--monitoring RENDERED.yaml]
                        [--crd-types DIR]
       deploy_checks.py --write-prometheus-rule REPO_ROOT
Each RENDERED file is one `kubectl kustomize` output; its name (without
.yaml) names the overlay ("base", "production", ...). --monitoring is the
rendering of deploy/k8s/monitoring; --crd-types the monitoring.coreos.com/v1
directory of @kubernetes-models/prometheus-operator (its .d.ts files list
every field the CRDs know). Exits 1 on any failure.

--write-prometheus-rule (re)writes deploy/k8s/monitoring/prometheusrule.yaml
from deploy/prometheus/alerts.yaml; it needs nothing but Python 3.11.
"""
import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path

try:  # Not needed for --write-prometheus-rule, which any python3 runs.
    import yaml
except ImportError:
    yaml = None

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
METRICS_PORT_NAME = "metrics"
GATE_POLICY = "deploy/gate-policy.toml"
GATE_POLICY_COPY = "deploy/k8s/base/gate-policy.toml"
GATE_POLICY_CONFIGMAP = "partner-contacts-gate-policy"
ALERTS = "deploy/prometheus/alerts.yaml"
ALERT_TESTS = "deploy/prometheus/alerts.test.yaml"
METRICS_LIST = "deploy/prometheus/metrics.txt"
DASHBOARD = "deploy/grafana/partner-contacts.json"
PROMETHEUS_RULE = "deploy/k8s/monitoring/prometheusrule.yaml"
OPERATIONS_DOC = "docs/operations.md"
# Every runbook_url is this plus a heading anchor of docs/operations.md.
RUNBOOK_BASE = "https://code.partnerportal.example/partner-portal/partner-contacts/blob/main/docs/operations.md#"
SEVERITIES = ("critical", "warning", "info")
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
            print(f"  {w}: metrics on {metrics_listen} without prometheus.io/scrape (scraped through deploy/k8s/monitoring, then)")
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
    if "replicas" in deploy["spec"]:
        fail(w, f"Deployment partner-contacts sets replicas ({deploy['spec']['replicas']}) but the HPA scales it: "
                "every apply would reset the HPA's count; remove it (and any `replicas:` of the kustomization)")
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

    check_gate_policy(root, name, objs, deploy, c, env)
    check_network_policy(w, objs, pod, job_labels, ports)


def check_gate_policy(root: Path, name: str, objs: list[dict], deploy: dict, c: dict, env: dict) -> None:
    """The gate policy ConfigMap is generated (name with a content hash, so a
    change rolls the pods) from a byte-for-byte copy of deploy/gate-policy.toml,
    and the Deployment mounts the generated name where
    PARTNER_CONTACTS_GATE_POLICY points."""
    w = name
    canonical = (root / GATE_POLICY).read_text()
    if name == "base":
        copy = root / GATE_POLICY_COPY
        if not copy.is_file() or copy.is_symlink() or copy.read_bytes() != (root / GATE_POLICY).read_bytes():
            fail(w, f"{GATE_POLICY_COPY} must be a byte-for-byte copy of {GATE_POLICY}: "
                    f"cp {GATE_POLICY} {GATE_POLICY_COPY}")
        kustomization = yaml.safe_load((root / "deploy/k8s/base/kustomization.yaml").read_text())
        generators = [g for g in kustomization.get("configMapGenerator", []) if g.get("name") == GATE_POLICY_CONFIGMAP]
        if len(generators) != 1 or generators[0].get("files") != ["gate-policy.toml"]:
            fail(w, f"deploy/k8s/base/kustomization.yaml must generate {GATE_POLICY_CONFIGMAP} "
                    "with configMapGenerator from files: [gate-policy.toml]")
        elif generators[0].get("options", {}).get("disableNameSuffixHash"):
            fail(w, f"{GATE_POLICY_CONFIGMAP}: keep the name hash, so a policy change rolls the replicas")
    policies = [o for o in objs if o["kind"] == "ConfigMap"
                and re.fullmatch(rf"{GATE_POLICY_CONFIGMAP}-[a-z0-9]{{10}}", o["metadata"]["name"])]
    if len(policies) != 1:
        fail(w, f"expected one generated ConfigMap {GATE_POLICY_CONFIGMAP}-<hash>, found "
                f"{[o['metadata']['name'] for o in objs if o['kind'] == 'ConfigMap']}")
        return
    policy = policies[0]
    data = policy.get("data", {})
    if list(data) != ["gate-policy.toml"]:
        fail(w, f"ConfigMap {policy['metadata']['name']} must hold exactly gate-policy.toml, has {list(data)}")
    elif data["gate-policy.toml"] != canonical:
        if name == "base":
            fail(w, f"ConfigMap {policy['metadata']['name']} differs from {GATE_POLICY}")
        else:
            print(f"  {w}: the gate policy differs from {GATE_POLICY} (replaced in the overlay)")
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"].get("volumes", [])}
    mounted = [
        (m["mountPath"], volumes[m["name"]]["configMap"]["name"])
        for m in c.get("volumeMounts", [])
        if "configMap" in volumes.get(m["name"], {})
    ]
    path = env.get("PARTNER_CONTACTS_GATE_POLICY")
    if path is None:
        fail(w, "PARTNER_CONTACTS_GATE_POLICY is not set: the ConfigMap's policy is not used")
    elif (os.path.dirname(path), policy["metadata"]["name"]) not in mounted or os.path.basename(path) not in data:
        fail(w, f"PARTNER_CONTACTS_GATE_POLICY {path} is not the key of ConfigMap {policy['metadata']['name']} "
                f"mounted by the container (mounts: {mounted})")


def check_network_policy(w: str, objs: list[dict], pod: dict, job_labels: dict, ports: dict) -> None:
    """Ingress to the server pods: grpc from the whole cluster, metrics only
    from pods of a namespace named by label, nothing else."""
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"
                and matches(o["spec"]["podSelector"].get("matchLabels", {}), pod["metadata"]["labels"])]
    if len(policies) != 1:
        fail(w, f"expected one NetworkPolicy selecting the server pods, found {len(policies)}")
        return
    np_ = policies[0]
    spec = np_["spec"]
    where = f"NetworkPolicy/{np_['metadata']['name']}"
    if not spec["podSelector"].get("matchLabels") or spec["podSelector"].get("matchExpressions"):
        fail(w, f"{where}: podSelector must be matchLabels only (it would select every pod of the namespace)")
    if job_labels and matches(spec["podSelector"]["matchLabels"], job_labels):
        fail(w, f"{where}: selects the migration Job's pod too")
    if "Ingress" not in spec.get("policyTypes", []):
        fail(w, f"{where}: policyTypes must include Ingress")
    by_number = {v: k for k, v in ports.items()}
    allowed: dict[str, list] = {}
    for i, rule in enumerate(spec.get("ingress", [])):
        if not rule.get("ports"):
            fail(w, f"{where}: ingress rule {i} names no ports: it would open every port, {METRICS_PORT_NAME} included")
            continue
        for p in rule["ports"]:
            port = p.get("port")
            name = port if isinstance(port, str) else by_number.get(port)
            if name not in ports:
                fail(w, f"{where}: ingress rule {i} port {port!r} is no container port of the server")
                continue
            if p.get("endPort") is not None:
                fail(w, f"{where}: ingress rule {i}: no port ranges")
            allowed.setdefault(name, []).extend(rule.get("from", [None]))
    grpc = allowed.get("grpc", [])
    if not any(peer == {"namespaceSelector": {}} or peer is None for peer in grpc):
        fail(w, f"{where}: grpc must be open to the cluster (a peer `namespaceSelector: {{}}`), has {grpc}")
    metrics = allowed.get(METRICS_PORT_NAME)
    if not metrics:
        fail(w, f"{where}: nothing may reach {METRICS_PORT_NAME}: Prometheus cannot scrape")
    else:
        for peer in metrics:
            ns = (peer or {}).get("namespaceSelector", {})
            if peer is None or "ipBlock" in peer or not ns.get("matchLabels") or ns.get("matchExpressions"):
                fail(w, f"{where}: {METRICS_PORT_NAME} must be reachable only from namespaces named by matchLabels "
                        f"(e.g. kubernetes.io/metadata.name: monitoring), not {peer}")
            else:
                print(f"  {w}: NetworkPolicy: grpc from the cluster, {METRICS_PORT_NAME} from namespaces {ns['matchLabels']}"
                      + (f" pods {peer['podSelector']}" if "podSelector" in peer else ""))


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


# --- monitoring: ServiceMonitor, PrometheusRule, metrics Service ----------------

PROMETHEUS_RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml: do not edit. After changing
# that file, run
#   python3 .ci/deploy_checks.py --write-prometheus-rule .
# (.ci/validate-deploy fails while this differs from what it writes). spec is
# the rule file's groups, comments included, indented by two spaces.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: partner-contacts
  labels:
    app.kubernetes.io/component: server
spec:
"""


def prometheus_rule_text(alerts_text: str) -> str:
    """The PrometheusRule for the rule file: its lines from `groups:` on
    (the file's own header comment stays there), indented under spec."""
    lines = alerts_text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("groups:")), None)
    if start is None:
        raise SystemExit(f"{ALERTS} has no top-level `groups:`")
    body = "".join(f"  {l}\n" if l.strip() else "\n" for l in lines[start:])
    return PROMETHEUS_RULE_HEADER + body


def write_prometheus_rule(root: Path) -> int:
    out = root / PROMETHEUS_RULE
    out.write_text(prometheus_rule_text((root / ALERTS).read_text()))
    print(f"wrote {out} from {root / ALERTS}")
    return 0


class CrdTypes:
    """Field names of the prometheus-operator CRDs, from the .d.ts files of
    @kubernetes-models/prometheus-operator (generated from the CRDs' OpenAPI
    schemas). Its validators (run by .ci/validate-deploy) check types,
    patterns and required fields but accept unknown fields, as the API
    server does (it prunes them silently): a misspelt field would be lost
    without a word. This walks each object and refuses fields the CRD does
    not define. apimachinery types (metadata, label selectors) are not
    walked; the validators check those."""

    PREFIX = "IComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1"

    def __init__(self, directory: Path):
        self.classes: dict[str, dict[str, str]] = {}
        for path in directory.glob("*.d.ts"):
            text = path.read_text()
            for m in re.finditer(r"^export declare class (\w+) extends Model<\w+>[^{]*\{\n(.*?)^\}", text, re.M | re.S):
                props = {}
                for pm in re.finditer(r'^    "([^"]+)"\??: (.+?);?$', m[2], re.M):
                    props[pm[1]] = pm[2]
                self.classes[m[1]] = props
        if not {"ServiceMonitor", "PrometheusRule", "Endpoint", "Rule"} <= set(self.classes):
            raise SystemExit(f"no prometheus-operator types found in {directory}")

    def check(self, where: str, value, type_name: str, path: str) -> None:
        m = re.fullmatch(r"Array<(.+)>", type_name)
        if m:
            if not isinstance(value, list):
                fail(where, f"{path}: must be a list")
                return
            for i, item in enumerate(value):
                self.check(where, item, m[1], f"{path}[{i}]")
            return
        name = type_name[len(self.PREFIX):] if type_name.startswith(self.PREFIX) else type_name
        props = self.classes.get(name)
        if props is None or not isinstance(value, dict):
            return  # a scalar, a map, an apimachinery type: the validators' job.
        for key, item in value.items():
            if key not in props:
                fail(where, f"{path}.{key}: unknown field of {name} (known: {', '.join(sorted(props))})")
            elif path or key not in ("metadata",):
                self.check(where, item, props[key], f"{path}.{key}" if path else key)


def check_monitoring(root: Path, objs: list[dict], production: list[dict], crd_types: CrdTypes | None) -> None:
    w = "monitoring"
    deploy = one(production, "Deployment", "partner-contacts")
    job = one(production, "Job", "partner-contacts-migrate")
    if deploy is None:
        fail(w, "no production Deployment to check the monitoring objects against")
        return
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"] if job else {}
    container = next(c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "partner-contacts")
    cports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    namespaces = {o["metadata"].get("namespace") for o in production}
    for o in objs:
        if {o["metadata"].get("namespace")} != namespaces:
            fail(w, f"{o['kind']}/{o['metadata']['name']} is in namespace {o['metadata'].get('namespace')}, "
                    f"the production overlay in {namespaces}")
    kinds = sorted(o["kind"] for o in objs)
    if kinds != ["PrometheusRule", "Service", "ServiceMonitor"]:
        fail(w, f"expected a Service, a ServiceMonitor and a PrometheusRule, got {kinds}")
        return
    svc, sm, rule = one(objs, "Service"), one(objs, "ServiceMonitor"), one(objs, "PrometheusRule")

    # The metrics Service: the server pods' metrics port, unready pods included.
    where = f"Service/{svc['metadata']['name']}"
    if not matches(svc["spec"]["selector"], pod_labels):
        fail(w, f"{where}: selector {svc['spec']['selector']} does not match the server pods")
    if job_labels and matches(svc["spec"]["selector"], job_labels):
        fail(w, f"{where}: selector also matches the migration Job's pod")
    if svc["spec"].get("clusterIP") != "None":
        fail(w, f"{where}: must be headless (clusterIP: None): Prometheus scrapes each pod")
    if svc["spec"].get("publishNotReadyAddresses") is not True:
        fail(w, f"{where}: publishNotReadyAddresses must be true: a replica without its database is unready, "
                "and its metrics are the ones that say so")
    sports = svc["spec"]["ports"]
    if len(sports) != 1 or sports[0].get("targetPort") not in (METRICS_PORT_NAME, cports.get(METRICS_PORT_NAME)):
        fail(w, f"{where}: must have one port targeting the container port {METRICS_PORT_NAME!r}")
    for other in production:
        if other["kind"] == "Service" and matches(sm["spec"]["selector"].get("matchLabels", {}), other["metadata"].get("labels", {})):
            fail(w, f"ServiceMonitor selects the gRPC Service {other['metadata']['name']} too")

    # The ServiceMonitor: that Service, its port, /metrics.
    where = f"ServiceMonitor/{sm['metadata']['name']}"
    sel = sm["spec"].get("selector", {})
    if not sel.get("matchLabels") or not matches(sel["matchLabels"], svc["metadata"].get("labels", {})):
        fail(w, f"{where}: selector {sel} does not select {svc['metadata']['name']}")
    ns_sel = sm["spec"].get("namespaceSelector")
    if ns_sel and not (ns_sel.get("any") or sm["metadata"].get("namespace") in ns_sel.get("matchNames", [])):
        fail(w, f"{where}: namespaceSelector {ns_sel} excludes its own namespace")
    for i, ep in enumerate(sm["spec"].get("endpoints", [])):
        if ep.get("port") != sports[0].get("name"):
            fail(w, f"{where}: endpoints[{i}].port {ep.get('port')!r} is not the Service's port name {sports[0].get('name')!r}")
        if ep.get("path", METRICS_PATH) != METRICS_PATH:
            fail(w, f"{where}: endpoints[{i}].path must be {METRICS_PATH}")
        if ep.get("scheme", "http") != "http":
            fail(w, f"{where}: the metrics listener is plain HTTP")
    if not sm["spec"].get("endpoints"):
        fail(w, f"{where}: no endpoints")

    # The PrometheusRule: generated from the rule file, and equal to it once rendered.
    alerts_text = (root / ALERTS).read_text()
    if (root / PROMETHEUS_RULE).read_text() != prometheus_rule_text(alerts_text):
        fail(w, f"{PROMETHEUS_RULE} is not generated from {ALERTS}: run python3 .ci/deploy_checks.py --write-prometheus-rule .")
    if rule["spec"].get("groups") != yaml.safe_load(alerts_text)["groups"]:
        fail(w, f"the rendered PrometheusRule's groups differ from {ALERTS}")

    if crd_types is not None:
        for o in (sm, rule):
            crd_types.check(w, o, o["kind"], "")
    print(f"  {w}: {where} -> Service/{svc['metadata']['name']} port {sports[0].get('name')} -> "
          f"container port {cports.get(METRICS_PORT_NAME)}; PrometheusRule = {ALERTS}")


# --- metric names, rules, runbooks, dashboard ----------------------------------

def exposed_metrics(root: Path) -> set[str]:
    names = set()
    for line in (root / METRICS_LIST).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line):
                fail(METRICS_LIST, f"{line!r} is not a metric name")
            names.add(line)
    return names


def metric_names(expr: str) -> set[str]:
    """Every series name an expression selects (promql-parser's AST)."""
    import promql_parser

    found: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    found.add(m.value if m.op == promql_parser.MatchOp.Equal else f"{{__name__ {m.op} {m.value}}}")
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"#{1,6} (.+)", line)
        if m:
            text = re.sub(r"[`*_]", "", m[1]).strip().lower()
            anchors.add(re.sub(r" ", "-", re.sub(r"[^\w\- ]", "", text)))
    return anchors


def check_rules(root: Path, known: set[str]) -> set[str]:
    """Severity, annotations and runbook of every alert; metric names; the
    unit tests cover every alert firing and not firing. Returns the names
    the rules record (usable by the dashboard)."""
    w = ALERTS
    groups = yaml.safe_load((root / ALERTS).read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    recorded = {r["record"] for r in rules if "record" in r}
    anchors = github_anchors((root / OPERATIONS_DOC).read_text())
    alerts = []
    for r in rules:
        name = r.get("alert") or r.get("record")
        try:
            used = metric_names(r["expr"])
        except ValueError as e:
            fail(w, f"{name}: PromQL: {e}")
            continue
        for metric in sorted(used - known - recorded):
            fail(w, f"{name}: {metric} is not in {METRICS_LIST} (nor recorded by a rule)")
        if "alert" not in r:
            continue
        alerts.append(name)
        if r.get("labels", {}).get("severity") not in SEVERITIES:
            fail(w, f"{name}: label severity must be one of {', '.join(SEVERITIES)}")
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                fail(w, f"{name}: no {key} annotation")
        url = ann.get("runbook_url", "")
        if not url.startswith(RUNBOOK_BASE) or url[len(RUNBOOK_BASE):] not in anchors:
            fail(w, f"{name}: runbook_url {url!r} must be {RUNBOOK_BASE}<a heading of {OPERATIONS_DOC}>")
    if len(set(alerts)) != len(alerts):
        fail(w, "two alerts share a name")

    tests = yaml.safe_load((root / ALERT_TESTS).read_text())
    if tests.get("rule_files") != [os.path.basename(ALERTS)]:
        fail(ALERT_TESTS, f"rule_files must be [{os.path.basename(ALERTS)}]")
    fires, quiet = set(), set()
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []):
            (fires if a.get("exp_alerts") else quiet).add(a["alertname"])
    for name in alerts:
        if name not in fires:
            fail(ALERT_TESTS, f"{name}: no test case where it fires")
        if name not in quiet:
            fail(ALERT_TESTS, f"{name}: no test case where it must not fire")
    for name in sorted((fires | quiet) - set(alerts)):
        fail(ALERT_TESTS, f"tests alert {name}, which {ALERTS} does not define")
    print(f"  {ALERTS}: {len(alerts)} alerts, {len(recorded)} recording rules; each alert tested firing and quiet; "
          f"metric names in {METRICS_LIST}; runbooks in {OPERATIONS_DOC}")
    return recorded


GRAFANA_INTERVALS = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}")


def check_dashboard(root: Path, known: set[str], recorded: set[str]) -> None:
    w = DASHBOARD
    try:
        dash = json.loads((root / DASHBOARD).read_text())
    except json.JSONDecodeError as e:
        fail(w, f"not valid JSON: {e}")
        return
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dash:
            fail(w, f"no {key}")
    if dash.get("id") is not None:
        fail(w, "id must be null (Grafana assigns it on import)")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(w, "needs a templated datasource variable `datasource` of type datasource, query prometheus")
    for name in ("namespace", "job"):
        v = variables.get(name)
        if v is None or v.get("type") != "query":
            fail(w, f"needs a query variable `{name}`")
        elif (v.get("datasource") or {}).get("uid") != "${datasource}":
            fail(w, f"variable {name} must query ${{datasource}}")
    panels = []
    stack = list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        panels.append(p)
        stack.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or None in ids:
        fail(w, "every panel needs a unique id")
    used: set[str] = set()
    exprs = 0
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", f"panel {p.get('id')}")
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            fail(w, f"{title}: datasource must be ${{datasource}}")
        if "gridPos" not in p:
            fail(w, f"{title}: no gridPos")
        if not p.get("targets"):
            fail(w, f"{title}: no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            if (t.get("datasource") or {}).get("uid", "${datasource}") != "${datasource}":
                fail(w, f"{title}: target {t.get('refId')} datasource must be ${{datasource}}")
            if "$namespace" not in expr and "${namespace}" not in expr:
                fail(w, f"{title}: {t.get('refId')} does not filter on $namespace")
            try:
                names = metric_names(GRAFANA_INTERVALS.sub("5m", expr))
            except ValueError as e:
                fail(w, f"{title}: {t.get('refId')}: PromQL: {e}: {expr}")
                continue
            exprs += 1
            used |= names
            for metric in sorted(names - known - recorded):
                fail(w, f"{title}: {metric} is not in {METRICS_LIST} (nor recorded by {ALERTS})")
    print(f"  {DASHBOARD}: {len(panels)} panels, {exprs} queries over {len(used)} series names, all in {METRICS_LIST}")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-prometheus-rule":
        return write_prometheus_rule(Path(sys.argv[2]))
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("rendered", nargs="+", type=Path)
    ap.add_argument("--monitoring", type=Path)
    ap.add_argument("--crd-types", type=Path)
    args = ap.parse_args()
    root = args.root
    env_names = known_env_names(root)
    overlays = {}
    for path in args.rendered:
        overlays[path.stem] = load(path)
        check_overlay(root, path.stem, overlays[path.stem], env_names)
    if args.monitoring:
        crd_types = CrdTypes(args.crd_types) if args.crd_types else None
        check_monitoring(root, load(args.monitoring), overlays.get("production", []), crd_types)
    known = exposed_metrics(root)
    recorded = check_rules(root, known)
    check_dashboard(root, known, recorded)
    check_dockerfile(root)
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
