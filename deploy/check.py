"""Offline checks of deploy/ for `make lint`: nothing here needs a cluster, a Prometheus or a Grafana.

- Kubernetes: every object of deploy/kubernetes/lms.yaml validates against the Kubernetes
  OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors) for the oldest and
  newest versions we support; the operators' kinds (RabbitmqCluster, the topology operator's
  User, Permission and TopicPermission, CloudNativePG Cluster, ServiceMonitor, PrometheusRule),
  which it has no schema for, against deploy/kubernetes/schemas/.
  Then what no schema sees: names that refer to each other (selectors, ports, Secrets, HPA
  targets), probes, security settings, and one Deployment per line of the Procfile.
- Prometheus: alerts.yml is well formed and names only metrics the suite or its exporters
  serve (promtool, when installed, parses and unit-tests the rules: see the Makefile).
- Grafana: the provisioning files and the dashboard fit together, and every panel has a query;
  with promtool installed, every query is parsed as PromQL too.
- docker-compose.yml mounts files that exist.

Exit status 1 with one line per problem; otherwise a summary.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = DEPLOY / "kubernetes" / "lms.yaml"
SCHEMAS = DEPLOY / "kubernetes" / "schemas"
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
CRD_SCHEMAS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("rabbitmq.com/v1beta1", "User"): "rabbitmq-user.json#/$defs/user",
    ("rabbitmq.com/v1beta1", "Permission"): "rabbitmq-user.json#/$defs/permission",
    ("rabbitmq.com/v1beta1", "TopicPermission"): "rabbitmq-user.json#/$defs/topicPermission",
}
# Metric name prefixes a rule or panel may use: the suite's, RabbitMQ's plugin, kube-state-metrics.
METRIC_PREFIXES = ("lms_", "rabbitmq_", "kube_")
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring", "and", "or", "unless", "rate",
    "increase", "irate", "histogram_quantile", "vector", "absent", "le", "bool", "group_left", "group_right",
    "offset", "topk", "bottomk", "label_values", "up",
}  # fmt: skip

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- Kubernetes ---------------------------------------------------------------------------------


def crd_registry() -> Registry:
    resources = [(path.name, Resource.from_contents(json.loads(path.read_text()))) for path in SCHEMAS.glob("*.json")]
    return Registry().with_resources(resources)


def validate_schemas(docs: list[dict[str, Any]]) -> dict[str, int]:
    registry = crd_registry()
    counted = {"kubernetes": 0, "operators": 0}
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in CRD_SCHEMAS:
            validator = jsonschema.Draft202012Validator({"$ref": CRD_SCHEMAS[key]}, registry=registry)
            for error in validator.iter_errors(doc):
                path = ".".join(str(part) for part in error.absolute_path)
                problem(name_of(doc), f"{path}: {error.message}")
            counted["operators"] += 1
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                problem(name_of(doc), f"Kubernetes {error.version}: {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                problem(name_of(doc), f"no schema for {key} in Kubernetes {version} nor in {SCHEMAS.name}/")
        counted["kubernetes"] += 1
    return counted


Objects = dict[str, dict[str, dict[str, Any]]]  # kind -> name -> object


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def check_references(docs: list[dict[str, Any]]) -> None:
    """What the schemas cannot see: every name that refers to another object resolves."""
    objects: Objects = {}
    for doc in docs:
        objects.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            check_pod(name_of(doc), doc, objects)
    check_probes(objects.get("Deployment", {}))
    check_services(objects)
    check_scaling(objects)
    check_monitors(objects)
    check_broker_users(objects)
    databases = {c["spec"]["bootstrap"]["initdb"]["database"] for c in objects.get("Cluster", {}).values()}
    check_processes(objects.get("Deployment", {}), objects.get("Job", {}), databases)


def check_pod(where: str, owner: dict[str, Any], objects: Objects) -> None:
    template = owner["spec"]["template"]
    if owner["kind"] == "Deployment" and not matches(owner["spec"]["selector"]["matchLabels"], pod_labels(owner)):
        problem(where, "selector does not match the pod template's labels")
    pod = template["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problem(where, "pod does not set runAsNonRoot")
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for volume in volumes.values():
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in objects.get("PersistentVolumeClaim", {}):
            problem(where, f"volume {volume['name']} claims missing PVC {claim}")
    for container in pod.get("initContainers", []) + pod["containers"]:
        cwhere = f"{where} container {container['name']}"
        security = container.get("securityContext", {})
        if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "needs readOnlyRootFilesystem and allowPrivilegeEscalation: false")
        resources = container.get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})) or "memory" not in resources.get("limits", {}):
            problem(cwhere, "needs cpu and memory requests and a memory limit")
        mounts = {mount["name"]: mount["mountPath"] for mount in container.get("volumeMounts", [])}
        if set(mounts) - set(volumes):
            problem(cwhere, f"mounts undeclared volumes {sorted(set(mounts) - set(volumes))}")
        if "/var/lib/lms" not in mounts.values():
            problem(cwhere, "LMS_VAR_DIR (/var/lib/lms) is not a writable volume")
        check_environment(cwhere, container, objects)


def check_environment(where: str, container: dict[str, Any], objects: Objects) -> None:
    # Secrets the operators create: <RabbitmqCluster>-default-user, <User>-user-credentials and
    # <Cluster>-app. lms-bootstrap is made by hand (README) and optional, so envFrom secretRef is
    # not checked.
    secrets = {f"{name}-default-user" for name in objects.get("RabbitmqCluster", {})}
    secrets |= {f"{name}-user-credentials" for name in objects.get("User", {})}
    secrets |= {f"{name}-app" for name in objects.get("Cluster", {})}
    hosts = set(objects.get("RabbitmqCluster", {})) | {f"{name}-rw" for name in objects.get("Cluster", {})}
    for source in container.get("envFrom", []):
        if "configMapRef" in source and source["configMapRef"]["name"] not in objects.get("ConfigMap", {}):
            problem(where, f"envFrom names missing ConfigMap {source['configMapRef']['name']}")
    defined: set[str] = set()
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] not in secrets:
            problem(where, f"{item['name']} reads Secret {ref['name']}, which no operator creates")
        # Kubernetes expands $(VAR) only from entries listed before this one
        for variable in set(re.findall(r"\$\((\w+)\)", item.get("value", ""))) - defined:
            problem(where, f"{item['name']} expands $({variable}), which is not defined before it")
        for host in re.findall(r"@([\w.-]+):\d+", item.get("value", "")):
            if host not in hosts:
                problem(where, f"{item['name']} connects to {host}, which no operator serves")
        defined.add(item["name"])


def check_broker_users(objects: Objects) -> None:
    """Every grant names a User and the RabbitmqCluster; every service's processes connect as
    their own user, never as the cluster's administrator."""
    clusters, users = set(objects.get("RabbitmqCluster", {})), set(objects.get("User", {}))
    for kind in ("User", "Permission", "TopicPermission"):
        for name, grant in objects.get(kind, {}).items():
            if grant["spec"]["rabbitmqClusterReference"]["name"] not in clusters:
                problem(f"{kind}/{name}", "names a RabbitmqCluster that does not exist")
            reference = grant["spec"].get("userReference", {}).get("name")
            if kind != "User" and reference not in users:
                problem(f"{kind}/{name}", f"grants to User {reference}, which does not exist")
    for kind in ("Deployment", "Job"):
        for name, owner in objects.get(kind, {}).items():
            service = owner["metadata"]["labels"].get("app.kubernetes.io/name")
            pod = owner["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                for item in container.get("env", []):
                    secret = item.get("valueFrom", {}).get("secretKeyRef", {}).get("name", "")
                    if secret.endswith("-default-user") or (
                        secret.endswith("-user-credentials") and secret != f"lms-{service}-user-credentials"
                    ):
                        problem(f"{kind}/{name}", f"connects to the broker with Secret {secret}, not its own user")


def check_probes(deployments: dict[str, Any]) -> None:
    for name, deployment in deployments.items():
        process = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        probes = {kind: container.get(kind, {}) for kind in ("livenessProbe", "readinessProbe")}
        paths = {kind: probe.get("httpGet", {}).get("path") for kind, probe in probes.items()}
        if process == "api":
            if paths["readinessProbe"] != "/readyz" or paths["livenessProbe"] != "/healthz":
                problem(f"Deployment/{name}", "an API needs readiness on /readyz and liveness on /healthz")
        elif (
            probes["livenessProbe"].get("tcpSocket", probes["livenessProbe"].get("httpGet", {})).get("port")
            != "metrics"
        ):
            problem(f"Deployment/{name}", "a worker or relay needs a liveness probe on its metrics port")


def check_services(objects: Objects) -> None:
    deployments = objects.get("Deployment", {}).values()
    for name, service in objects.get("Service", {}).items():
        targets = [d for d in deployments if matches(service["spec"]["selector"], pod_labels(d))]
        if len(targets) != 1:
            problem(f"Service/{name}", f"selects {len(targets)} Deployments, not 1")
            continue
        container = targets[0]["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            if ports.get(port["targetPort"]) != port["port"]:
                problem(f"Service/{name}", f"port {port['port']} -> {port['targetPort']} is not a container port")


def check_scaling(objects: Objects) -> None:
    """APIs and workers autoscale, relays do not; every Deployment has exactly one budget."""
    deployments = objects.get("Deployment", {})
    scaled = set()
    for name, hpa in objects.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        scaled.add(target)
        if target not in deployments:
            problem(f"HorizontalPodAutoscaler/{name}", f"scales missing Deployment {target}")
    for name, deployment in deployments.items():
        process = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        if (process in ("api", "worker")) != (name in scaled):
            problem(f"Deployment/{name}", "APIs and workers need an HPA, relays must not have one")
        if name in scaled and "replicas" in deployment["spec"]:
            problem(f"Deployment/{name}", "sets replicas although an HPA owns them (a re-apply would reset it)")
        budgets = objects.get("PodDisruptionBudget", {}).values()
        covering = [b for b in budgets if matches(b["spec"]["selector"]["matchLabels"], pod_labels(deployment))]
        if len(covering) != 1:
            problem(f"Deployment/{name}", f"is covered by {len(covering)} PodDisruptionBudgets, not 1")


def check_monitors(objects: Objects) -> None:
    for name, monitor in objects.get("ServiceMonitor", {}).items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        if selector.get("app.kubernetes.io/component") == "rabbitmq":
            continue  # the operator's own Service, whose port is "prometheus"
        selected = [s for s in objects.get("Service", {}).values() if matches(selector, s["metadata"]["labels"])]
        if not selected:
            problem(f"ServiceMonitor/{name}", "selects no Service")
        for endpoint in monitor["spec"]["endpoints"]:
            for service in selected:
                if endpoint["port"] not in {port["name"] for port in service["spec"]["ports"]}:
                    problem(f"ServiceMonitor/{name}", f"{service['metadata']['name']} has no port {endpoint['port']}")


def check_processes(deployments: dict[str, Any], jobs: dict[str, Any], databases: set[str]) -> None:
    """One Deployment per Procfile line, running that command, on the port lms_common says."""
    from lms_common.config import API_PORTS

    offsets = {"api": 0, "worker": 100, "relay": 200}
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    for name, command in procfile.items():
        service, process = command.split()[-2:]
        deployment = deployments.get(name)
        if deployment is None:
            problem("Procfile", f"{name} has no Deployment")
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if container["args"] != [service, process]:
            problem(f"Deployment/{name}", f"runs {container['args']}, the Procfile says {[service, process]}")
        port = container["ports"][0]["containerPort"]
        if port != API_PORTS[service] + offsets[process]:
            problem(f"Deployment/{name}", f"port {port}, lms_common says {API_PORTS[service] + offsets[process]}")
    for name in set(deployments) - set(procfile):
        problem(f"Deployment/{name}", "is not in the Procfile")
    for service in API_PORTS:
        if f"{service}-migrate" not in jobs:
            problem(service, "has no migration Job")
        if service not in databases:
            problem(service, "has no CloudNativePG Cluster with its database")


def check_kubernetes() -> int:
    docs = [doc for doc in yaml.safe_load_all(MANIFESTS.read_text()) if doc]
    counted = validate_schemas(docs)
    check_references(docs)
    print(
        f"{MANIFESTS.relative_to(ROOT)}: {counted['kubernetes']} objects checked against Kubernetes "
        f"{' and '.join(KUBERNETES_VERSIONS)} schemas (strict), {counted['operators']} operator objects "
        f"against {SCHEMAS.relative_to(ROOT)}/"
    )
    return len(docs)


# --- Prometheus and Grafana ---------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Identifiers of an expression that look like metric names (outside strings and braces)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", bare))
    return {word for word in words if word not in PROMQL_WORDS and not word.startswith("$")}


def check_expr(where: str, expr: Any) -> None:
    if not isinstance(expr, str) or not expr.strip():
        problem(where, "empty expression")
        return
    for name in metric_names(expr):
        if not name.startswith(METRIC_PREFIXES) and name != "up":
            problem(where, f"unknown metric {name!r} (not lms_*, rabbitmq_*, kube_* or up)")


def check_alerts() -> list[str]:
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    if "alerts.yml" not in prometheus.get("rule_files", []):
        problem("prometheus.yml", "does not load alerts.yml")
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            where = f"alerts.yml {rule.get('alert', '?')}"
            if not rule.get("alert") or rule.get("labels", {}).get("severity") not in ("critical", "warning"):
                problem(where, "needs a name and severity critical or warning")
            if not rule.get("annotations", {}).get("summary"):
                problem(where, "needs a summary annotation")
            check_expr(where, rule.get("expr"))
            exprs.append(str(rule.get("expr")))
    print(f"deploy/prometheus/alerts.yml: {len(exprs)} alert rules well formed")
    return exprs


def check_grafana() -> list[str]:
    grafana = DEPLOY / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "lms.yml").read_text())
    paths = {provider["options"]["path"] for provider in providers["providers"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"].get("grafana", {}).get("volumes", [])}
    for path in paths:
        if mounts.get(path) != "./deploy/grafana/dashboards":
            problem("docker-compose.yml", f"grafana does not mount deploy/grafana/dashboards at {path}")
    exprs = []
    for path in sorted((grafana / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        ids = [panel["id"] for panel in dashboard["panels"]]
        if len(ids) != len(set(ids)):
            problem(path.name, "panel ids repeat")
        for panel in dashboard["panels"]:
            if panel["type"] == "row":
                continue
            where = f"{path.name} panel {panel['title']!r}"
            if panel.get("datasource", {}).get("uid") not in uids or not panel.get("targets"):
                problem(where, f"needs targets and a provisioned data source ({', '.join(sorted(uids))})")
            for target in panel.get("targets", []):
                check_expr(where, target.get("expr"))
                exprs.append(str(target.get("expr")))
    print(f"deploy/grafana: {len(exprs)} dashboard queries on data source(s) {', '.join(sorted(uids))}")
    return exprs


def parse_with_promtool(exprs: list[str]) -> None:
    """promtool parses rule files only: wrap every dashboard query in a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not installed: dashboard queries not parsed (apt-get install prometheus)")
        return
    grafana_vars = {"$__rate_interval": "5m", "$__interval": "1m", "$service": ".*"}
    rules = []
    for i, expr in enumerate(exprs):
        query = expr
        for variable, value in grafana_vars.items():
            query = query.replace(variable, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": query})
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as handle:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, handle)
        handle.flush()
        result = subprocess.run([promtool, "check", "rules", handle.name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        problem("grafana dashboards", "promtool rejects a query:\n" + result.stdout + result.stderr)
    else:
        print(f"promtool: {len(exprs)} dashboard queries parse")


def check_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not (ROOT / source).exists():
                problem(f"docker-compose.yml {name}", f"mounts missing {source}")


def main() -> int:
    check_kubernetes()
    check_alerts()
    parse_with_promtool(check_grafana())
    check_compose()
    for line in problems:
        print(f"deploy: {line}", file=sys.stderr)
    if problems:
        print(f"deploy: {len(problems)} problems", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
