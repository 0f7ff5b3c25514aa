"""Deploying to a fleet (issue 28): replicas that poll one models.config, `deploy --reload` for every replica, new
replicas reached through DNS, gRPC health checking.

What the real server does is in tests/serving/tfserving_reference.py (label-move-in-one-file-strands,
label-refused-config-kept, ...); the stand-ins here follow it, so these tests show what a fleet of
tensorflow_model_server replicas would do. Observations go through the public gRPC API only (tests/serving/fleet.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.serving.deploy import deploy, label_version, resolve_replicas
from facemath_core.serving.model_config import entries_for_folder, read_config
from facemath_core.serving.standin import build_server

from .fleet import (
    POLL_FAILED,
    LabelClient,
    ProjectingClient,
    Watcher,
    one_file_label_move,
    start_fleet,
    stop_fleet,
)


@pytest.fixture
def source(tiny_export, tmp_path):
    root = tmp_path / "exported"
    shutil.copytree(tiny_export, root)
    return root


def _add_generator_version(source: Path, version: int = 2) -> None:
    shutil.copytree(source / S.GENERATOR / "1", source / S.GENERATOR / str(version))


def _generator_entry(config_path: Path):
    return {e.name: e for e in read_config(config_path)}[S.GENERATOR]


def _print_timeline(title: str, timeline: dict) -> None:
    print(f"\n{title}\n" + json.dumps(timeline, indent=1))


# --- before: one file with the new version and the moved label -------------------------------------------------


@pytest.mark.slow
def test_a_file_that_adds_a_version_and_moves_the_label_strands_a_polling_fleet(source, tmp_path):
    """The old rollout: every replica refuses the file on every poll (the label names a version it has not loaded,
    and the refused config is kept, so the version never loads), while a pod started from the same file (an HPA
    scale-up, a restart) takes the label at once: `stable` names version 1 on three replicas and 2 on the fourth."""
    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    replicas = start_fleet(first.config_path, 3)
    watcher = Watcher(replicas)
    try:
        _add_generator_version(source)
        one_file_label_move(source, base)
        time.sleep(5)  # five polls
        for replica in replicas:
            seen = watcher.now(replica)
            assert (seen.available, seen.label) == ((1,), 1), replica.name
            refusals = replica.log().count(POLL_FAILED + "Request to assign label to version 2 of model generator")
            assert refusals >= 3, replica.log()[-2000:]  # refused again on every poll
        (newcomer,) = start_fleet(first.config_path, 1, first=3)
        watcher.add(newcomer)
        seen = watcher.now(newcomer)
        assert seen.available == (1, 2) and seen.label == 2  # the fleet now disagrees on what `stable` is
        time.sleep(1)
    finally:
        watcher.stop()
        stop_fleet(watcher.replicas)
    _print_timeline("one file, version 2 + stable moved (the old rollout):", watcher.timeline(2))


# --- after: deploy --reload for every replica --------------------------------------------------------------------


@pytest.mark.slow
def test_a_rollout_moves_the_label_on_every_replica_while_clients_use_the_fleet(cli, source, tmp_path):
    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    replicas = start_fleet(first.config_path, 3)
    watcher = Watcher(replicas)
    requests, projections = LabelClient(replicas), ProjectingClient(replicas)
    try:
        time.sleep(1)
        _add_generator_version(source)
        reloads = [a for r in replicas for a in ("--reload", r.address)]
        result = cli("deploy", "--models", source, "--to", base, "--label", "stable", *reloads, "--timeout", "60")
        assert result.code == 0, result.stderr
        assert "3 replica(s)" in result.stdout and "every deployed version AVAILABLE" in result.stdout
        time.sleep(2.5)  # two more polls of the final models.config
        for replica in replicas:
            seen = watcher.now(replica)
            assert seen.available == (1, 2) and seen.label == 2, replica.name
            assert POLL_FAILED not in replica.log(), replica.log()[-2000:]  # never stuck, never refused
    finally:
        requests.stop()
        projections.stop()
        watcher.stop()
        stop_fleet(replicas)
    assert _generator_entry(first.config_path).labels == {"stable": 2}
    assert requests.failures == [] and projections.errors == []  # the clients saw no failed request
    assert {v for _, v in requests.answers} == {1, 2} and projections.done >= 1
    timeline = watcher.timeline(2)
    loaded = [t["version 2 AVAILABLE at s"] for t in timeline.values()]
    labelled = [t["stable -> 2 at s"] for t in timeline.values()]
    assert None not in loaded and None not in labelled
    # The label moved on no replica before every replica had the version (up to the watcher's sampling).
    assert min(labelled) >= max(loaded) - 0.25, timeline
    _print_timeline("deploy --reload x3 (the rollout):", timeline)


@pytest.mark.slow
def test_deploy_run_twice_without_reload_never_strands_a_polling_fleet(cli, source, tmp_path):
    """What docs/deploy.md used to say to do ("run this deploy again to move it"), done at once: the second run
    must not move the label (the old code did, and the replicas that had not polled in between were stranded)."""
    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    replicas = start_fleet(first.config_path, 3)
    watcher = Watcher(replicas)
    try:
        _add_generator_version(source)
        for _ in range(2):
            result = cli("deploy", "--models", source, "--to", base, "--label", "stable")
            assert result.code == 0 and "label stable of generator: 1 -> 2: not moved" in result.stderr, result
        time.sleep(3)
        for replica in replicas:
            seen = watcher.now(replica)
            assert seen.available == (1, 2) and seen.label == 1, replica.name
            assert POLL_FAILED not in replica.log(), replica.log()[-2000:]
    finally:
        watcher.stop()
        stop_fleet(replicas)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_lagging_replica_stops_the_label_and_is_named(cli, source, tmp_path):
    """One replica never gets the version (it is down): after --timeout, one line names it, and models.config and
    the replicas that did load the version keep the label where it was."""
    base = tmp_path / "models"
    first = deploy(source, base, label="stable")
    flag = {"allow_version_labels_for_unavailable_models": True}  # as the manifests run the server
    servers = [build_server(read_config(first.config_path), "127.0.0.1", 0, **flag) for _ in range(2)]
    down = f"127.0.0.1:{_free_port()}"
    try:
        _add_generator_version(source)
        live = [f"127.0.0.1:{port}" for _, port, _ in servers]
        reloads = [a for target in [*live, down] for a in ("--reload", target)]
        result = cli("deploy", "--models", source, "--to", base, "--label", "stable", *reloads, "--timeout", "3")
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.code == 1 and len(errors) == 1, result.stderr
        assert f"1 of 3 replicas do not have every deployed version AVAILABLE after 3 s: {down} (" in errors[0]
        assert "label stable left where it was" in errors[0] and not any(a in errors[0] for a in live)
        assert _generator_entry(first.config_path).labels == {"stable": 1}
        assert _generator_entry(first.config_path).versions == (1, 2)
        for _, _, store in servers:
            assert store.versions(S.GENERATOR) == [1, 2] and store.labels(S.GENERATOR) == {"stable": 1}
    finally:
        for server, _, _ in servers:
            server.stop(0)


@pytest.mark.slow
def test_reload_dns_names_every_address_of_the_name(cli, source, tmp_path):
    """dns:///NAME:PORT is every address the system resolver gives for NAME (a headless Service's pods)."""
    expected = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 8500, type=socket.SOCK_STREAM)})
    found = resolve_replicas(["dns:///localhost:8500"])
    assert sorted(r.rsplit(":", 1)[0].strip("[]") for r in found) == expected
    for bad, message in [
        ("dns://8.8.8.8/x:1", "only dns:///NAME:PORT"),
        ("dns:///nosuchhost.invalid:1", "cannot resolve nosuchhost.invalid"),
        ("localhost", "give HOST:PORT"),
    ]:
        with pytest.raises(FacemathError, match=message):
            resolve_replicas([bad])
    server, port, store = build_server([], "localhost", 0)  # every address of localhost
    try:
        result = cli("deploy", "--models", source, "--to", tmp_path / "m", "--label", "stable",
                     "--reload", f"dns:///localhost:{port}", "--timeout", "60")  # fmt: skip
        assert result.code == 0, result.stderr
        assert store.labels(S.GENERATOR) == {"stable": 1}
    finally:
        server.stop(0)


