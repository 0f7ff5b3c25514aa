"""The scale-out manifests in serving/kubernetes/scale/ (docs/scale.md): parsed, checked against the Kubernetes and
Kubeflow rules they rely on, and their facemath command lines parsed by the real CLI.

References (the rules below are theirs, not read from the manifests):
- Indexed Job: `completionMode: Indexed` needs `completions`; pods get an index 0..completions-1 in
  JOB_COMPLETION_INDEX, hostname `<job>-<index>`, and the label `batch.kubernetes.io/job-name: <job>`; a Job's pods
  restart `Never` or `OnFailure` (kubernetes.io/docs/concepts/workloads/controllers/job/).
- A pod whose `subdomain` is the name of a headless Service (clusterIP None) in its namespace resolves as
  `<hostname>.<subdomain>` (kubernetes.io/docs/concepts/services-networking/dns-pod-service/,
  kubernetes.io/docs/tasks/job/job-with-pod-to-pod-communication/).
- TFJob (kubeflow.org/v1): `spec.tfReplicaSpecs` keyed by Chief/Master, Worker, PS, Evaluator; the container named
  `tensorflow`, its port `tfjob-port` (www.kubeflow.org/docs/components/training/tftraining/).
- TF_CONFIG: {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}
  (tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from facemath_core.cli import app
from facemath_core.models.distribute import read_tf_config

KUBERNETES = Path(__file__).parents[2] / "serving" / "kubernetes"
SCALE = KUBERNETES / "scale"
JOB_RESTART_POLICIES = {"Never", "OnFailure"}
TFJOB_REPLICA_TYPES = {"Chief", "Master", "Worker", "PS", "Evaluator"}
INDEXED_JOB_MAX_PARALLELISM = 10**5  # the API's limit for completionMode Indexed


def _documents() -> dict[str, list[dict]]:
    return {path.name: list(yaml.safe_load_all(path.read_text())) for path in sorted(SCALE.glob("*.yaml"))}


def _objects() -> dict[tuple[str, str], dict]:
    """Every object of every manifest, by (kind, name); a name used twice for one kind is an error."""
    found: dict[tuple[str, str], dict] = {}
    for name, documents in _documents().items():
        for doc in documents:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{name}: {key} defined twice"
            found[key] = doc
    return found


def _job(name: str) -> dict:
    return _objects()[("Job", name)]


def _pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def _parse_cli(argv: list[str]):
    """The click context the real `facemath` CLI builds for `argv`: unknown options, missing arguments and bad
    values raise as they would on a command line, but nothing runs (no callback is invoked)."""
    assert argv[0] == "facemath", argv
    command, parent, name, args = typer.main.get_command(app), None, "facemath", list(argv[1:])
    while True:
        ctx = command.make_context(name, args, parent=parent)
        if not hasattr(command, "resolve_command"):  # a command, not a group
            return ctx
        name, command, args = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        parent = ctx


def _options(argv: list[str]) -> dict[str, str]:
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


# --- every manifest -------------------------------------------------------------------------------------------


def test_every_manifest_parses_with_kind_and_name():
    documents = _documents()
    assert {"project-job.yaml", "project-merge-job.yaml", "train-job.yaml", "kubeflow-tfjob.yaml"} <= documents.keys()
    for name, docs in documents.items():
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), name
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name  # DNS-1123 label


def test_the_serving_folder_starts_no_jobs():
    """docs/deploy.md deploys the fleet with `kubectl apply -f serving/kubernetes/` (not recursive): no Job there,
    or the fleet's deploy would start a projection, a merge or a training run with it."""
    for path in KUBERNETES.glob("*.yaml"):
        kinds = {doc["kind"] for doc in yaml.safe_load_all(path.read_text())}
        assert not kinds & {"Job", "TFJob"}, path.name


