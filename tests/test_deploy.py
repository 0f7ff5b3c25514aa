"""facemath deploy, and the deployment files in serving/: parsed with TF Serving's own message types so they
cannot rot."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from facemath_core import signatures as S
from facemath_core.deploy import deploy
from facemath_core.errors import FacemathError
from facemath_core.model_config import parse_config, read_config
from facemath_core.serving_protos import parse_batching_parameters, parse_monitoring_config

SERVING = Path(__file__).parent.parent / "serving"


def test_models_config_lists_every_model():
    entries = parse_config((SERVING / "models.config").read_text())
    assert sorted(e.name for e in entries) == sorted(S.MODEL_NAMES)
    assert all(e.base_path == f"/models/{e.name}" and e.policy == "latest" for e in entries)


def test_batching_parameters_are_valid():
    params = parse_batching_parameters((SERVING / "batching_parameters.txt").read_text())
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(sizes) and sizes[-1] == params.max_batch_size.value  # TF Serving's two rules
    assert params.num_batch_threads.value >= 1
    configmap = yaml.safe_load((SERVING / "kubernetes" / "configmap.yaml").read_text())
    assert parse_batching_parameters(configmap["data"]["batching_parameters.txt"]) == params
    assert parse_monitoring_config(configmap["data"]["monitoring.config"]) == parse_monitoring_config(
        (SERVING / "monitoring.config").read_text()
    )


def test_monitoring_config():
    config = parse_monitoring_config((SERVING / "monitoring.config").read_text())
    assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_compose_and_kubernetes_manifests_agree_with_the_server_flags():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    command = compose["services"]["tfserving"]["command"]
    assert "--port=8500" in command and "--enable_batching" in command
    assert "--model_config_file=/models/models.config" in command
    deployment = yaml.safe_load((SERVING / "kubernetes" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] >= 2
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/generator", "port": 8501}
    assert "--batching_parameters_file=/config/batching_parameters.txt" in container["args"]
    service = yaml.safe_load((SERVING / "kubernetes" / "service.yaml").read_text())
    assert service["spec"]["clusterIP"] == "None"  # headless: client-side round robin over the pods
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_deploy_copies_versions_and_writes_a_config(tiny_export, tmp_path):
    base = tmp_path / "models"
    copied, config = deploy(tiny_export, base, label="stable")
    assert sorted(p.parent.name for p in copied) == sorted(S.MODEL_NAMES)
    entries = {e.name: e for e in read_config(config)}
    assert entries["generator"].versions == (1,) and entries["generator"].labels == {"stable": 1}
    assert Path(entries["generator"].base_path) == (base / "generator").resolve()
    assert (base / "generator" / "1" / "saved_model.pb").exists()
    assert not list(base.glob("*/.*.part"))
    # A second deploy of the same version changes nothing on disk; the label survives.
    assert deploy(tiny_export, base)[0] == []
    assert read_config(config)[0].labels


def test_deploy_base_path_as_the_server_sees_it(tiny_export, tmp_path):
    _, config = deploy(tiny_export, tmp_path / "m", base_path_in_server="/models")
    assert {e.base_path for e in read_config(config)} == {f"/models/{n}" for n in S.MODEL_NAMES}


def test_deploy_bad_input(tiny_export, tmp_path):
    with pytest.raises(FacemathError, match="no exported models"):
        deploy(tmp_path, tmp_path / "out")
    with pytest.raises(FacemathError, match="--version 5"):
        deploy(tiny_export, tmp_path / "out", version=5)


def test_deploy_then_reload_a_running_server(tiny_export, tmp_path):
    from facemath_core.backends.tfserving import TFServingBackend
    from facemath_core.deploy import reload_server
    from facemath_core.model_config import ModelEntry
    from facemath_core.standin_server import build_server

    base = tmp_path / "models"
    (base / "empty").mkdir(parents=True)
    _, config = deploy(tiny_export, base, label="stable")
    server, port, _ = build_server([ModelEntry("oracle_only", str(tiny_export / S.ORACLE))], "127.0.0.1", 0)
    try:
        reload_server(f"127.0.0.1:{port}", config, timeout=30)
        backend = TFServingBackend(f"127.0.0.1:{port}", label="stable")
        assert backend.generate(np.zeros((1, 8), np.float32)).shape == (1, 32, 32, 3)
    finally:
        server.stop(0)
