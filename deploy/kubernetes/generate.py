"""Write deploy/kubernetes/lms.yaml: the whole suite on Kubernetes, from the tables below.

    python deploy/kubernetes/generate.py           # rewrite lms.yaml
    python deploy/kubernetes/generate.py --check   # fail if lms.yaml is not what this writes (make lint)

Fourteen Deployments differ only by service, process type and port, so they are generated
rather than copied by hand; lms.yaml is committed so that `kubectl apply` needs no Python.
Needs the RabbitMQ cluster and messaging topology operators, CloudNativePG and the Prometheus
operator (README).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from lms_common.broker_users import BrokerUser
from lms_common.broker_users import load as load_broker_users

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
OUTPUT = HERE / "lms.yaml"

NAMESPACE = "lms"
IMAGE = "lms-suite:latest"  # `kustomize edit set image lms-suite=<registry>/lms-suite:<tag>` (README)
RABBITMQ = "lms-rabbitmq"  # the RabbitmqCluster; its operator creates Service lms-rabbitmq and Secret ...-default-user
VHOST = "/"
USER_ID = 10001  # the Dockerfile's `lms` user

# service -> API port and process types (the Procfile's; reporting publishes nothing, so no relay).
SERVICES: dict[str, dict[str, Any]] = {
    "identity": {"port": 8001, "processes": ("api", "worker", "relay")},
    "catalog": {"port": 8002, "processes": ("api", "worker", "relay")},
    "enrollment": {"port": 8003, "processes": ("api", "worker", "relay")},
    "automation": {"port": 8004, "processes": ("api", "worker", "relay")},
    "reporting": {"port": 8005, "processes": ("api", "worker")},
}

# Sizes per process type. APIs and workers scale on CPU (HPA); one relay per service is plenty
# (7,000 events/s measured) and more would only compete for the same outbox rows.
PROCESSES: dict[str, dict[str, Any]] = {
    "api": {
        "port_offset": 0,
        "replicas": 2,
        "max_replicas": 10,
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
        "grace": 30,  # gunicorn's graceful_timeout is 20 s, plus the preStop pause
    },
    "worker": {
        "port_offset": 100,
        "replicas": 2,
        "max_replicas": 8,
        "requests": {"cpu": "200m", "memory": "192Mi"},
        "limits": {"cpu": "1", "memory": "384Mi"},
        "grace": 60,  # SIGTERM lets the worker finish and ack the batch in hand
    },
    "relay": {
        "port_offset": 200,
        "replicas": 1,
        "max_replicas": None,
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "grace": 30,
    },
}

# Per service's PostgreSQL: its own CloudNativePG cluster (services never share tables, and each
# fails over and is sized on its own); a primary and one standby.
DB_INSTANCES = 2
DB_STORAGE = "10Gi"

# catalog keeps uploaded SCORM packages under LMS_VAR_DIR and any API replica may serve them, so
# its APIs share one ReadWriteMany volume; every other process only needs scratch space.
SHARED_CONTENT = {"catalog": "20Gi"}

# Not secret: the LMS_* settings every process reads (README, "Processes, ports and configuration").
CONFIG = {
    # The issuer is what browsers and clients see: set it to identity's public URL (Ingress).
    "LMS_ISSUER": f"http://identity-api.{NAMESPACE}.svc:8001",
    "LMS_JWKS_URL": "http://identity-api:8001/.well-known/jwks.json",
    "LMS_EXCHANGE": "lms.events",
    "LMS_LOG_LEVEL": "INFO",
    "LMS_API_WORKERS": "2",
    "LMS_API_THREADS": "4",
    "LMS_VAR_DIR": "/var/lib/lms",
    "LMS_METRICS_ADDR": "0.0.0.0",  # noqa: S104 - worker and relay /metrics must answer the kubelet and Prometheus
    "PYTHONDONTWRITEBYTECODE": "1",  # the root filesystem is read-only
}


def labels(service: str, process: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/component": process,
        "app.kubernetes.io/part-of": "lms",
    }


def selector(service: str, process: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/component": process}


def meta(name: str, service: str | None = None, process: str | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    result["labels"] = labels(service, process) if service and process else {"app.kubernetes.io/part-of": "lms"}
    result.update(extra)
    return result


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def environment(service: str, process: str, port: int) -> list[dict[str, Any]]:
    """Credentials come from the operators' Secrets; Kubernetes expands $(VAR) from earlier entries."""
    env = [
        # the service's own least-privilege broker user (deploy/rabbitmq/users.json), whose
        # credentials the topology operator writes to Secret <user>-user-credentials
        secret_env("RABBITMQ_USERNAME", f"lms-{service}-user-credentials", "username"),
        secret_env("RABBITMQ_PASSWORD", f"lms-{service}-user-credentials", "password"),
        {
            "name": f"LMS_{service.upper()}_AMQP_URL",
            "value": f"amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{RABBITMQ}:5672/%2F",
        },
        secret_env("DATABASE_USERNAME", f"{service}-db-app", "username"),
        secret_env("DATABASE_PASSWORD", f"{service}-db-app", "password"),
        {
            "name": f"LMS_{service.upper()}_DATABASE_URL",
            "value": f"postgresql+psycopg://$(DATABASE_USERNAME):$(DATABASE_PASSWORD)@{service}-db-rw:5432/{service}",
        },
    ]
    if process == "api":
        env.append({"name": "LMS_BIND", "value": f"0.0.0.0:{port}"})
    return env