def test_jobs_have_the_fields_batch_v1_requires():
    objects = _objects()
    jobs = [doc for (kind, _), doc in objects.items() if kind == "Job"]
    assert len(jobs) == 3
    claims = {name for kind, name in objects if kind == "PersistentVolumeClaim"}
    for job in jobs:
        assert job["apiVersion"] == "batch/v1"
        pod = _pod(job)
        assert pod["restartPolicy"] in JOB_RESTART_POLICIES
        assert pod["containers"] and all(c["name"] and c["image"] for c in pod["containers"])
        if job["spec"].get("completionMode") == "Indexed":
            completions, parallelism = job["spec"]["completions"], job["spec"]["parallelism"]
            assert isinstance(completions, int) and completions >= 1
            assert 1 <= parallelism <= min(completions, INDEXED_JOB_MAX_PARALLELISM)
        # Every mount names a volume of the pod, and every claim is one the manifests create.
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            assert {m["name"] for m in container["volumeMounts"]} <= volumes.keys()
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    # Many pods on many nodes write the results: the claim must allow that.
    assert objects[("PersistentVolumeClaim", "facemath-results")]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_one_image_and_its_dockerfile():
    from facemath_core import __version__

    images = set()
    for docs in _documents().values():
        for doc in docs:
            if doc["kind"] == "Job":
                images |= {c["image"] for c in _pod(doc)["containers"]}
            if doc["kind"] == "TFJob":
                for spec in doc["spec"]["tfReplicaSpecs"].values():
                    images |= {c["image"] for c in spec["template"]["spec"]["containers"]}
    assert images == {f"facemath:{__version__}"}
    dockerfile = (SCALE / "Dockerfile").read_text()
    assert f"-t facemath:{__version__}" in dockerfile
    # Every package the wheel lists must be copied in, or `pip install .` fails inside the build.
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert {"facemath_core", "facemath", "plugins", "exported_models", "pyproject.toml"} <= copied


# --- bulk projection: the Indexed Job, its shards and the merge -----------------------------------------------


