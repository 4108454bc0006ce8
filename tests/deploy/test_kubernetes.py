"""deploy/kubernetes: every kustomization builds, passes the Kubernetes schema check, and says
what the service actually does — its ports, probe paths, settings, models files and metric.
(The KServe InferenceService: test_kserve.py.)

Needs `kubectl` (kustomize built in) or `kustomize` on PATH; CI sets SEGMENTER_REQUIRE_KUSTOMIZE=1
so a missing binary fails instead of skipping.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from model.zoo import load_registry
from service.cli import graceful_shutdown_s
from service.main import create_app
from service.metrics import ServiceMetrics
from service.model_specs import ZOO_PREFIX, ModelsFile
from service.settings import Settings
from testkit.kubernetes_manifests import DEPLOY, KUBERNETES_VERSION, by_kind, kustomize
from training.config import load_config
from training.stop_signals import EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["overlays/gpu", "overlays/cpu"]


@functools.cache  # one build per folder for the whole module; callers only read the result
def _kustomize(folder: Path) -> list[dict]:
    return kustomize(folder)


# Kinds with no upstream schema: the Prometheus Operator's (checked below) and KServe's (test_kserve.py).
CUSTOM_RESOURCES = ("monitoring.coreos.com/", "serving.kserve.io/")


@pytest.mark.parametrize("folder", ["base", *OVERLAYS, "monitoring", "training", "kserve/rest", "kserve/grpc"])
def test_every_kustomization_builds_and_passes_the_schema_check(folder):
    import kubernetes_validate

    docs = _kustomize(DEPLOY / folder)
    assert docs
    for doc in docs:
        if not doc["apiVersion"].startswith(CUSTOM_RESOURCES):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # raises, naming the field


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_port_probes_and_settings_are_the_services(overlay):
    resources = by_kind(_kustomize(DEPLOY / overlay))
    deployment, service = resources["Deployment"], resources["Service"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    # The ports the image's entrypoint listens on (docker/Dockerfile*: segmenter serve --host 0.0.0.0
    # --port 8000; the v2 gRPC API on SEGMENTER_GRPC_PORT, on the same interfaces).
    for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
        text = (ROOT / "docker" / dockerfile).read_text()
        assert '"--host", "0.0.0.0", "--port", "8000"' in text and "EXPOSE 8000 8001" in text
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                                  {"name": "grpc", "containerPort": 8001, "protocol": "TCP"}]
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"http": "http", "grpc": "grpc"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"
    # Probes hit routes the app has: liveness the process, readiness the models.
    routes = set(create_app(Settings()).openapi()["paths"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics" in routes
    # Every SEGMENTER_* variable is a setting, and the values parse.
    env = {item["name"]: item["value"] for item in container["env"]}
    fields = {f"SEGMENTER_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("SEGMENTER_")} <= fields
    settings = Settings(**{name[len("SEGMENTER_"):].lower(): value for name, value in env.items()})
    assert str(settings.models) == "/etc/segmenter/models.yaml" and str(settings.cache_dir) == "/cache"
    # gRPC listens on the `grpc` port, where HTTP does (the entrypoint's --host 0.0.0.0).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.grpc_port == ports["grpc"] and "SEGMENTER_GRPC_HOST" not in env
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/etc/segmenter" in mounts and "/cache" in mounts and "/tmp" in mounts
    # Hardening, as the Docker image runs: non-root, read-only root filesystem, no privileges.
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001 and pod["spec"]["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # With fail-fast the port opens only once the models are ready: a startup probe must hold
    # liveness off for as long as a first start's downloads take.
    if settings.fail_fast:
        startup = container["startupProbe"]
        assert startup["httpGet"]["path"] == "/healthz"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # The pod is given time for the preStop pause and then the server's drain, which waits for
    # requests as long as one may run.
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["spec"]["terminationGracePeriodSeconds"] >= sleep + graceful_shutdown_s(settings)
    # The autoscaler owns the replica count; evictions take one pod at a time.
    assert "replicas" not in deployment["spec"] and resources["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    budget = resources["PodDisruptionBudget"]["spec"]
    assert budget["maxUnavailable"] == 1 and "minAvailable" not in budget
    # The HPA, PDB and Service select exactly these pods.
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert resources["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay, source", [("overlays/gpu", "ade20k.yaml"), ("overlays/cpu", "ade20k-cpu.yaml")])
def test_the_models_file_is_valid_and_names_registry_checkpoints(overlay, source):
    resources = by_kind(_kustomize(DEPLOY / overlay))
    configmap = resources["ConfigMap"]
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "models", "configMap": {"name": configmap["metadata"]["name"]}} in pod["volumes"]
    models = ModelsFile.model_validate(yaml.safe_load(configmap["data"]["models.yaml"]))
    assert models == ModelsFile.model_validate(yaml.safe_load((ROOT / "models" / source).read_text()))
    zoo = load_registry()
    for spec in models.models:
        assert spec.checkpoint.startswith(ZOO_PREFIX) and spec.zoo_name in zoo
    gpu = "nvidia.com/gpu" in pod["containers"][0]["resources"]["limits"]
    assert gpu == all(spec.device.startswith("cuda") for spec in models.models)


def test_the_autoscaler_reads_a_metric_the_service_exports_through_the_adapter_rule():
    base = by_kind(_kustomize(DEPLOY / "base"))
    (metric,) = base["HorizontalPodAutoscaler"]["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    exported = {m.name for m in ServiceMetrics().registry.collect()}
    assert name in exported
    # Prometheus scrapes the pods (PodMonitor) ...
    monitor = by_kind(_kustomize(DEPLOY / "monitoring"))["PodMonitor"]
    pod = base["Deployment"]["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == pod["spec"]["containers"][0]["ports"][0]["name"] and endpoint["path"] == "/metrics"
    # ... and the adapter's rule serves the series as a per-pod metric, as `type: Pods` needs.
    values = yaml.safe_load((DEPLOY / "monitoring" / "adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert values["rules"]["default"] is True  # the chart's own rules are kept
    assert name in rule["seriesQuery"] and rule["name"]["as"] == name
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_the_autoscaler_adds_pods_before_a_model_queue_is_full(overlay):
    resources = by_kind(_kustomize(DEPLOY / overlay))
    (metric,) = resources["HorizontalPodAutoscaler"]["spec"]["metrics"]
    target = float(metric["pods"]["target"]["averageValue"])
    (container,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    default_cap = Settings(max_queue_windows=env["SEGMENTER_MAX_QUEUE_WINDOWS"]).max_queue_windows
    models = ModelsFile.model_validate(yaml.safe_load(resources["ConfigMap"]["data"]["models.yaml"]))
    smallest = min(spec.max_queue_windows or default_cap for spec in models.models)
    # One busy model fills only its own queue; the HPA acts above target × 1.1 (its tolerance).
    assert target <= smallest / 2 < smallest / 1.1


def test_the_base_models_file_serves_the_bundled_demo_from_the_image():
    configmap = by_kind(_kustomize(DEPLOY / "base"))["ConfigMap"]
    models = ModelsFile.model_validate(yaml.safe_load(configmap["data"]["models.yaml"]))
    dockerfile = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert "cp -r /src/models /opt/segmenter/models" in dockerfile
    for spec in models.models:
        relative = Path(spec.checkpoint).relative_to("/opt/segmenter/models")
        assert (ROOT / "models" / relative / "segmenter.json").is_file()


def test_the_training_job_resumes_in_every_replacement_pod(tmp_path):
    resources = by_kind(_kustomize(DEPLOY / "training"))
    job, config_map = resources["Job"], resources["ConfigMap"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The same command line continues the run in a new pod, or starts it in the first.
    assert container["command"][:2] == ["segmenter", "train"] and container["command"][-2:] == ["--resume", "auto"]
    rules = job["spec"]["podFailurePolicy"]["rules"]
    ignored = [r["onExitCodes"]["values"] for r in rules if r["action"] == "Ignore" and "onExitCodes" in r]
    assert ignored == [[EXIT_INTERRUPTED]]  # a pod stopped by SIGTERM saved its state: not a failure
    assert any(c["type"] == "DisruptionTarget" for r in rules if r["action"] == "Ignore"
               for c in r.get("onPodConditions", []))
    assert pod["restartPolicy"] == "Never" and pod["terminationGracePeriodSeconds"] >= 120
    # The experiment is the repository's, with the pod's paths; the run folder is on the volume.
    (config_path,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config"]
    assert container["command"][3] == f"{config_path}/train.yaml"
    (tmp_path / "train.yaml").write_text(config_map["data"]["train.yaml"])
    pod_cfg = load_config(tmp_path / "train.yaml")
    repo_cfg = load_config(ROOT / "training" / "configs" / "ade20k_seg_b_mask_16.yaml",
                           [f"data.root={pod_cfg.data.root}", f"run.out_dir={pod_cfg.run.out_dir}"])
    assert pod_cfg == repo_cfg
    (runs,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "runs"]
    assert pod_cfg.run.out_dir.startswith(runs + "/")
