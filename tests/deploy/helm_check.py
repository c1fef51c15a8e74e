#!/usr/bin/env python3
"""Offline checks of the Helm chart in deploy/helm/mcp-tunnel (no cluster needed).

Renders the chart with several value sets through helm-python-sdk (Helm's own Go SDK),
lints it, checks the properties the deployment docs promise (hardening, exec probes,
egress-only NetworkPolicy, checksum annotation, sidecar mode, certificate renewal),
checks that values.schema.json rejects bad values, and validates every rendered object
with `kubernetes-validate --strict` against the bundled Kubernetes schemas (the chart's
minimum, 1.25, and 1.37). When an mcp-tunnel binary is available (MCPT_BIN, or
target/release/mcp-tunnel) every rendered gateway.toml is also run through
`mcp-tunnel check` with a real PKI from `mcp-tunnel certs init`.

Run:  target/py-venv/bin/pip install -r tests/deploy/requirements.txt
      target/py-venv/bin/python tests/deploy/helm_check.py
Ends with "N passed, F failed"; exits non-zero if anything failed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = Path(os.environ.get("MCPT_CHART", ROOT / "deploy" / "helm" / "mcp-tunnel"))
KUBE_VERSIONS = ["1.25.0", "1.37.0"]  # Chart.yaml kubeVersion minimum, and the newest bundled
RELEASE, NAMESPACE = "demo", "mcp"
FULL = f"{RELEASE}-mcp-tunnel"

passed = 0
failed = 0
notes: list[str] = []


def check(name: str, fn: Callable[[], Any]) -> None:
    global passed, failed
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, then counted
        failed += 1
        print(f"FAIL {name}: {type(exc).__name__}: {exc}")
        if os.environ.get("VERBOSE"):
            traceback.print_exc()
    else:
        passed += 1
        print(f"ok   {name}")


def expect(cond: Any, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


# ---- test material ----------------------------------------------------------------


def find_binary() -> Path | None:
    env = os.environ.get("MCPT_BIN")
    for cand in [env, ROOT / "target" / "release" / "mcp-tunnel", ROOT / "target" / "debug" / "mcp-tunnel"]:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    return None


BIN = find_binary()
WORK = Path(tempfile.mkdtemp(prefix="mcpt-helm-check-"))


def make_pki() -> Path:
    """A real PKI from the binary when there is one, else placeholder PEM blocks."""
    pki = WORK / "pki"
    if BIN:
        subprocess.run(
            [str(BIN), "certs", "init", "--out", str(pki), "--tunnel-id", "acme",
             "--tunnel-domain", "mcp.acme.example", "--edge-name", "edge.example.com"],
            check=True, capture_output=True,
        )
        return pki
    for rel, kind in [("edge/ca.pem", "CERTIFICATE"), ("tunnel/gateway.pem", "CERTIFICATE"),
                      ("tunnel/gateway.key", "PRIVATE KEY"), ("inner/server.pem", "CERTIFICATE"),
                      ("inner/server.key", "PRIVATE KEY"), ("inner/ca.pem", "CERTIFICATE"),
                      ("inner/ca.key", "PRIVATE KEY")]:
        p = pki / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        body = base64.b64encode(rel.encode() * 8).decode()
        p.write_text(f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n")
    return pki


PKI = make_pki()


def pem(rel: str) -> str:
    return (PKI / rel).read_text()


BASE: dict[str, Any] = {
    "config": {
        "tunnelDomain": "mcp.acme.example",
        "edge": {"address": "edge.example.com:7844"},
        "routes": [{"host": "tickets", "upstream": "http://10.0.0.5:8080"}],
    },
    "certs": {
        "edgeCa": pem("edge/ca.pem"),
        "gatewayCert": pem("tunnel/gateway.pem"),
        "gatewayKey": pem("tunnel/gateway.key"),
        "innerCert": pem("inner/server.pem"),
        "innerKey": pem("inner/server.key"),
    },
    "networkPolicy": {"upstreams": [{"cidr": "10.0.0.0/24", "ports": [8080]}]},
}


def merged(*overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for o in overrides:
        _deep_merge(out, copy.deepcopy(o))
    return out


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v


INTERNAL_CA = pem("edge/ca.pem")  # any CA certificate will do as an upstream CA here

VALUE_SETS: dict[str, dict[str, Any]] = {
    "standalone-default": merged(),
    "sidecar": merged({
        "mode": "sidecar",
        "sidecar": {"upstreamPort": 3000},
        "config": {"admin": {"listen": "127.0.0.1:9464"},
                   "routes": [{"host": "tickets"}, {"host": "wiki", "pathPrefix": "/wiki", "stripPrefix": True}]},
    }),
    "sidecar-no-fsgroup": merged({"mode": "sidecar", "sidecar": {"fsGroup": None},
                                  "config": {"routes": [{"host": "tickets"}]}}),
    "cert-renew": merged({
        "certRenew": {"enabled": True, "ca": {"caCert": pem("inner/ca.pem"), "caKey": pem("inner/ca.key")}},
    }),
    "cert-renew-existing": merged({
        "certs": {"existingSecret": "mcp-tunnel-edge-identity", "innerCert": "", "innerKey": ""},
        "certRenew": {"enabled": True, "schedule": "0 4 * * 1", "renewBefore": "1000h",
                      "ca": {"existingSecret": "mcp-tunnel-inner-ca"},
                      "persistence": {"existingClaim": "inner-tls", "accessModes": ["ReadWriteOnce"]}},
    }),
    "existing-secret": merged({
        "certs": {"existingSecret": "gw-certs", "edgeCa": "", "gatewayCert": "", "gatewayKey": "",
                  "innerCert": "", "innerKey": "",
                  "keys": {"edgeCa": "ca.crt", "gatewayCert": "tls.crt", "gatewayKey": "tls.key",
                           "innerCert": "inner.crt", "innerKey": "inner.key"}},
    }),
    "several-routes": merged({
        "replicaCount": 3,
        "config": {
            "shutdownTimeoutSeconds": 90,
            "idleTimeout": "15m",
            "edge": {"address": "edge.example.com:8443", "serverName": "tunnel.example.com"},
            "upstream": {"allowedNetworks": ["10.20.0.0/16", "127.0.0.0/8"], "connectTimeout": "3s",
                         "timeout": "45s"},
            "routes": [
                {"host": "tickets", "upstream": "http://10.20.0.5:8080"},
                {"host": "tools.mcp.acme.example", "pathPrefix": "/crm", "stripPrefix": True,
                 "upstream": "http://10.20.1.9:9000"},
                {"host": "db", "upstream": "https://10.20.2.7:8443", "ca": "internal-ca.pem",
                 "preserveHost": True, "timeout": "2m"},
                {"host": "wiki", "upstream": "http://10.20.3.3:80", "ca": None},
            ],
        },
        "upstreamCAs": {"internal-ca.pem": INTERNAL_CA},
        "networkPolicy": {
            "edge": {"cidrs": ["203.0.113.10/32", "2001:db8::10/128"], "protocols": ["UDP"]},
            "upstreams": [
                {"cidr": "10.20.0.0/16", "except": ["10.20.9.0/24"], "ports": [80, 8080, 8443, 9000]},
                {"podSelector": {"matchLabels": {"app": "crm-mcp"}},
                 "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "crm"}}, "ports": [9000]},
            ],
        },
        "podAntiAffinity": "required",
        "podLabels": {"team": "platform", "app.kubernetes.io/name": "must-not-win"},
        "podAnnotations": {"example.com/owner": "platform"},
        "image": {"repository": "registry.example.com/mcp-tunnel",
                  "digest": "sha256:" + "ab" * 32},
        "imagePullSecrets": [{"name": "regcred"}],
        "logLevel": "mcp_tunnel=debug,info",
        "logFormat": "json",
    }),
    "single-replica": merged({"replicaCount": 1, "networkPolicy": {"enabled": False}}),
    "state-dir": merged({"stateDir": {"enabled": True}}),
    "state-dir-claim": merged({"stateDir": {"enabled": True, "path": "/state", "existingClaim": "gw-state"},
                               "config": {"audit": {"sink": "file"}}}),
}
# `ca: None` above is not a valid value: drop it (None is how YAML `~` would arrive).
del VALUE_SETS["several-routes"]["config"]["routes"][3]["ca"]


# ---- rendering helpers ------------------------------------------------------------


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Renders the chart; returns {template path: [objects]} for non-empty YAML templates."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    docs: dict[str, list[dict[str, Any]]] = {}
    for path, text in out.items():
        if not path.endswith(".yaml"):
            continue
        objs = [d for d in yaml.safe_load_all(text) if d]
        if objs:
            docs[path] = objs
    return docs


def render_raw(values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values=values, name=RELEASE, namespace=NAMESPACE)


def objects(docs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [o for objs in docs.values() for o in objs]


def by_kind(docs: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(docs) if o["kind"] == kind]


def one(docs: dict[str, list[dict[str, Any]]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(docs, kind) if name is None or o["metadata"]["name"] == name]
    expect(len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def gateway_toml(docs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    text = one(docs, "ConfigMap", f"{FULL}-config")["data"]["gateway.toml"]
    return text, tomllib.loads(text)


RENDERED: dict[str, dict[str, list[dict[str, Any]]]] = {}


def rendered(name: str) -> dict[str, list[dict[str, Any]]]:
    if name not in RENDERED:
        RENDERED[name] = render(VALUE_SETS[name])
    return RENDERED[name]


# ---- property checks --------------------------------------------------------------

HARDENED_CONTAINER = {
    "runAsNonRoot": True, "runAsUser": 65532, "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def assert_hardened_container(c: dict[str, Any]) -> None:
    sc = c.get("securityContext", {})
    for k, v in HARDENED_CONTAINER.items():
        expect(sc.get(k) == v, f"container {c['name']}: securityContext.{k} = {sc.get(k)!r}, want {v!r}")
    expect(not sc.get("privileged"), "container is privileged")
    expect("ports" not in c, f"container {c['name']} declares ports: {c.get('ports')}")
    expect(c.get("resources"), f"container {c['name']} has no resources")


def assert_exec_probes(c: dict[str, Any], admin: str) -> None:
    for probe, arg in [("startupProbe", "live"), ("livenessProbe", "live"), ("readinessProbe", "ready")]:
        p = c.get(probe)
        expect(p, f"{probe} missing")
        expect(set(p) & {"httpGet", "tcpSocket", "grpc"} == set(), f"{probe} is not exec-only: {p}")
        want = ["/mcp-tunnel", "probe", "--admin", admin, arg]
        expect(p["exec"]["command"] == want, f"{probe} command {p['exec']['command']}, want {want}")


def assert_pod_hardened(spec: dict[str, Any]) -> None:
    sc = spec["securityContext"]
    expect(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532, f"pod securityContext {sc}")
    expect(sc.get("seccompProfile") == {"type": "RuntimeDefault"}, "pod seccompProfile")
    expect(spec.get("automountServiceAccountToken") is False, "pod automountServiceAccountToken is not false")


def projected_items(volumes: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """Path under /etc/mcp-tunnel -> (source kind, source name, key)."""
    vol = next(v for v in volumes if v["name"] == "mcp-tunnel-config")
    out = {}
    for src in vol["projected"]["sources"]:
        (kind, body), = src.items()
        for item in body["items"]:
            out[item["path"]] = (kind, body["name"], item["key"])
    return out


def assert_config_paths_mounted(cfg: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]) -> None:
    """Every file gateway.toml names is provided by a volume mounted into the container."""
    items = projected_items(pod["volumes"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    expect(mounts["/etc/mcp-tunnel"]["readOnly"] is True, "config mount not read-only")
    paths = [cfg["edge"]["ca"], cfg["edge"]["cert"], cfg["edge"]["key"],
             cfg["inner_tls"]["cert"], cfg["inner_tls"]["key"]]
    paths += [r["ca"] for r in cfg.get("routes", []) if "ca" in r]
    for p in paths:
        expect(p.startswith("/"), f"config path {p} is not absolute")
        if p.startswith("/etc/mcp-tunnel/"):
            rel = p.removeprefix("/etc/mcp-tunnel/")
            expect(rel in items, f"{p} is in gateway.toml but not in the projected volume ({sorted(items)})")
        else:
            expect(any(p.startswith(m.rstrip("/") + "/") for m in mounts), f"{p} is on no mounted volume")


def check_standalone_default() -> None:
    docs = rendered("standalone-default")
    kinds = sorted(o["kind"] for o in objects(docs))
    expect(kinds == sorted(["ConfigMap", "Secret", "ServiceAccount", "Deployment", "PodDisruptionBudget",
                            "NetworkPolicy"]), f"kinds {kinds}")
    for o in objects(docs):
        expect(o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']} without the release namespace")
    dep = one(docs, "Deployment")
    spec = dep["spec"]
    expect(spec["replicas"] == 2, "replicas != 2")
    expect(spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
           f"strategy {spec['strategy']}")
    pod = spec["template"]["spec"]
    _, cfg = gateway_toml(docs)
    expect(cfg["shutdown_timeout"] == "30s", "shutdown_timeout")
    expect(pod["terminationGracePeriodSeconds"] > 30, "terminationGracePeriodSeconds <= shutdown_timeout")
    aff = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    expect(aff["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname", "anti-affinity topologyKey")
    expect(aff["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"],
           "anti-affinity selector != pod selector")
    assert_pod_hardened(pod)
    expect(pod["serviceAccountName"] == FULL, "serviceAccountName")
    sa = one(docs, "ServiceAccount")
    expect(sa.get("automountServiceAccountToken") is False, "ServiceAccount automounts its token")
    (c,) = pod["containers"]
    assert_hardened_container(c)
    assert_exec_probes(c, "127.0.0.1:9090")
    expect(c["command"] == ["/mcp-tunnel"], "command")
    expect(c["args"] == ["--log-level", "info", "--log-format", "text", "gateway", "--config",
                         "/etc/mcp-tunnel/gateway.toml"], f"args {c['args']}")
    expect(cfg["admin"] == {"listen": "127.0.0.1:9090"}, f"[admin] {cfg.get('admin')}")
    assert_config_paths_mounted(cfg, pod, c)
    # Files 0440 with fsGroup 65532: readable by the gateway's group only.
    vol = next(v for v in pod["volumes"] if v["name"] == "mcp-tunnel-config")
    expect(vol["projected"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 65532, "file modes")
    pdb = one(docs, "PodDisruptionBudget")
    expect(pdb["spec"]["minAvailable"] == 1, "PDB minAvailable")
    expect(pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"], "PDB selector")
    labels = spec["template"]["metadata"]["labels"]
    expect(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), "selector/labels")
    secret = one(docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    expect(data == {"edge-ca.pem": pem("edge/ca.pem"), "gateway.pem": pem("tunnel/gateway.pem"),
                    "gateway.key": pem("tunnel/gateway.key"), "server.pem": pem("inner/server.pem"),
                    "server.key": pem("inner/server.key")}, "Secret contents")


def check_checksum() -> None:
    docs = rendered("standalone-default")
    text, _ = gateway_toml(docs)
    ann = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    expect("checksum/config" in ann, "no checksum/config annotation")
    expect(ann["checksum/config"] == hashlib.sha256(text.rstrip("\n").encode()).hexdigest(),
           "checksum/config is not the sha256 of the rendered gateway.toml")
    other = render(merged({"config": {"routes": [{"host": "tickets", "upstream": "http://10.0.0.6:8080"}]}}))
    ann2 = one(other, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    expect(ann2["checksum/config"] != ann["checksum/config"], "checksum/config did not change with a route")
    expect(ann2["checksum/certs"] == ann["checksum/certs"], "checksum/certs changed without a cert change")
    rotated = render(merged({"certs": {"innerCert": pem("edge/ca.pem")}}))
    ann3 = one(rotated, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    expect(ann3["checksum/certs"] != ann["checksum/certs"], "checksum/certs did not change with a new cert")


def check_network_policy() -> None:
    for name in ["standalone-default", "several-routes"]:
        docs = rendered(name)
        np_ = one(docs, "NetworkPolicy", FULL)["spec"]
        expect(np_["policyTypes"] == ["Ingress", "Egress"], f"{name}: policyTypes {np_['policyTypes']}")
        expect(not np_.get("ingress"), f"{name}: NetworkPolicy has ingress rules")
        expect(np_["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"],
               f"{name}: NetworkPolicy selects other pods")
        for rule in np_["egress"]:
            expect(rule.get("to") and rule.get("ports"), f"{name}: egress rule without peers or ports: {rule}")
    eg = one(rendered("standalone-default"), "NetworkPolicy")["spec"]["egress"]
    expect({(p["protocol"], p["port"]) for p in eg[0]["ports"]} == {("UDP", 7844), ("TCP", 7844)}, "edge ports")
    expect({(p["protocol"], p["port"]) for p in eg[1]["ports"]} == {("UDP", 53), ("TCP", 53)}, "dns ports")
    expect(eg[2] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 8080}]},
           f"upstream rule {eg[2]}")
    eg = one(rendered("several-routes"), "NetworkPolicy")["spec"]["egress"]
    expect(eg[0]["to"] == [{"ipBlock": {"cidr": "203.0.113.10/32"}}, {"ipBlock": {"cidr": "2001:db8::10/128"}}],
           "edge cidrs")
    expect(eg[0]["ports"] == [{"protocol": "UDP", "port": 8443}], f"edge port from address: {eg[0]['ports']}")
    expect(eg[2]["to"][0]["ipBlock"]["except"] == ["10.20.9.0/24"], "except")
    expect(eg[3]["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "crm"},
           "namespaceSelector")
    expect(not by_kind(rendered("single-replica"), "NetworkPolicy"), "networkPolicy.enabled=false still renders")


def check_sidecar() -> None:
    for name in ["sidecar", "sidecar-no-fsgroup"]:
        docs = rendered(name)
        kinds = sorted(o["kind"] for o in objects(docs))
        expect(kinds == ["ConfigMap", "ConfigMap", "Secret"], f"{name}: kinds {kinds}")
    docs = rendered("sidecar")
    _, cfg = gateway_toml(docs)
    expect([r["upstream"] for r in cfg["routes"]] == ["http://127.0.0.1:3000"] * 2, f"routes {cfg['routes']}")
    expect(cfg["routes"][1]["path_prefix"] == "/wiki" and cfg["routes"][1]["strip_prefix"] is True, "route 2")
    snippet = yaml.safe_load(one(docs, "ConfigMap", f"{FULL}-sidecar-snippet")["data"]["snippet.yaml"])
    tmpl = snippet["spec"]["template"]
    expect("checksum/mcp-tunnel-config" in tmpl["metadata"]["annotations"], "snippet checksum annotation")
    pod = tmpl["spec"]
    expect(pod["terminationGracePeriodSeconds"] > 30, "snippet terminationGracePeriodSeconds")
    expect(pod["securityContext"] == {"fsGroup": 65532}, "snippet fsGroup")
    (c,) = pod["containers"]
    assert_hardened_container(c)
    assert_exec_probes(c, "127.0.0.1:9464")
    assert_config_paths_mounted(cfg, pod, c)
    notes_txt = render_raw(VALUE_SETS["sidecar"])["mcp-tunnel/templates/NOTES.txt"]
    expect("name: mcp-tunnel" in notes_txt and "kubectl" in notes_txt and "patch" in notes_txt,
           "NOTES.txt does not show the snippet")
    docs2 = rendered("sidecar-no-fsgroup")
    snip2 = yaml.safe_load(one(docs2, "ConfigMap", f"{FULL}-sidecar-snippet")["data"]["snippet.yaml"])
    pod2 = snip2["spec"]["template"]["spec"]
    expect("securityContext" not in pod2, "fsGroup null still sets a securityContext")
    expect(pod2["volumes"][0]["projected"]["defaultMode"] == 0o444, "no fsGroup: files must be 0444")


def sidecar_patched_deployment(name: str) -> dict[str, Any]:
    """The snippet applied (as a strategic merge would) to a typical MCP server Deployment."""
    docs = rendered(name)
    snippet = yaml.safe_load(one(docs, "ConfigMap", f"{FULL}-sidecar-snippet")["data"]["snippet.yaml"])
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "tickets-mcp", "namespace": NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "tickets-mcp"}},
                 "template": {"metadata": {"labels": {"app": "tickets-mcp"}},
                              "spec": {"containers": [{"name": "server", "image": "tickets-mcp:1",
                                                       "ports": [{"containerPort": 3000}]}]}}},
    }
    s_tmpl = snippet["spec"]["template"]
    t = dep["spec"]["template"]
    t["metadata"].setdefault("annotations", {}).update(s_tmpl["metadata"]["annotations"])
    for k, v in s_tmpl["spec"].items():
        if k in ("containers", "volumes"):
            t["spec"].setdefault(k, []).extend(v)
        else:
            t["spec"][k] = v
    return dep


def check_cert_renew() -> None:
    docs = rendered("cert-renew")
    cj = one(docs, "CronJob")
    job_pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = job_pod["containers"]
    expect(c["args"] == ["--log-level", "info", "--log-format", "text", "certs", "renew", "--dir",
                         "/var/lib/mcp-tunnel/inner", "--renew-before", "720h"], f"renew args {c['args']}")
    expect(cj["spec"]["concurrencyPolicy"] == "Forbid", "concurrencyPolicy")
    assert_pod_hardened(job_pod)
    sc = c["securityContext"]
    for k, v in HARDENED_CONTAINER.items():
        expect(sc.get(k) == v, f"renew container securityContext.{k}")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    expect(mounts["/var/lib/mcp-tunnel/inner"].get("readOnly") is not True, "renew dir must be writable")
    expect(mounts["/var/lib/mcp-tunnel/inner/ca.key"]["readOnly"] is True, "CA key mount")
    pvc = one(docs, "PersistentVolumeClaim")
    expect(pvc["spec"]["accessModes"] == ["ReadWriteMany"], "PVC access modes")
    ca = one(docs, "Secret", f"{FULL}-inner-ca")
    expect(sorted(ca["data"]) == ["ca.key", "ca.pem"], "inner CA Secret keys")
    certs = one(docs, "Secret", f"{FULL}-certs")
    expect(sorted(certs["data"]) == ["edge-ca.pem", "gateway.key", "gateway.pem"],
           f"certs Secret must not carry the inner pair when renewal is on: {sorted(certs['data'])}")
    _, cfg = gateway_toml(docs)
    expect(cfg["inner_tls"] == {"cert": "/var/lib/mcp-tunnel/inner/server.pem",
                                "key": "/var/lib/mcp-tunnel/inner/server.key"}, f"inner_tls {cfg['inner_tls']}")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (gc,) = pod["containers"]
    gm = {m["mountPath"]: m for m in gc["volumeMounts"]}
    expect(gm["/var/lib/mcp-tunnel/inner"]["readOnly"] is True, "gateway must mount the renewal volume read-only")
    assert_config_paths_mounted(cfg, pod, gc)
    expect(f"{FULL}-inner-ca" not in str(pod["volumes"]), "the inner CA Secret reaches the gateway pod")
    renew_np = one(docs, "NetworkPolicy", f"{FULL}-cert-renew")["spec"]
    expect(renew_np["policyTypes"] == ["Ingress", "Egress"] and "egress" not in renew_np
           and "ingress" not in renew_np, "renew job NetworkPolicy is not deny-all")
    expect(renew_np["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "cert-renew", "renew selector")
    labels = cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    expect(labels["app.kubernetes.io/component"] == "cert-renew", "renew pod labels")
    # Existing Secret + existing claim: nothing extra is created.
    docs = rendered("cert-renew-existing")
    expect(not by_kind(docs, "PersistentVolumeClaim") and not by_kind(docs, "Secret"), "existing objects recreated")
    cj = one(docs, "CronJob")
    vols = {v["name"]: v for v in cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]}
    expect(vols["inner-tls"]["persistentVolumeClaim"]["claimName"] == "inner-tls", "existingClaim")
    expect(vols["inner-ca"]["secret"]["secretName"] == "mcp-tunnel-inner-ca", "CA existingSecret")
    expect(cj["spec"]["schedule"] == "0 4 * * 1", "schedule")
    args = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    expect(args[-1] == "1000h", "renewBefore")
    expect(not by_kind(rendered("standalone-default"), "CronJob"), "CronJob rendered while disabled")


def check_existing_secret() -> None:
    docs = rendered("existing-secret")
    expect(not by_kind(docs, "Secret"), "a Secret was rendered despite existingSecret")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    items = projected_items(pod["volumes"])
    expect(items["certs/tunnel/gateway.key"] == ("secret", "gw-certs", "tls.key"), f"items {items}")
    expect(items["certs/inner/server.pem"] == ("secret", "gw-certs", "inner.crt"), f"items {items}")
    ann = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    expect("checksum/config" in ann, "checksum/config")


def check_state_dir() -> None:
    for name, path, volume in [("state-dir", "/var/lib/mcp-tunnel", {"emptyDir": {"sizeLimit": "64Mi"}}),
                               ("state-dir-claim", "/state", {"persistentVolumeClaim": {"claimName": "gw-state"}})]:
        docs = rendered(name)
        _, cfg = gateway_toml(docs)
        expect(cfg.get("state_dir") == path, f"{name}: state_dir {cfg.get('state_dir')!r}")
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        mount = next((m for m in c["volumeMounts"] if m["mountPath"] == path), None)
        expect(mount is not None and not mount.get("readOnly"), f"{name}: no writable mount at {path}")
        vol = next((v for v in pod["volumes"] if v["name"] == mount["name"]), None)
        expect(vol is not None and {k: v for k, v in vol.items() if k != "name"} == volume, f"{name}: volume {vol}")
    _, cfg = gateway_toml(rendered("state-dir-claim"))
    expect(cfg["audit"] == {"sink": "file", "path": "/state/audit.jsonl"}, f"audit on the volume: {cfg['audit']}")
    _, cfg = gateway_toml(rendered("standalone-default"))
    expect("state_dir" not in cfg, "state_dir set without stateDir.enabled")
    expect(cfg["audit"] == {"sink": "stdout"}, f"default audit: {cfg['audit']}")


def check_several_routes() -> None:
    docs = rendered("several-routes")
    text, cfg = gateway_toml(docs)
    expect(cfg["tunnel_domain"] == "mcp.acme.example" and cfg["shutdown_timeout"] == "90s"
           and cfg["idle_timeout"] == "15m", "top-level keys")
    expect(cfg["edge"]["address"] == "edge.example.com:8443" and cfg["edge"]["server_name"] == "tunnel.example.com",
           "edge")
    expect(cfg["upstream"] == {"allowed_networks": ["10.20.0.0/16", "127.0.0.0/8"], "connect_timeout": "3s",
                               "timeout": "45s"}, f"upstream {cfg['upstream']}")
    want = [
        {"host": "tickets", "upstream": "http://10.20.0.5:8080"},
        {"host": "tools.mcp.acme.example", "upstream": "http://10.20.1.9:9000", "path_prefix": "/crm",
         "strip_prefix": True},
        {"host": "db", "upstream": "https://10.20.2.7:8443", "ca": "/etc/mcp-tunnel/certs/upstream/internal-ca.pem",
         "preserve_host": True, "timeout": "2m"},
        {"host": "wiki", "upstream": "http://10.20.3.3:80"},
    ]
    expect(cfg["routes"] == want, f"routes {cfg['routes']}")
    allowed_keys = {"tunnel_domain", "shutdown_timeout", "idle_timeout", "edge", "inner_tls", "upstream", "admin",
                    "audit", "routes"}
    expect(set(cfg) <= allowed_keys, f"unexpected top-level keys {set(cfg) - allowed_keys}")
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    expect(dep["spec"]["replicas"] == 3, "replicas")
    expect(pod["terminationGracePeriodSeconds"] == 105, f"grace {pod['terminationGracePeriodSeconds']}")
    expect("requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"], "required")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    expect(labels["team"] == "platform" and labels["app.kubernetes.io/name"] == "mcp-tunnel", f"labels {labels}")
    expect(pod["containers"][0]["image"] == "registry.example.com/mcp-tunnel@sha256:" + "ab" * 32, "digest")
    expect(pod["containers"][0]["args"][:4] == ["--log-level", "mcp_tunnel=debug,info", "--log-format", "json"],
           f"log flags {pod['containers'][0]['args']}")
    cm = one(docs, "ConfigMap", f"{FULL}-upstream-ca")
    expect(cm["data"]["internal-ca.pem"].strip() == INTERNAL_CA.strip(), "upstream CA ConfigMap")
    assert_config_paths_mounted(cfg, pod, pod["containers"][0])
    expect(one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1, "PDB")
    expect(not by_kind(rendered("single-replica"), "PodDisruptionBudget"), "PDB with a single replica")


def with_fd2_captured(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Runs fn with file descriptor 2 redirected (Helm's Go logger writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def check_lint() -> None:
    # Defaults alone: Helm lints in "lint mode", where `required` only logs a warning.
    report, log = with_fd2_captured(lambda: helm.lint(str(CHART)))
    expect(not report["errors"], f"lint defaults: errors {report['errors']}")
    for needed in ["config.tunnelDomain is required", "config.edge.address is required", "certs.gatewayKey"]:
        expect(needed in log, f"lint of the defaults does not report {needed!r}: {log}")
    for label, values in [("standalone", VALUE_SETS["standalone-default"]),
                          ("sidecar", VALUE_SETS["sidecar"]), ("cert-renew", VALUE_SETS["cert-renew"]),
                          ("several-routes", VALUE_SETS["several-routes"])]:
        report = helm.lint(str(CHART), values)
        expect(not report["errors"], f"lint {label}: errors {report['errors']}")
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        expect(not serious, f"lint {label}: {serious}")
    report = helm.lint(str(CHART), VALUE_SETS["standalone-default"], strict=True)
    expect(not report["errors"], f"lint --strict: {report['errors']}")


def check_schema_accepts() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        for name, values in VALUE_SETS.items():
            chart.validate_schema(values)
        chart.validate_schema({})


BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    # (what, values merged over BASE, where the schema must point)
    ("unknown mode", {"mode": "daemonset"}, "/mode"),
    ("unknown top-level key", {"replicas": 3}, "'replicas' not allowed"),
    ("unknown config key", {"config": {"tunnel_domain": "x.example"}}, "'tunnel_domain' not allowed"),
    ("snake_case route key", {"config": {"routes": [{"host": "a", "upstream": "http://10.0.0.1:1",
                                                     "path_prefix": "/x"}]}}, "'path_prefix' not allowed"),
    ("standalone route without upstream", {"config": {"routes": [{"host": "a"}]}}, "missing property 'upstream'"),
    ("upstream with a path", {"config": {"routes": [{"host": "a", "upstream": "http://10.0.0.1:80/mcp"}]}},
     "/config/routes/0/upstream"),
    ("upstream scheme", {"config": {"routes": [{"host": "a", "upstream": "tcp://10.0.0.1:80"}]}},
     "/config/routes/0/upstream"),
    ("duration without unit", {"config": {"upstream": {"timeout": "30"}}}, "/config/upstream/timeout"),
    ("shutdown timeout as string", {"config": {"shutdownTimeoutSeconds": "30s"}}, "/config/shutdownTimeoutSeconds"),
    ("key given as a path", {"certs": {"gatewayKey": "certs/tunnel/gateway.key"}}, "/certs/gatewayKey"),
    ("replicaCount 0", {"replicaCount": 0}, "/replicaCount"),
    ("SCTP edge protocol", {"networkPolicy": {"edge": {"protocols": ["SCTP"]}}}, "/networkPolicy/edge/protocols/0"),
    ("upstream rule without ports", {"networkPolicy": {"upstreams": [{"cidr": "10.0.0.0/8"}]}},
     "missing property 'ports'"),
    ("upstream rule with cidr and podSelector",
     {"networkPolicy": {"upstreams": [{"cidr": "10.0.0.0/8", "podSelector": {}, "ports": [80]}]}},
     "/networkPolicy/upstreams/0"),
    ("bad admin listen", {"config": {"admin": {"listen": "9090"}}}, "/config/admin/listen"),
    ("securityContext override", {"securityContext": {"runAsUser": 0}}, "'securityContext' not allowed"),
    ("renewBefore in days", {"certRenew": {"renewBefore": "30d"}}, "/certRenew/renewBefore"),
    ("unknown certRenew key", {"certRenew": {"enabled": True, "image": "x"}}, "'image' not allowed"),
    ("anti-affinity typo", {"podAntiAffinity": "soft"}, "/podAntiAffinity"),
    ("unknown log format", {"logFormat": "logfmt"}, "/logFormat"),
    ("upstream CA that is not a certificate", {"upstreamCAs": {"ca.pem": "hello"}}, "/upstreamCAs/ca.pem"),
]


def check_schema_rejects() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        for label, bad, where in BAD_VALUES:
            values = merged(bad)
            try:
                chart.validate_schema(values)
            except helm.HelmError as exc:
                expect(where in str(exc), f"{label}: rejected, but not for {where!r}: {exc}")
            else:
                raise AssertionError(f"schema accepted: {label}: {bad}")
            try:
                chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
            except helm.HelmError:
                pass
            else:
                raise AssertionError(f"render accepted: {label}")


def check_render_rejects() -> None:
    """Values the schema allows (defaults are empty) but the templates refuse with a message."""
    cases = [
        ("no tunnelDomain", merged({"config": {"tunnelDomain": ""}}), "config.tunnelDomain is required"),
        ("no edge address", merged({"config": {"edge": {"address": ""}}}), "config.edge.address is required"),
        ("no routes", merged({"config": {"routes": []}}), "config.routes is empty"),
        ("no gateway key", merged({"certs": {"gatewayKey": ""}}), "certs.gatewayKey is required"),
        ("unknown upstream CA", merged({"config": {"routes": [{"host": "a", "upstream": "https://10.0.0.1:1",
                                                               "ca": "nope.pem"}]}}), "neither a key"),
        ("renewal without CA", merged({"certRenew": {"enabled": True}}), "certRenew.ca.caCert is required"),
        ("audit file without a volume", merged({"config": {"audit": {"sink": "file"}}}),
         "writes to the stateDir volume: set stateDir.enabled"),
    ]
    with helm.Chart.load(str(CHART)) as chart:
        for label, values, message in cases:
            try:
                chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
            except helm.HelmError as exc:
                expect(message in str(exc), f"{label}: error does not say {message!r}: {exc}")
            else:
                raise AssertionError(f"render accepted: {label}")


def check_kubernetes_validate() -> None:
    kv = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubernetes-validate")
    expect(kv, "kubernetes-validate not installed (pip install -r tests/deploy/requirements.txt)")
    out_dir = WORK / "manifests"
    files = []
    for set_name in VALUE_SETS:
        for path, objs in rendered(set_name).items():
            for i, obj in enumerate(objs):
                f = out_dir / set_name / f"{Path(path).stem}-{i}.yaml"
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(yaml.safe_dump(obj, sort_keys=False))
                files.append(f)
    for set_name in ["sidecar", "sidecar-no-fsgroup"]:
        f = out_dir / set_name / "patched-mcp-server-deployment.yaml"
        f.write_text(yaml.safe_dump(sidecar_patched_deployment(set_name), sort_keys=False))
        files.append(f)
    for kube in KUBE_VERSIONS:
        proc = subprocess.run([kv, "--strict", "--quiet", "-k", kube, *map(str, files)],
                              capture_output=True, text=True)
        expect(proc.returncode == 0, f"kubernetes-validate {kube}:\n{proc.stdout}{proc.stderr}")
    notes.append(f"kubernetes-validate --strict: {len(files)} objects valid against {', '.join(KUBE_VERSIONS)}")


def gateway_container(docs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The gateway container: the Deployment's, or the sidecar snippet's."""
    deps = by_kind(docs, "Deployment")
    if deps:
        pod = deps[0]["spec"]["template"]["spec"]
    else:
        snippet = yaml.safe_load(one(docs, "ConfigMap", f"{FULL}-sidecar-snippet")["data"]["snippet.yaml"])
        pod = snippet["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "mcp-tunnel")


def check_binary_accepts_configs() -> None:
    """`mcp-tunnel check` on every rendered gateway.toml, paths mapped onto a real PKI."""
    has_admin = subprocess.run([str(BIN), "probe", "--help"], capture_output=True).returncode == 0
    root = WORK / "fs"
    layout = {
        "etc/mcp-tunnel/certs/edge/ca.pem": "edge/ca.pem",
        "etc/mcp-tunnel/certs/tunnel/gateway.pem": "tunnel/gateway.pem",
        "etc/mcp-tunnel/certs/tunnel/gateway.key": "tunnel/gateway.key",
        "etc/mcp-tunnel/certs/inner/server.pem": "inner/server.pem",
        "etc/mcp-tunnel/certs/inner/server.key": "inner/server.key",
        "var/lib/mcp-tunnel/inner/server.pem": "inner/server.pem",
        "var/lib/mcp-tunnel/inner/server.key": "inner/server.key",
        "etc/mcp-tunnel/certs/upstream/internal-ca.pem": "edge/ca.pem",
    }
    for dst, src in layout.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PKI / src, root / dst)
    for set_name in VALUE_SETS:
        text, _ = gateway_toml(rendered(set_name))
        text = re.sub(r'"/(etc|var)/', lambda m: f'"{root}/{m.group(1)}/', text)
        if not has_admin:
            text = re.sub(r"\n\[admin\]\n(#[^\n]*\n)?listen = [^\n]*\n", "\n", text)
        f = root / f"{set_name}.toml"
        f.write_text(text)
        # The container's own arguments (global flags included), with `check` for `gateway`.
        args = [{"gateway": "check", "/etc/mcp-tunnel/gateway.toml": str(f)}.get(a, a)
                for a in gateway_container(rendered(set_name))["args"]]
        proc = subprocess.run([str(BIN), *args], capture_output=True, text=True)
        expect(proc.returncode == 0, f"{set_name}: mcp-tunnel {args} failed:\n{proc.stdout}{proc.stderr}")
        for cj in by_kind(rendered(set_name), "CronJob"):
            # The renewal job's arguments on a copy of the inner CA and pair: not due yet.
            (c,) = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            inner = root / f"{set_name}-inner"
            shutil.copytree(PKI / "inner", inner, dirs_exist_ok=True)
            args = [str(inner) if a.startswith("/var/lib/") else a for a in c["args"]]
            proc = subprocess.run([str(BIN), *args], capture_output=True, text=True)
            expect(proc.returncode == 0 and "not due" in proc.stdout,
                   f"{set_name}: mcp-tunnel {args}:\n{proc.stdout}{proc.stderr}")
    if not has_admin:
        notes.append(f"{BIN} has no `probe` subcommand yet: [admin] was removed before `mcp-tunnel check`")