def _run_with_fake_facemath(command: list[str], env: dict[str, str], tmp_path: Path) -> list[str] | None:
    """Run a manifest's shell command with sh, as the container would, with `facemath` replaced by a program that
    prints its arguments: the facemath command line it runs, or None when it runs none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    echo = bin_dir / "facemath"
    echo.write_text(f"#!{sys.executable}\nimport json, sys\nprint('argv', json.dumps(sys.argv[1:]))\n")
    echo.chmod(0o755)
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    lines = [line[5:] for line in result.stdout.splitlines() if line.startswith("argv ")]
    return ["facemath", *json.loads(lines[0])] if lines else None


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _projection_argv(index: int, tmp_path: Path, results: str | None = None) -> list[str] | None:
    """The command line projection worker `index` runs (JOB_COMPLETION_INDEX and the container's env set);
    `results` replaces the RESULTS folder."""
    container = _pod(_job("facemath-project"))["containers"][0]
    assert container["command"][:2] == ["sh", "-c"]
    env = _env(container) | {"JOB_COMPLETION_INDEX": str(index)}
    if results is not None:
        env["RESULTS"] = results
    return _run_with_fake_facemath(container["command"], env, tmp_path)


def test_projection_workers_cover_every_shard_once(tmp_path):
    job = _job("facemath-project")
    assert job["spec"]["completionMode"] == "Indexed"
    count = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == count  # the whole fleet at once; fewer would queue the rest
    outs = []
    for index in range(count):
        argv = _projection_argv(index, tmp_path)
        ctx = _parse_cli(argv)
        assert ctx.command.name == "project"
        options = _options(argv)
        assert options["--shard"] == f"{index + 1}/{count}"  # --shard K/N counts from 1
        outs.append(options["--out"])
    assert len(set(outs)) == count and all(o.startswith("/results/") for o in outs)

    merge = _pod(_job("facemath-project-merge"))["containers"][0]
    argv = [*merge["command"], *merge["args"]]
    ctx = _parse_cli(argv)
    assert ctx.command.name == "merge" and ctx.parent.command.name == "latents"
    out = _options(argv)["--out"]
    inputs = [a for a in argv[3:] if a.startswith("/") and a != out]
    assert inputs == outs  # every shard, none twice, in index order
    assert out not in outs
    # The shards are written where the merge reads them: on the results volume.
    mounts = {m["name"]: m["mountPath"] for m in _pod(_job("facemath-project"))["containers"][0]["volumeMounts"]}
    assert all(o.startswith(mounts["results"] + "/") for o in outs)


def test_a_retried_projection_worker_keeps_or_resumes_its_shard(tmp_path):
    """A retried index finds what the last try left on the shared volume: a finished shard is kept (no command
    runs), an interrupted one (a checkpoint in <out>.partial, projection/run.py) is resumed with a valid command."""
    results = tmp_path / "results"
    (results / "shard-2").mkdir(parents=True)
    assert _projection_argv(2, tmp_path, str(results)) is None
    (results / "shard-3.partial").mkdir()
    (results / "shard-3.partial" / "resume.npz").write_bytes(b"")
    argv = _projection_argv(3, tmp_path, str(results))
    assert _parse_cli(argv).command.name == "project"
    assert _options(argv)["--resume"] == str(results / "shard-3") and "--shard" not in argv
    # A .partial without a checkpoint (a killed pod) does not block a fresh start: --overwrite clears it.
    (results / "shard-4.partial").mkdir()
    argv = _projection_argv(4, tmp_path, str(results))
    count = _job("facemath-project")["spec"]["completions"]
    assert _options(argv)["--shard"] == f"5/{count}" and "--overwrite" in argv


def test_projection_workers_reach_the_tf_serving_service(tmp_path):
    """--server dns:///NAME:PORT names the headless Service in front of the TF Serving Deployment, on its gRPC
    port: DNS then returns every serving pod and the client balances over them."""
    service = yaml.safe_load((KUBERNETES / "service.yaml").read_text())
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    server = _options(_projection_argv(0, tmp_path))["--server"]
    assert server == f"dns:///{service['metadata']['name']}:{grpc['port']}"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]


# --- multi-worker training: the Indexed Job, its headless Service and TF_CONFIG --------------------------------


def _train_container() -> dict:
    return _pod(_job("facemath-train"))["containers"][0]


def _entrypoint(env: dict[str, str], command: list[str]) -> subprocess.CompletedProcess:
    """The ConfigMap's entrypoint script, run by sh as the container runs it."""
    configmap = _objects()[("ConfigMap", "facemath-train-entrypoint")]
    script = configmap["data"]["tf_config.sh"]
    container = _train_container()
    mount = next(m for m in container["volumeMounts"] if m["name"] == "entrypoint")
    assert container["command"] == ["sh", f"{mount['mountPath']}/tf_config.sh"]
    return subprocess.run(
        ["sh", "-c", script, "tf_config.sh", *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )


def test_training_service_is_the_pods_subdomain():
    job = _job("facemath-train")
    service = _objects()[("Service", "facemath-train")]
    pod = _pod(job)
    assert service["spec"]["clusterIP"] == "None"  # only a headless Service gives pods DNS records
    assert pod["subdomain"] == service["metadata"]["name"]
    # Kubernetes labels a Job's pods with batch.kubernetes.io/job-name: <job>; the Service must select them.
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}
    env = _env(_train_container())
    assert {p["port"] for p in service["spec"]["ports"]} == {int(env["PORT"])}
    assert {p["containerPort"] for p in _train_container()["ports"]} == {int(env["PORT"])}
    # Every worker takes part in every collective: all of them must run at once.
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == int(env["WORKERS"])


def test_the_entrypoint_names_every_worker_by_its_pod_dns_name():
    job = _job("facemath-train")
    pod, count = _pod(job), job["spec"]["completions"]
    env = _env(_train_container())
    port = env["PORT"]
    # The DNS names Kubernetes gives indexed pods under a subdomain: <job>-<index>.<subdomain>.
    expected = [f"{job['metadata']['name']}-{i}.{pod['subdomain']}:{port}" for i in range(count)]
    show = [sys.executable, "-c", "import os; print(os.environ['TF_CONFIG'])"]
    for index in range(count):
        result = _entrypoint({**env, "JOB_COMPLETION_INDEX": str(index)}, show)
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        assert config == {"cluster": {"worker": expected}, "task": {"type": "worker", "index": index}}
        assert read_tf_config({"TF_CONFIG": result.stdout}) == config  # what `facemath train` accepts


def test_the_entrypoint_passes_the_command_through_and_refuses_a_missing_index():
    env = _env(_train_container())
    result = _entrypoint({**env, "JOB_COMPLETION_INDEX": "1"}, ["sh", "-c", 'printf "%s|" "$@"', "x", "a b", "c"])
    assert result.returncode == 0 and result.stdout == "a b|c|"  # arguments arrive unsplit, in order
    result = _entrypoint(env, ["true"])
    assert result.returncode != 0 and "JOB_COMPLETION_INDEX" in result.stderr


def test_training_starts_a_run_or_continues_it_with_valid_command_lines(tmp_path):
    """The worker's command (after the entrypoint): a new run, or --resume once the run has a checkpoint; both
    parsed by the real CLI."""
    container = _train_container()
    results = _env(container)["RESULTS"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert results == mounts["results"]  # the run lives on the shared volume every worker reads on --resume
    local = tmp_path / "results"
    argv = _run_with_fake_facemath(container["args"], {"RESULTS": str(local)}, tmp_path)
    ctx = _parse_cli(argv)
    assert ctx.command.name == "train" and ctx.params["strategy"].value == "multi-worker"
    assert ctx.params["cpu_replicas"] == 0  # a multi-worker run splits over workers, not logical CPUs
    run = Path(_options(argv)["--out"])
    assert run.parent.parent == local and "--resume" not in argv
    # What a real save leaves (models/training.py saves through tf.train.CheckpointManager into <run>/checkpoints).
    import tensorflow as tf

    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), str(run / "checkpoints"), 3).save()
    argv = _run_with_fake_facemath(container["args"], {"RESULTS": str(local)}, tmp_path)
    ctx = _parse_cli(argv)
    assert _options(argv)["--resume"] == str(run) and ctx.params["strategy"].value == "multi-worker"
    assert "--data" not in argv and "--out" not in argv  # a resumed run keeps its recorded data and options


