#!/usr/bin/env python3
"""Checks on the rendered Kubernetes manifests and the Dockerfile that a JSON
schema cannot express: the shutdown timing, probes, hardening, selectors, the
database connection budget, environment variable names, and copies that must
not drift. Run by .ci/validate-deploy with the tools venv's Python (PyYAML).

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
# Connections the migration Job may open (its PARTNER_CONTACTS_DB_MAX_CONNECTIONS).
JOB_CONNECTIONS = 2

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
    """Every `env = "..."` of the clap configuration (read, never built)."""
    names = set()
    for path in (root / "src").rglob("*.rs"):
        names.update(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', path.read_text()))
    return names


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
    env_cm = one(objs, "ConfigMap", "partner-contacts-env")
    if env_cm is None:
        fail(w, "no ConfigMap partner-contacts-env")
        return
    env = dict(env_cm.get("data", {}))
    for k in env:
        if k not in env_names:
            fail(w, f"ConfigMap partner-contacts-env sets {k}, which src/ does not read (typo, or not implemented yet)")
    for e in c.get("env", []):
        env[e["name"]] = e.get("value")
        if e["name"] not in env_names:
            fail(w, f"container env {e['name']} is not read by src/")

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
    if "livenessProbe" not in c:
        fail(w, "no livenessProbe")
    elif c["livenessProbe"].get("grpc", {}).get("service") in ("", API_SERVICE) or (
        "grpc" in c["livenessProbe"] and "service" not in c["livenessProbe"]["grpc"]
    ):
        fail(w, "livenessProbe must not use a health name that follows the database (restarts every replica in a database outage)")
    if str(GRPC_PORT) not in env.get("PARTNER_CONTACTS_LISTEN", ""):
        fail(w, f"PARTNER_CONTACTS_LISTEN must listen on {GRPC_PORT}, where the probes are")
    if "PARTNER_CONTACTS_AUTH_CONFIG" not in env and not env.get("PARTNER_CONTACTS_LISTEN", "").startswith("127."):
        fail(w, "a non-loopback PARTNER_CONTACTS_LISTEN needs PARTNER_CONTACTS_AUTH_CONFIG (the server refuses to start)")

    # Hardening, for every pod template (Deployment and Job).
    templates = [("Deployment/partner-contacts", pod)]
    job = one(objs, "Job", "partner-contacts-migrate")
    if job is None:
        fail(w, "no migration Job partner-contacts-migrate")
    else:
        templates.append(("Job/partner-contacts-migrate", job["spec"]["template"]))
        jc = job["spec"]["template"]["spec"]["containers"][0]
        if jc.get("args") != ["migrate"]:
            fail(w, "the migration Job must run `partner-contacts migrate`")
        if jc.get("image") != c.get("image"):
            fail(w, f"the migration Job runs {jc.get('image')}, the Deployment {c.get('image')}")
        if any(e["name"] not in env_names for e in jc.get("env", [])):
            fail(w, "the migration Job sets an environment variable src/ does not read")
        if any(e["name"] == "PARTNER_CONTACTS_LISTEN" for e in jc.get("env", [])) or jc.get("envFrom"):
            fail(w, "the migration Job must not get PARTNER_CONTACTS_LISTEN (no auth config => loopback only, even for migrate)")
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
    pool = int(env.get("PARTNER_CONTACTS_DB_MAX_CONNECTIONS", "16"))
    # During a rollout: maxReplicas + surge + one replica still draining.
    need = (hi + surge + 1) * pool + JOB_CONNECTIONS
    if need > CONNECTION_BUDGET:
        fail(w, f"database connections: ({hi} + {surge} + 1) x {pool} + {JOB_CONNECTIONS} = {need} > budget {CONNECTION_BUDGET}")
    else:
        print(f"  {w}: database connections at most ({hi} + {surge} + 1) x {pool} + {JOB_CONNECTIONS} = {need} <= {CONNECTION_BUDGET}")

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