def container(service: str, process: str, command: str, port: int | None) -> dict[str, Any]:
    sizes = PROCESSES.get(process, PROCESSES["relay"])
    result: dict[str, Any] = {
        "name": command,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": [service, command],  # the image's entrypoint is `python -m`
        "envFrom": [{"configMapRef": {"name": "lms-config"}}],
        "env": environment(service, process, port or SERVICES[service]["port"]),
        "resources": {"requests": sizes["requests"], "limits": sizes["limits"]},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # the pod's own emptyDir, not a shared /tmp
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "var", "mountPath": "/var/lib/lms"}],  # noqa: S108
    }
    if port is not None:
        name = "http" if process == "api" else "metrics"
        result["ports"] = [{"name": name, "containerPort": port, "protocol": "TCP"}]
    return result


def pod_spec(service: str, process: str, containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    shared = process == "api" and service in SHARED_CONTENT
    var = (
        {"name": "var", "persistentVolumeClaim": {"claimName": f"{service}-content"}}
        if shared
        else {"name": "var", "emptyDir": {"sizeLimit": "256Mi"}}
    )
    return {
        "automountServiceAccountToken": False,  # no process talks to the Kubernetes API
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        # /tmp holds gunicorn's heartbeat files and the prometheus multiprocess directory
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}, var],
        **extra,
    }


def deployment(service: str, process: str) -> dict[str, Any]:
    sizes = PROCESSES[process]
    port = SERVICES[service]["port"] + sizes["port_offset"]
    main = container(service, process, process, port)
    if process == "api":
        main["startupProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 30,
        }
        main["livenessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
        }
        # /readyz checks the database and the broker: an API that cannot reach them gets no traffic
        main["readinessProbe"] = {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        }
        # let the endpoints controller take the pod out of the Service before gunicorn stops
        main["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    else:
        # workers and relays listen only for /metrics. A TCP check, not GET /metrics: reporting's
        # metrics query its database, and a database outage must not restart the workers
        main["livenessProbe"] = {
            "tcpSocket": {"port": "metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 15,
            "timeoutSeconds": 5,
        }
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(service, process)},
        }
    ]
    # where an HPA owns the replica count, leave it out so that a re-apply does not reset it
    replicas = {} if sizes["max_replicas"] else {"replicas": sizes["replicas"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(f"{service}-{process}", service, process),
        "spec": {
            **replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(service, process)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(service, process)},
                "spec": pod_spec(
                    service,
                    process,
                    [main],
                    terminationGracePeriodSeconds=sizes["grace"],
                    topologySpreadConstraints=spread,
                ),
            },
        },
    }