def test_the_tfjob_runs_the_same_training():
    container = _train_container()
    tfjob = _objects()[("TFJob", "facemath-train")]
    assert tfjob["apiVersion"] == "kubeflow.org/v1"
    specs = tfjob["spec"]["tfReplicaSpecs"]
    assert set(specs) <= TFJOB_REPLICA_TYPES and specs["Chief"]["replicas"] == 1
    # The same cluster size and the same run as the Indexed Job.
    assert sum(spec["replicas"] for spec in specs.values()) == _job("facemath-train")["spec"]["completions"]
    for spec in specs.values():
        assert spec["restartPolicy"] in {"Never", "OnFailure", "Always", "ExitCode"}
        (tf_container,) = spec["template"]["spec"]["containers"]
        assert tf_container["name"] == "tensorflow"
        assert [p["name"] for p in tf_container["ports"]] == ["tfjob-port"]
        assert tf_container["command"] == container["args"]
        assert _env(tf_container)["RESULTS"] == _env(container)["RESULTS"]
        assert {m["mountPath"] for m in tf_container["volumeMounts"]} >= {"/data", _env(container)["RESULTS"]}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["facemath", "train", "gan", "--strategy", "multi-workers"], "'multi-workers' is not one of"),
        (["facemath", "train", "gan", "--batchsize", "8"], "--batchsize"),
    ],
)
def test_the_cli_check_catches_a_wrong_command_line(argv, message):
    """The check the tests above rely on fails on a misspelt option or value, as the command line would."""
    with pytest.raises(Exception, match=re.escape(message)) as caught:
        _parse_cli(argv)
    assert type(caught.value).__name__ in {"NoSuchOption", "BadParameter"}


# --- docs/scale.md and the README quote bench/results/scale.json ---------------------------------------------


def test_the_scale_docs_quote_the_measurements():
    """The costs docs/scale.md and the README state are bench/scale.py's last run (rerun it, then update them)."""
    root = Path(__file__).parents[2]
    scale = json.loads((root / "bench" / "results" / "scale.json").read_text())
    projection = next(r for r in scale["projection"]["rows"] if r["replicas"] == 1 and r["clients"] == 1)
    training = {r["strategy"]: r for r in scale["training"]["rows"]}
    paper = {(r["replica"].split()[0], r["replicas"]): r for r in scale["paper"]["rows"]}
    gradients = scale["paper"]["payload"]["gradient_bytes"] / 2**20
    cpu_hours = {n: paper["2-core", n]["100k photos x 1000 steps h"] for n in (1, 8, 64)}
    one_client = {r["replicas"]: r["image-steps/s"] for r in scale["projection"]["rows"] if r["clients"] == 1}
    both = [
        f"{projection['KiB/image-step']:.0f} KiB per image",
        f"{gradients:.0f} MiB of gradients",
        f"{paper['accelerator', 8]['train efficiency']:.0%} efficiency",
        f"{paper['accelerator', 64]['train efficiency']:.0%} on 64",
    ]
    page = " ".join((root / "docs" / "scale.md").read_text().split())
    readme = " ".join((root / "README.md").read_text().split())
    for quote in both:
        assert quote in page and quote in readme, quote
    for quote in [
        f"{training['one']['step ms']:.0f} ms on one device",
        f"{training['mirrored']['step ms']:.0f} ms under `mirrored`",
        f"({training['mirrored']['overhead share']:.0%} overhead",
        f"{training['multi-worker']['step ms']:.0f} ms under `multi-worker`",
        f"({training['multi-worker']['overhead share']:.0%} overhead",
        f"{paper['accelerator', 1]['100k photos x 1000 steps h']:.1f} h on one accelerator replica",
        f"{cpu_hours[1]:.0f} h / {cpu_hours[8]:.0f} h / {cpu_hours[64]:.1f} h on 2-core CPU replicas",
        f"2 replicas projected {one_client[2] / one_client[1]:.1f} times faster than 1",
    ]:
        assert quote in page, quote