def main() -> int:
    print(f"chart: {CHART}")
    print(f"helm-python-sdk {helm.__version__} (Helm SDK {helm.helm_sdk_version()})")
    check("lint (defaults and four value sets): no errors or warnings", check_lint)
    check("schema accepts every value set used here", check_schema_accepts)
    check(f"schema rejects {len(BAD_VALUES)} kinds of invalid values", check_schema_rejects)
    check("templates refuse missing required values with a clear message", check_render_rejects)
    check("standalone: Deployment, PDB, anti-affinity, hardening, exec probes, mounts", check_standalone_default)
    check("checksum annotations follow the config and the certificates", check_checksum)
    check("NetworkPolicy: egress only (edge, DNS, upstreams), no ingress rules", check_network_policy)
    check("sidecar: no Deployment, snippet container hardened with exec probes", check_sidecar)
    check("certRenew: CronJob, PVC, CA only in the job, deny-all policy", check_cert_renew)
    check("existingSecret: no Secret rendered, custom key names mounted", check_existing_secret)
    check("stateDir: state_dir and a file audit trail on a writable emptyDir or claim", check_state_dir)
    check("several routes: gateway.toml routes, upstream CAs, replicas, grace", check_several_routes)
    check("kubernetes-validate --strict on every rendered object", check_kubernetes_validate)
    if BIN:
        check(f"the binary accepts every rendered gateway.toml and container arguments ({BIN.name})",
              check_binary_accepts_configs)
    else:
        print("SKIP `mcp-tunnel check` of the rendered configs: no binary (set MCPT_BIN or build target/release)")
    for n in notes:
        print(f"note: {n}")
    if failed == 0 and not os.environ.get("KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    else:
        print(f"rendered manifests kept in {WORK}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