def service_object(service: str, process: str) -> dict[str, Any]:
    """APIs for clients; workers and relays only so that ServiceMonitors find their /metrics."""
    port = SERVICES[service]["port"] + PROCESSES[process]["port_offset"]
    name = "http" if process == "api" else "metrics"
    spec: dict[str, Any] = {
        "selector": selector(service, process),
        "ports": [{"name": name, "port": port, "targetPort": name, "protocol": "TCP"}],
    }
    if process != "api":
        spec["clusterIP"] = "None"  # headless: nothing load-balances to a metrics port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(f"{service}-{process}", service, process),
        "spec": spec,
    }


def autoscaler(service: str, process: str) -> dict[str, Any]:
    sizes = PROCESSES[process]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(f"{service}-{process}", service, process),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{service}-{process}"},
            "minReplicas": sizes["replicas"],
            "maxReplicas": sizes["max_replicas"],
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            # scale down slowly: consumers rebalance and APIs keep warm connections
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def disruption_budget(service: str, process: str) -> dict[str, Any]:
    # maxUnavailable, not minAvailable: a one-replica relay must not block node drains
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(f"{service}-{process}", service, process),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(service, process)}},
    }


def migration_job(service: str) -> dict[str, Any]:
    """`migrate` then `topology`, once per apply; the Deployments wait for nothing, so they restart
    until the schema exists (README: apply, then wait for the Jobs)."""
    migrate = container(service, "migrate", "migrate", None)
    topology = container(service, "migrate", "topology", None)
    if service == "identity":
        # the first organization's super admin and client (README); without it identity generates
        # them and prints them in this Job's log, which is deleted with the Job
        migrate["envFrom"].append({"secretRef": {"name": "lms-bootstrap", "optional": True}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"{service}-migrate", service, "migrate"),
        "spec": {
            "backoffLimit": 10,  # the database and the broker may still be starting
            "ttlSecondsAfterFinished": 600,  # a Job's pod template is immutable: gone before the next apply
            "template": {
                "metadata": {"labels": labels(service, "migrate")},
                "spec": pod_spec(service, "migrate", [topology], initContainers=[migrate], restartPolicy="OnFailure"),
            },
        },
    }


def database(service: str) -> dict[str, Any]:
    """CloudNativePG creates database <service> owned by <service>, Services <service>-db-rw/-ro and
    Secret <service>-db-app (username, password)."""
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": meta(f"{service}-db", service, "database"),
        "spec": {
            "instances": DB_INSTANCES,
            "primaryUpdateStrategy": "unsupervised",
            "storage": {"size": DB_STORAGE},
            "bootstrap": {"initdb": {"database": service, "owner": service}},
            "postgresql": {"parameters": {"max_connections": "200"}},
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        },
    }


def content_volume(service: str, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(f"{service}-content", service, "api"),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }


def rabbitmq() -> dict[str, Any]:
    """Three nodes so that the services' quorum queues survive losing one."""
    return {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": meta(RABBITMQ),
        "spec": {
            "replicas": 3,
            "image": "rabbitmq:3.13-management",
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
            "persistence": {"storage": "20Gi"},
            "rabbitmq": {
                # a node stops taking publishes before its disk is full, not after
                "additionalConfig": "disk_free_limit.absolute = 2GB\n",
            },
        },
    }