def test_benchmarks_md_shows_the_last_scale_run():
    """docs/benchmarks.md's scale section is what bench/report.py writes from the JSON in bench/results/ now."""
    import importlib.util

    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location("bench_report", root / "bench" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    section = "\n".join(report.scale_section(report.load("scale"), report.load("gpu"), report.load("gpu-tiny")))
    assert section.startswith("## Scale") and section in (root / "docs" / "benchmarks.md").read_text()


# --- the fleet's kustomize base and its TLS overlay (docs/deploy.md) ---------------------------------------------

# Strategic-merge-patch merge keys of the Pod spec lists the overlay touches (the Kubernetes API's
# `patchMergeKey`s: containers, volumes and env by name, volumeMounts by mountPath, ports by containerPort); every
# other list (args) is replaced whole, and a null deletes the key
# (kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
MERGE_KEYS = {
    "containers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def strategic_merge(base, patch, key: str | None = None):
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = strategic_merge(merged[name], value, name) if name in merged else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        merge_key = MERGE_KEYS[key]
        merged = {item[merge_key]: item for item in base}
        for item in patch:
            merged[item[merge_key]] = (
                strategic_merge(merged[item[merge_key]], item) if item[merge_key] in merged else item
            )
        return list(merged.values())
    return patch


def test_the_base_kustomization_lists_every_fleet_manifest():
    """`kubectl apply -k serving/kubernetes/` applies what `kubectl apply -f serving/kubernetes/` does; the file is
    named Kustomization (a name kustomize recognises) so that `apply -f`, which reads *.yaml/*.yml/*.json only,
    skips it."""
    kustomization = yaml.safe_load((KUBERNETES / "Kustomization").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in KUBERNETES.glob("*.yaml"))
    assert not list(KUBERNETES.glob("kustomization.y*ml"))


def _tls_deployment() -> dict:
    overlay = KUBERNETES / "tls"
    kustomization = yaml.safe_load((overlay / "Kustomization").read_text())
    assert kustomization["resources"] == [".."]
    (patch_file,) = [p["path"] for p in kustomization["patches"]]
    patch = yaml.safe_load((overlay / patch_file).read_text())
    deployment = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == (deployment["kind"], deployment["metadata"]["name"])
    return strategic_merge(deployment, patch)


def test_the_tls_overlay_adds_the_ssl_config_from_a_read_only_secret():
    from .tfserving_reference import MAIN_CC_FLAGS

    base = yaml.safe_load((KUBERNETES / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    pod = _tls_deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    flag = "--ssl_config_file=/tls/ssl_config.txt"
    assert container["args"] == [*base["containers"][0]["args"], flag]  # the same server, with TLS
    assert all(a[2:].split("=")[0] in MAIN_CC_FLAGS for a in container["args"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tls")
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "facemath-tfserving-tls"
    assert volume["secret"]["defaultMode"] & 0o007 == 0  # a private key: not readable by others
    # Kubernetes' grpc probes speak no TLS: start-up and liveness check the port and REST instead.
    assert "grpc" not in container["startupProbe"] and container["startupProbe"]["tcpSocket"] == {"port": 8500}
    assert "grpc" not in container["livenessProbe"] and container["livenessProbe"]["httpGet"]["port"] == 8501
    # Everything else of the base pod is kept: the other mounts, the security settings, readiness.
    assert {m["name"] for m in container["volumeMounts"]} == {
        m["name"] for m in base["containers"][0]["volumeMounts"]
    } | {"tls"}
    assert container["securityContext"] == base["containers"][0]["securityContext"]
    assert container["readinessProbe"] == base["containers"][0]["readinessProbe"]
    assert pod["securityContext"] == base["securityContext"]
    docs = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    assert "kubectl create secret generic facemath-tfserving-tls --from-file=ssl_config.txt" in docs
    assert "kubectl apply -k serving/kubernetes/tls/" in docs
