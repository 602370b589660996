"""The deployment files in `deploy/`: Kubernetes manifests against the API schemas, the compose
stack and the server image's Dockerfile parsed and cross-checked, Prometheus configuration and
alert rules through `promtool`, and a real Prometheus scraping a real reward server."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reward_api.client import AsyncRewardClient
from reward_api.types import Verdict, assert_test, call_test, make_problem
from reward_server.config import ServerConfig
from reward_server.main import _parser, config_from_args
from reward_server.server import RewardServer
from sandboxes.config import SandboxConfig

from .conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"  # native sidecars (initContainers with restartPolicy: Always) are GA from 1.29
APP = {"app.kubernetes.io/name": "codereward-server"}
ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), call_test([2, 3], 5)], entry_point="add")


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (Debian's `prometheus` package; scripts/setup.sh installs it)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: deployment tests must run)", pytrace=False)
        pytest.skip(reason)
    return path


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def k8s(kind: str, name: str = "codereward-server") -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(k8s_documents())), ids=[f"{d['kind']}-{d['metadata']['name']}" for d in k8s_documents()])
def test_k8s_manifest_passes_the_api_schema(index: int) -> None:
    kubernetes_validate.validate(k8s_documents()[index], K8S_VERSION, strict=True)


def test_k8s_schema_check_rejects_a_misspelt_field() -> None:
    """The validator is strict enough to catch the mistakes that matter (control for the above)."""
    deployment = copy.deepcopy(k8s("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = deployment["spec"]["template"]["spec"]["containers"][0].pop(
        "readinessProbe"
    )
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_k8s_every_selector_matches_the_pods() -> None:
    deployment = k8s("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == APP and APP.items() <= pod_labels.items()
    for kind, name, selector in [
        ("Service", "codereward-server", lambda d: d["spec"]["selector"]),
        ("Service", "codereward-server-metrics", lambda d: d["spec"]["selector"]),
        ("PodDisruptionBudget", "codereward-server", lambda d: d["spec"]["selector"]["matchLabels"]),
        ("NetworkPolicy", "codereward-server", lambda d: d["spec"]["podSelector"]["matchLabels"]),
    ]:
        assert selector(k8s(kind, name)).items() <= pod_labels.items(), f"{kind}/{name} selects no server pod"
    hpa = k8s("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "codereward-server"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


TRAINER = K8S / "trainer"


def trainer_documents() -> list[dict[str, Any]]:
    return [d for path in sorted(TRAINER.glob("*.yaml")) if path.name != "kustomization.yaml" for d in yaml.safe_load_all(path.read_text()) if d]


def test_k8s_trainer_job_pods_and_config_pass_the_api_schema() -> None:
    """The PyTorchJob is Kubeflow's resource (no schema here): each replica's pod template is
    checked as a core PodTemplate, the rest by hand against the training operator's contract."""
    docs = {d["kind"]: d for d in trainer_documents()}
    assert sorted(docs) == ["ConfigMap", "PersistentVolumeClaim", "PyTorchJob"]
    for kind in ("ConfigMap", "PersistentVolumeClaim"):
        kubernetes_validate.validate(docs[kind], K8S_VERSION, strict=True)
    job = docs["PyTorchJob"]
    assert job["apiVersion"] == "kubeflow.org/v1" and set(job["spec"]["pytorchReplicaSpecs"]) == {"Master", "Worker"}
    for role, replica in job["spec"]["pytorchReplicaSpecs"].items():
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": role.lower(), "namespace": "codereward"}, "template": replica["template"]}
        kubernetes_validate.validate(template, K8S_VERSION, strict=True)
        container = replica["template"]["spec"]["containers"][0]
        assert container["name"] == "pytorch" and replica["restartPolicy"] in ("OnFailure", "ExitCode")
        assert container["resources"]["limits"]["nvidia.com/gpu"] == job["spec"]["nprocPerNode"]  # a rank per GPU
        args = container["args"]
        assert args[args.index("-m") + 1] == "trainer_client.cli" and "--nproc-per-node=$(PET_NPROC_PER_NODE)" in args
    kustomization = yaml.safe_load((TRAINER / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in TRAINER.glob("*.yaml") if p.name != "kustomization.yaml")


def test_k8s_trainer_config_is_a_train_config_that_reaches_the_reward_servers(tmp_path: Path) -> None:
    from trainer_client.config import TrainConfig

    docs = {d["kind"]: d for d in trainer_documents()}
    (tmp_path / "train.toml").write_text(docs["ConfigMap"]["data"]["train.toml"])
    config = TrainConfig.load(tmp_path / "train.toml", [], {})
    service = k8s("Service")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert config.reward_servers == (f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{grpc_port}",)
    job_pod = docs["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in job_pod["containers"][0]["volumeMounts"]}
    assert str(config.output_dir).startswith(mounts["runs"] + "/") and config.resume_from == "latest"
    claim = next(v for v in job_pod["volumes"] if v["name"] == "runs")["persistentVolumeClaim"]["claimName"]
    assert claim == docs["PersistentVolumeClaim"]["metadata"]["name"] and docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    token = next(e for e in job_pod["containers"][0]["env"] if e["name"] == "CODEREWARD_TOKEN")["valueFrom"]["secretKeyRef"]["name"]
    assert token == "codereward-server"  # the servers' Secret (deploy/README.md)
    admitted = k8s("NetworkPolicy")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    labels = docs["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
    assert admitted.items() <= labels.items()  # the servers' NetworkPolicy lets every rank in


def test_trainer_dockerfile_copies_only_what_it_is_allowed_to() -> None:
    text = (DEPLOY / "Dockerfile.trainer").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}"
    ignore = (DEPLOY / "Dockerfile.trainer.dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists() and source.rstrip("/") in allowed, source
    assert 'ENTRYPOINT ["torchrun"]' in lines and any('".[trainer,vllm-gpu]"' in line for line in lines)


def test_k8s_services_are_headless_for_client_side_round_robin() -> None:
    grpc_service = k8s("Service")["spec"]
    assert grpc_service["clusterIP"] == "None"  # DNS gives every pod: dns:/// + round_robin
    assert not grpc_service.get("publishNotReadyAddresses", False)  # a draining pod leaves DNS
    assert [p["targetPort"] for p in grpc_service["ports"]] == ["grpc"]
    metrics_service = k8s("Service", "codereward-server-metrics")["spec"]
    assert metrics_service["clusterIP"] == "None" and metrics_service["publishNotReadyAddresses"] is True
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    names = scrape["scrape_configs"][0]["dns_sd_configs"][0]["names"]
    assert names == ["codereward-server-metrics.codereward.svc.cluster.local"]


def _server_container() -> dict[str, Any]:
    containers = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "reward-server")


def _arg(container: dict[str, Any], flag: str) -> str:
    values = [a.split("=", 1)[1] for a in container["args"] if a.startswith(flag + "=")]
    assert len(values) == 1, f"{flag} given {len(values)} times"
    return values[0]


def test_k8s_probes_use_grpc_health_and_shutdown_fits_the_grace_period() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    server = _server_container()
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"]["port"] == ports["grpc"], probe
    assert server["resources"]["requests"]["cpu"] and server["resources"]["requests"]["memory"]
    drain, grace = float(_arg(server, "--drain-s")), float(_arg(server, "--grace-s"))
    assert pod["terminationGracePeriodSeconds"] > drain + grace
    # The flags parse into a valid ServerConfig (what the container will run).
    config = config_from_args(_parser().parse_args(server["args"]))
    assert (config.host, config.insecure, config.sandbox.workers, config.drain_s, config.grace_s) == ("0.0.0.0", True, 4, drain, grace)


def test_k8s_sandboxes_run_in_the_pods_own_engine_not_the_nodes() -> None:
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    assert not any("hostPath" in v for v in pod["volumes"]), "no host path (the node's docker.sock) is mounted"
    engine = next(c for c in pod["initContainers"] if c["name"] == "sandbox-engine")
    assert engine["restartPolicy"] == "Always"  # a native sidecar: up before the server starts
    socket_dir = next(m["mountPath"] for m in engine["volumeMounts"] if m["name"] == "engine-socket")
    assert f"--host=unix://{socket_dir}/docker.sock" in engine["args"]
    assert "--group=10002" in engine["args"]  # the socket's group is the server's: no root needed
    server = _server_container()
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["DOCKER_HOST"] == f"unix://{socket_dir}/docker.sock"
    assert any(m["name"] == "engine-socket" and m["mountPath"] == socket_dir for m in server["volumeMounts"])
    security = server["securityContext"]
    assert security["runAsNonRoot"] and security["runAsGroup"] == 10002 and not security["allowPrivilegeEscalation"]
    assert "privileged" not in security
    assert "$(CODEREWARD_TOKEN)" in _arg(server, "--token") and "CODEREWARD_TOKEN" in env


# --- compose and the server image -----------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_server_reaches_a_dind_engine_over_a_shared_socket() -> None:
    services = compose()["services"]
    assert set(services) == {"sandbox-engine", "reward-server", "prometheus", "grafana"}
    engine, server = services["sandbox-engine"], services["reward-server"]
    assert engine["privileged"] is True and not server.get("privileged", False)
    socket_volume = "engine-socket:/run/codereward-engine"
    assert socket_volume in engine["volumes"] and socket_volume in server["volumes"]
    assert "--host=unix:///run/codereward-engine/docker.sock" in engine["command"]
    assert server["environment"]["DOCKER_HOST"] == "unix:///run/codereward-engine/docker.sock"
    for name, service in services.items():
        assert not any("docker.sock:" in v for v in service.get("volumes", [])), f"{name} mounts the host's docker.sock"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host's loopback"
    assert server["depends_on"]["sandbox-engine"]["condition"] == "service_healthy"
    assert server["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile.server"}


def test_compose_mounts_files_that_exist_where_their_configs_look() -> None:
    services = compose()["services"]
    mounts = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{source} is missing"
                mounts[target] = DEPLOY / source
    config_path = next(a.split("=", 1)[1] for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    prometheus = yaml.safe_load(mounts[config_path].read_text())
    for rule_file in prometheus["rule_files"]:
        assert str(Path(config_path).parent / rule_file) in mounts, f"rule file {rule_file} is not mounted"
    assert prometheus["scrape_configs"][0]["dns_sd_configs"][0]["names"] == ["reward-server"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/codereward.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert any(t.startswith(dashboards_dir + "/") and t.endswith(".json") for t in mounts)
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in dashboard()["panels"]} == {datasource["uid"]}


def test_server_dockerfile_builds_offline_capable_from_the_repository() -> None:
    text = (DEPLOY / "Dockerfile.server").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}"
    ignore = (DEPLOY / "Dockerfile.server.dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in lines:
        if line.startswith("COPY "):
            source = line.split()[1].rstrip("/")
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source in allowed, f"COPY {source}: excluded by Dockerfile.server.dockerignore"
    assert 'ENTRYPOINT ["codereward-entrypoint"]' in lines and "USER 10002:10002" in lines
    entrypoint = DEPLOY / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    subprocess.run(["sh", "-n", str(entrypoint)], check=True)


# --- Prometheus configuration and alert rules -----------------------------------------------


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_accepts_the_scrape_configs(config: str) -> None:
    result = subprocess.run(
        [_require("promtool"), "check", "config", config], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_alert_rules_fire_on_the_series_they_watch() -> None:
    """`promtool test rules`: each alert fires for the bad server and not for the healthy one."""
    result = subprocess.run(
        [_require("promtool"), "test", "rules", "alerts_test.yml"], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus/alerts_test.yml").read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}


# --- metric names: the dashboard and alerts against a real server's /metrics ----------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "codereward.json").read_text())
    return data


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def all_expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the alerts, Grafana variables filled in."""
    exprs = {f"panel {p['title']!r} {t['refId']}": t["expr"] for p in dashboard()["panels"] for t in p["targets"]}
    exprs |= {f"alert {r['alert']}": r["expr"] for r in alert_rules()}
    return {k: v.replace("$__rate_interval", "30s").replace("$instance", ".*") for k, v in exprs.items()}


def exported_names(metrics_text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


async def start_server(sandbox: SandboxConfig) -> RewardServer:
    server = RewardServer(ServerConfig(port=0, metrics_port=0, grace_s=5.0, sandbox=sandbox))
    await server.start()
    return server


def scrape_text(server: RewardServer) -> str:
    return str(urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode())


@pytest.mark.docker
async def test_dashboard_and_alerts_use_only_metrics_the_server_exports(fast_config: SandboxConfig) -> None:
    server = await start_server(fast_config)
    try:
        async with AsyncRewardClient(f"127.0.0.1:{server.port}") as client:
            await client.score_group(ADD, ["def add(a, b):\n    return a + b\n"])
        exported = exported_names(scrape_text(server))
    finally:
        await server.stop(grace_s=0)
    assert len(exported) > 30
    panels = dashboard()["panels"]
    assert len(panels) >= 10
    used: set[str] = set()
    for where, expr in all_expressions().items():
        names = set(re.findall(r"\bcodereward_\w+", expr))
        assert names or "up{" in expr, f"{where}: no metric"
        unknown = names - exported
        assert not unknown, f"{where} uses {sorted(unknown)}, which no reward server exports"
        used |= names
    # What the issue asks the dashboard to show, by the metric that shows it.
    for needed in (
        "codereward_programs_total",
        "codereward_tests_total",
        "codereward_request_duration_seconds_bucket",
        "codereward_queue_depth",
        "codereward_queue_wait_seconds_bucket",
        "codereward_sandboxes",
        "codereward_container_crashes_total",
        "codereward_sandbox_errors_total",
    ):
        assert needed in used, f"nothing shows {needed}"


# --- a real Prometheus scraping a real reward server ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """A function that starts a real Prometheus on a config file, on a free loopback port."""
    binary = _require("prometheus")
    procs: list[subprocess.Popen[bytes]] = []

    def start(config_file: Path) -> Prometheus:
        port = _free_port()
        log = open(tmp_path / "prometheus.log", "wb")  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200:
                    return Prometheus(url)
            except OSError:
                if proc.poll() is not None:
                    break
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready:\n" + (tmp_path / "prometheus.log").read_text()[-3000:])

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _until(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.5)


@pytest.mark.docker
async def test_prometheus_measures_programs_per_second_of_a_scoring_run(
    fast_config: SandboxConfig, prometheus_for: Any, tmp_path: Path
) -> None:
    server = await start_server(fast_config)
    try:
        shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
        config = {
            "global": {"scrape_interval": "500ms", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "codereward", "static_configs": [{"targets": [f"127.0.0.1:{server.metrics_port}"]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus: Prometheus = prometheus_for(tmp_path / "prometheus.yml")
        await _until(lambda: prometheus.query('up{job="codereward"} == 1'), 30, "target up")
        good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
        async with AsyncRewardClient(f"127.0.0.1:{server.port}") as client:
            started = time.monotonic()
            groups = 0
            while time.monotonic() - started < 3.0:  # a scoring run a few scrapes long
                codes = [f"{good}# {groups} {i}\n" if i % 2 == 0 else f"{bad}# {groups} {i}\n" for i in range(8)]
                group = await client.score_group(ADD, codes)
                assert [r.verdict for r in group.results] == [Verdict.PASSED, Verdict.FAILED] * 4
                groups += 1

        def rate() -> float:
            result = prometheus.query('sum(rate(codereward_programs_total{job="codereward"}[10s]))')
            return float(result[0]["value"][1]) if result else 0.0

        programs_per_s = await _until(lambda: rate() > 0 and rate(), 30, "a positive programs/s rate")
        assert programs_per_s > 0
        scraped_total = prometheus.query('sum(codereward_programs_total{job="codereward"})')
        await _until(
            lambda: float(prometheus.query('sum(codereward_programs_total{job="codereward"})')[0]["value"][1]) == 8 * groups,
            15,
            f"the scraped program count reaching {8 * groups} (was {scraped_total})",
        )

        # Every dashboard and alert expression evaluates on the live data; the main panels show series.
        results = {where: prometheus.query(expr) for where, expr in all_expressions().items()}
        for title in (
            "Programs/s",
            "Tests/s by verdict",
            "Group latency p50 / p99",
            "Queue wait p50 / p99",
            "Sandbox utilisation",
            "Sandbox errors/s",
        ):
            assert results[f"panel {title!r} A"], f"panel {title!r} shows nothing"
        verdicts = {r["metric"]["verdict"] for r in results["panel 'Programs/s by verdict' A"]}
        assert verdicts == {"PASSED", "FAILED"}
        rules = await _until(
            lambda: [r for g in prometheus.api("rules")["groups"] for r in g["rules"] if r.get("lastEvaluation", "").startswith("2")],
            20,
            "rules evaluated",
        )
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        assert all(r["state"] == "inactive" for r in rules), [(r["name"], r["state"]) for r in rules]  # a healthy server fires nothing
    finally:
        await server.stop(grace_s=0)


def test_prometheus_runs_the_compose_config_with_its_alert_rules(prometheus_for: Any) -> None:
    prometheus: Prometheus = prometheus_for(DEPLOY / "prometheus" / "prometheus.yml")
    groups = prometheus.api("rules")["groups"]
    assert {r["name"] for g in groups for r in g["rules"]} == {r["alert"] for r in alert_rules()}
    assert prometheus.api("status/config")["yaml"].count("job_name: codereward") == 1
