"""deploy/kubernetes/kserve: the InferenceService (REST, and its gRPC variant) has the shape KServe
and Knative accept, and says what the service does: the one port it declares is the one the
service listens on, its probes hit the v2 health routes, its settings and models are the
Deployment's.

Neither KServe's CRD nor Knative's rules are in kubernetes-validate, and the KServe SDK (the
`kserve` package, with its V1beta1 models) pulls in pandas, the Kubernetes client and grpcio-tools.
So: KServe's predictor type is a core/v1 PodSpec plus its component fields, and the PodSpec part
passes the Kubernetes schema check, strictly (a field KServe lacks, like `protocolVersion` on a
custom predictor, fails it); Knative's rules are asserted as its sources state them.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from cli.main import build_parser
from service.cli import graceful_shutdown_s, serve
from service.main import create_app
from service.model_specs import ModelsFile
from service.settings import Settings
from testkit.kubernetes_manifests import DEPLOY, KUBERNETES_VERSION, by_kind, kustomize

# Each folder and the port name Knative routes it by: http1 (HTTP/1.1) or h2c (HTTP/2, gRPC).
VARIANTS = {"kserve/rest": "http1", "kserve/grpc": "h2c"}
# KServe's ComponentExtensionSpec (pkg/apis/serving/v1beta1/component.go): the predictor's fields
# beside the PodSpec it embeds.
KSERVE_COMPONENT_FIELDS = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency",
                           "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
                           "deploymentStrategy"}
# What Knative Serving lets through with its default feature flags (pkg/apis/serving/fieldmask.go)
# and the ports its queue-proxy takes (pkg/apis/serving/k8s_validation.go: reservedPorts).
KNATIVE_POD_FIELDS = {"serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks",
                      "automountServiceAccountToken"}
KNATIVE_CONTAINER_FIELDS = {"name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
                            "livenessProbe", "ports", "readinessProbe", "resources", "securityContext",
                            "startupProbe", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts"}
KNATIVE_SECURITY_CONTEXT_FIELDS = {"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup",
                                   "runAsNonRoot", "allowPrivilegeEscalation", "seccompProfile"}
KNATIVE_VOLUME_SOURCES = {"secret", "configMap", "projected", "emptyDir"}
KNATIVE_RESERVED_PORTS = {8008, 8012, 8013, 8022, 9090, 9091}
PROBES = {"startupProbe": "/v2/health/live", "livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}


def _predictor(folder: str) -> tuple[dict, dict]:
    """The built InferenceService's predictor and its one container."""
    predictor = by_kind(kustomize(DEPLOY / folder))["InferenceService"]["spec"]["predictor"]
    (container,) = predictor["containers"]
    return predictor, container


def _settings(container: dict) -> tuple[dict, Settings]:
    env = {item["name"]: item["value"] for item in container["env"]}
    fields = {name: value for name, value in env.items() if name.startswith("SEGMENTER_")}
    return env, Settings(**{name[len("SEGMENTER_"):].lower(): value for name, value in fields.items()})