# --- new replicas get traffic ------------------------------------------------------------------------------------


class TinyDNS:
    """A DNS server on 127.0.0.1 (UDP) answering A queries for one name with the current address list (RFC 1035
    4.1 message format); other names: NXDOMAIN, other types: no answer. gRPC's c-ares resolver asks it when the
    target names it as the authority (dns://127.0.0.1:PORT/NAME:PORT)."""

    def __init__(self, name: str, addresses: list[str]):
        self.name, self.addresses, self.queries = name.lower(), list(addresses), 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, query: bytes) -> bytes:
        ident = struct.unpack(">H", query[:2])[0]
        pos, labels = 12, []
        while query[pos]:
            labels.append(query[pos + 1 : pos + 1 + query[pos]].decode())
            pos += 1 + query[pos]
        qtype = struct.unpack(">H", query[pos + 1 : pos + 3])[0]
        question = query[12 : pos + 5]
        known = ".".join(labels).lower() == self.name
        answers = [a for a in self.addresses] if known and qtype == 1 else []
        records = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton(a) for a in answers)
        flags = 0x8180 | (0 if known else 3)  # a response, recursion desired and available; NXDOMAIN if unknown
        return struct.pack(">HHHHHH", ident, flags, 1, len(answers), 0, 0) + question + records

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            self.queries += 1
            self.sock.sendto(self._answer(query), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _counting(store) -> dict:
    """Count the requests a stand-in answers (every Predict and GetModelMetadata resolves a model spec)."""
    count = {"n": 0}
    resolve = store.resolve

    def counted(spec):
        count["n"] += 1
        return resolve(spec)

    store.resolve = counted
    return count


def _replica_added_mid_run(tiny_export, channel_arguments) -> tuple[list[int], list[int]]:
    """Two replicas behind a DNS name, a client generating through dns://...; a third replica is added to the
    name's answer mid-run. The request counts of every replica before and after."""
    from facemath_core.serving.backends.tfserving import TFServingBackend

    entries = entries_for_folder(tiny_export)
    port = _free_port()
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # all of 127.0.0.0/8 is loopback: one port, three addresses
    servers = [build_server(entries, host, port, channel_arguments=channel_arguments) for host in hosts]
    counts = [_counting(store) for _, _, store in servers]
    dns = TinyDNS("fleet.test", hosts[:2])
    # A request that races a server's GOAWAY (max_connection_age) fails UNAVAILABLE "Stream removed" and is
    # retried, as gRPC documents for connection recycling; facemath retries UNAVAILABLE itself (a full CI run saw
    # one such race in 8 s of requests). Two retries: a request still failing after them fails the test.
    backend = TFServingBackend(f"dns://127.0.0.1:{dns.port}/fleet.test:{port}", retries=2)
    try:
        z = np.zeros((2, 8), np.float32)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            backend.generate(z)
        before = [c["n"] for c in counts]
        dns.addresses = hosts
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            backend.generate(z)
        return before, [c["n"] - b for c, b in zip(counts, before, strict=True)]
    finally:
        backend.close()
        dns.close()
        for server, _, _ in servers:
            server.stop(0)


@pytest.mark.slow
def test_a_replica_added_mid_run_receives_requests(tiny_export):
    """With the servers recycling connections (the manifests' --grpc_channel_arguments=grpc.max_connection_age_ms,
    here 1 s) the client re-resolves the name and sends to the new replica; without it, it never does (the
    control: a long-lived channel does not ask DNS again)."""
    aged = [("grpc.max_connection_age_ms", 1000), ("grpc.max_connection_age_grace_ms", 500)]
    before, after = _replica_added_mid_run(tiny_export, aged)
    assert before[2] == 0 and before[0] > 0 and before[1] > 0
    assert all(n > 0 for n in after), after
    before, after = _replica_added_mid_run(tiny_export, [])
    assert after[2] == 0 and after[0] > 0 and after[1] > 0, after


# --- health -------------------------------------------------------------------------------------------------------


def test_grpc_health_checking_as_tensorflow_model_server_serves_it(tiny_export):
    """--enable_grpc_healthcheck_service: the standard grpc.health.v1.Health service, asked with its official stubs
    (what a Kubernetes `grpc:` probe asks): the server ("") and the two services SERVING, any other NOT_FOUND;
    without the flag the service is not there."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    entries = entries_for_folder(tiny_export)
    for enabled in (True, False):
        server, port, _ = build_server(entries, "127.0.0.1", 0, health_check=enabled)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                for service in ("", "ModelService", "PredictionService", "tensorflow.serving.Nope"):
                    request = health_pb2.HealthCheckRequest(service=service)
                    try:
                        status = stub.Check(request, timeout=10).status
                        outcome = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                    except grpc.RpcError as exc:
                        outcome = exc.code().name
                    expected = ("NOT_FOUND" if service.endswith("Nope") else "SERVING") if enabled else "UNIMPLEMENTED"
                    assert outcome == expected, (enabled, service, outcome)
        finally:
            server.stop(0)


@pytest.mark.slow
def test_the_compose_flags_start_a_stand_in_with_health_and_connection_age(tiny_export):
    """`facemath serve` takes the manifests' new flags in tensorflow_model_server's spelling."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from facemath_core.serving.standin import start_subprocess

    process, address = start_subprocess(
        args=["--models", str(tiny_export), "--port=0", "--enable_grpc_healthcheck_service",
              "--grpc_channel_arguments=grpc.max_connection_age_ms=30000,grpc.max_connection_age_grace_ms=10000"]
    )  # fmt: skip
    try:
        with grpc.insecure_channel(address) as channel:
            assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
            assert label_version(channel, S.GENERATOR, "stable") is None
    finally:
        process.terminate()
        process.wait()


def test_docs_quote_the_last_fleet_run():
    """docs/deploy.md's rollout table is bench/fleet.py's last run (bench/results/fleet.json)."""
    root = Path(__file__).parents[2]
    fleet = json.loads((root / "bench" / "results" / "fleet.json").read_text())
    new = fleet["new"]
    page = (root / "docs" / "deploy.md").read_text()
    for name, row in fleet["after"]["replicas"].items():
        loaded, labelled = row[f"version {new} AVAILABLE at s"], row[f"stable -> {new} at s"]
        assert labelled >= max(r[f"version {new} AVAILABLE at s"] for r in fleet["after"]["replicas"].values())
        assert f"| {name} | {loaded:.2f} | {labelled:.2f} | {new} | 0 |" in page, name
    before = fleet["before"]["replicas"]
    stranded = [r for r in before.values() if r[f"version {new} AVAILABLE at s"] is None]
    refused = {r["refused reloads"] for r in stranded}
    assert len(stranded) == 3 and len(refused) == 1 and min(refused) > 0
    assert "| never | never | " in page and f"| {refused.pop()} each |" in page
    newcomer = next(r for r in before.values() if r[f"version {new} AVAILABLE at s"] is not None)
    assert f"{newcomer[f'stable -> {new} at s']:.2f} | {new} | 0 |" in page
    assert fleet["before"]["client failures"] == fleet["after"]["client failures"] == 0