def broker_user_objects(user: BrokerUser) -> list[dict[str, Any]]:
    """A User (the operator generates its credentials), its Permission and its TopicPermission on
    the suite's exchange: the same rights as `python -m lms_common.broker_users apply` grants."""
    cluster = {"name": RABBITMQ}
    reference = {"name": user.name}
    return [
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "User",
            "metadata": meta(user.name),
            "spec": {"rabbitmqClusterReference": cluster, "tags": []},
        },
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "Permission",
            "metadata": meta(f"{user.name}-permission"),
            "spec": {
                "vhost": VHOST,
                "userReference": reference,
                "permissions": {"configure": user.configure, "write": user.write, "read": user.read},
                "rabbitmqClusterReference": cluster,
            },
        },
        {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "TopicPermission",
            "metadata": meta(f"{user.name}-topic-permission"),
            "spec": {
                "vhost": VHOST,
                "userReference": reference,
                "permissions": {"exchange": CONFIG["LMS_EXCHANGE"], "write": user.topic_write, "read": user.topic_read},
                "rabbitmqClusterReference": cluster,
            },
        },
    ]


def broker_users() -> list[dict[str, Any]]:
    users = load_broker_users(DEPLOY / "rabbitmq" / "users.json", exchange=CONFIG["LMS_EXCHANGE"])
    return [document for user in users for document in broker_user_objects(user)]


def service_monitor(name: str, match: dict[str, str], port: str, path: str = "/metrics") -> dict[str, Any]:
    # job=<name> as in deploy/prometheus/prometheus.yml, so the alert rules and the dashboard serve both
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(name),
        "spec": {
            "selector": {"matchLabels": match},
            "endpoints": [
                {
                    "port": port,
                    "path": path,
                    "interval": "15s",
                    "relabelings": [{"targetLabel": "job", "replacement": name}],
                }
            ],
        },
    }


def monitors() -> list[dict[str, Any]]:
    lms = [
        service_monitor(
            f"lms-{process}", {"app.kubernetes.io/part-of": "lms", "app.kubernetes.io/component": process}, port
        )
        for process, port in (("api", "http"), ("worker", "metrics"), ("relay", "metrics"))
    ]
    # per-object: the queue label is needed to see the dead-letter queues' depth
    broker = service_monitor(
        "rabbitmq", {"app.kubernetes.io/name": RABBITMQ, "app.kubernetes.io/component": "rabbitmq"}, "prometheus"
    )
    broker["spec"]["endpoints"][0]["path"] = "/metrics/per-object"
    return [*lms, broker]


def alert_rules() -> dict[str, Any]:
    """deploy/prometheus/alerts.yml, the one source of the alerts, as a PrometheusRule."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("lms-alerts"),
        "spec": {"groups": rules["groups"]},
    }


def dashboards() -> dict[str, Any]:
    """The Grafana dashboards, for the Grafana sidecar that loads ConfigMaps labelled grafana_dashboard."""
    data = {
        path.name: json.dumps(json.loads(path.read_text()), indent=1, sort_keys=True)
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    }
    metadata = meta("lms-dashboards")
    metadata["labels"]["grafana_dashboard"] = "1"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "lms"}},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("lms-config"), "data": CONFIG},
        rabbitmq(),
        *broker_users(),
    ]
    for service, spec in SERVICES.items():
        docs.append(database(service))
        if service in SHARED_CONTENT:
            docs.append(content_volume(service, SHARED_CONTENT[service]))
        docs.append(migration_job(service))
        for process in spec["processes"]:
            docs += [
                deployment(service, process),
                service_object(service, process),
                disruption_budget(service, process),
            ]
            if PROCESSES[process]["max_replicas"]:
                docs.append(autoscaler(service, process))
    return [*docs, *monitors(), alert_rules(), dashboards()]


class _Dumper(yaml.SafeDumper):
    """Block style throughout, and multi-line strings (alert descriptions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    header = "# Generated by deploy/kubernetes/generate.py from its tables: edit those, then run it.\n"
    body = yaml.dump_all(documents(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if lms.yaml differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print("deploy/kubernetes/lms.yaml is stale: run python deploy/kubernetes/generate.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT.name} is up to date ({len(documents())} objects)")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(documents())} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