@pytest.mark.parametrize("folder", VARIANTS)
def test_the_predictor_is_a_pod_spec_that_passes_the_schema_check(folder):
    isvc = by_kind(kustomize(DEPLOY / folder))["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and set(isvc["spec"]) == {"predictor"}
    predictor = isvc["spec"]["predictor"]
    pod_spec = {name: value for name, value in predictor.items() if name not in KSERVE_COMPONENT_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": isvc["metadata"], "spec": pod_spec}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)  # raises, naming the field
    # The component fields used, with the types of KServe's CRD; never scaled to zero, as a cold
    # start loads and warms up every model.
    assert all(type(predictor[name]) is int for name in ("minReplicas", "maxReplicas", "scaleTarget", "timeout"))
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] in {"cpu", "memory", "concurrency", "rps"}


@pytest.mark.parametrize("folder, port_name", VARIANTS.items())
def test_knative_accepts_the_predictor(folder, port_name):
    predictor, container = _predictor(folder)
    assert set(predictor) - KSERVE_COMPONENT_FIELDS <= KNATIVE_POD_FIELDS  # e.g. no pod securityContext
    assert set(container) <= KNATIVE_CONTAINER_FIELDS  # e.g. no preStop: Knative drains pods itself
    assert set(container["securityContext"]) <= KNATIVE_SECURITY_CONTEXT_FIELDS
    assert all(set(volume) - {"name"} <= KNATIVE_VOLUME_SOURCES for volume in predictor["volumes"])
    assert container["name"] == "kserve-container"  # the container KServe takes for the predictor
    # Serverless mode routes exactly one port, named for its protocol.
    (port,) = container["ports"]
    assert port == {"name": port_name, "containerPort": port["containerPort"], "protocol": "TCP"}
    assert port["containerPort"] not in KNATIVE_RESERVED_PORTS
    # A probe may name no port but the routed one; a number may be another (Knative >= 1.3).
    for probe in PROBES:
        probe_port = container[probe]["httpGet"]["port"]
        assert type(probe_port) is int or probe_port == port_name


@pytest.mark.parametrize("folder", VARIANTS)
def test_the_declared_port_is_the_one_the_service_listens_on(folder):
    _, container = _predictor(folder)
    assert container["command"][0] == "segmenter"
    args = build_parser().parse_args(container["command"][1:])
    assert args.func is serve
    env, settings = _settings(container)
    (port,) = container["ports"]
    listening = {"http1": args.port, "h2c": settings.grpc_port}[port["name"]]
    assert port["containerPort"] == listening
    # The other protocol is off, or kept inside the pod: REST, which the probes use.
    if port["name"] == "http1":
        assert "SEGMENTER_GRPC_PORT" in env and settings.grpc_port == 0  # (the tests' own default is 0 too)
    else:
        assert settings.grpc_port != args.port
    # KServe reads a custom predictor's protocol from PROTOCOL (v1 or v2; protocolVersion is its runtimes').
    assert env["PROTOCOL"] == "v2"
    # The probes ask REST, on its port, the v2 health routes the app has: readiness is every model loaded.
    routes = set(create_app(Settings()).openapi()["paths"])
    for probe, path in PROBES.items():
        assert container[probe]["httpGet"] == {"path": path, "port": args.port} and path in routes


@pytest.mark.parametrize("folder", VARIANTS)
def test_settings_models_and_timeouts_are_the_deployments(folder):
    resources = by_kind(kustomize(DEPLOY / folder))
    predictor, container = _predictor(folder)
    env, settings = _settings(container)
    # Every SEGMENTER_* variable is a setting; the values parse and are the Deployment's.
    fields = {f"SEGMENTER_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("SEGMENTER_")} <= fields
    cpu = by_kind(kustomize(DEPLOY / "overlays/cpu"))
    (deployed,) = cpu["Deployment"]["spec"]["template"]["spec"]["containers"]
    _, deployed_settings = _settings(deployed)
    assert settings.model_dump(exclude={"grpc_port"}) == deployed_settings.model_dump(exclude={"grpc_port"})
    assert container["resources"] == deployed["resources"]
    # The models file is mounted where SEGMENTER_MODELS says, and is the base's: the demo models in the image.
    configmap = resources["ConfigMap"]
    assert {"name": "models", "configMap": {"name": configmap["metadata"]["name"]}} in predictor["volumes"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[str(settings.models.parent)] == "models" and settings.models.name in configmap["data"]
    models = ModelsFile.model_validate(yaml.safe_load(configmap["data"][settings.models.name]))
    base = by_kind(kustomize(DEPLOY / "base"))["ConfigMap"]
    assert models == ModelsFile.model_validate(yaml.safe_load(base["data"]["models.yaml"]))
    assert mounts[str(settings.cache_dir)] == "cache" and mounts["/tmp"] == "tmp"
    # Hardening, as the Docker image runs.
    security = container["securityContext"]
    assert security["runAsUser"] == 10001 and security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["capabilities"]["drop"] == ["ALL"] and security["allowPrivilegeEscalation"] is False
    # Knative cuts a request after `timeout` seconds and gives a stopping pod as long: the service's
    # own deadline answers first, and its drain fits.
    assert predictor["timeout"] >= graceful_shutdown_s(settings)
    # With fail-fast the port opens once the models are ready: the startup probe waits that long.
    if settings.fail_fast:
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # Knative adds pods by requests in flight; each holds one window or more of its model's queue.
    smallest = min(spec.max_queue_windows or settings.max_queue_windows for spec in models.models)
    assert predictor["scaleMetric"] == "concurrency" and predictor["scaleTarget"] <= smallest / 2
