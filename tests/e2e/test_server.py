"""Against a real `mlflow server` (SQLite backend, proxied artifacts) on loopback: the whole
pipeline, loading from elsewhere, two pipelines at once, and the server going away mid-run."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from helpers import ROOT, SMALL_CHAIN


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """An `mlflow server` in its own process group; stop() ends the whole group."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port = folder, port or _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "Server":
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from know_thyself.data.questions import write_jsonl

    folder = tmp_path_factory.mktemp("data")
    records = [{"question_id": f"q{i}", "question": f"What is item number {i}?",
                "answer": {"value": f"item {i}", "aliases": [f"item {i}"]}} for i in range(16)]
    write_jsonl(records[:10], folder / "train.jsonl")
    write_jsonl(records[10:], folder / "validation.jsonl")
    return folder


def _env(uri: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")}
    env.update(MLFLOW_TRACKING_URI=uri, **extra)
    return env


def _start(uri, model, dataset, cwd, *extra, **env):
    args = [sys.executable, str(ROOT / "entrypoints" / "multiphase.py"), "--model", model, "--dataset", str(dataset), *SMALL_CHAIN, *extra]
    return subprocess.Popen(args, cwd=cwd, env=_env(uri, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ids(output: str) -> dict:
    return dict(re.findall(r"^([\w/]+): (\w+)$", output, flags=re.MULTILINE))


def test_pipeline_registry_and_loading_through_a_server(server, tiny_model_dir, dataset, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    started = time.perf_counter()
    process = _start(server.uri, tiny_model_dir, dataset, work)
    out, _ = process.communicate(timeout=900)
    elapsed = time.perf_counter() - started
    assert process.returncode == 0, out[-3000:]
    print(f"multiphase on the tiny model against mlflow server: {elapsed:.1f} s")
    ids = _ids(out)
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()  # nothing local
    client = mlflow.MlflowClient(server.uri)
    parent = ids["multiphase"]
    collect = client.get_run(ids["phase3/collect"])
    phase = client.get_run(collect.data.tags["mlflow.parentRunId"])
    assert phase.data.tags["mlflow.parentRunId"] == parent
    assert collect.info.artifact_uri.startswith("mlflow-artifacts:")
    assert "responses.jsonl" in {a.path for a in client.list_artifacts(ids["phase3/collect"])}
    for name in ("judgment_v1", "knowledge_base", "judgment_v2"):
        assert client.get_model_version_by_alias(name, "current").tags["parent_run_id"] == parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent(
        """
        import json, mlflow
        frame = mlflow.pyfunc.load_model("models:/judgment_v2@current").predict(["What is item number 3?"])
        print(json.dumps(frame.to_dict("records")))
        """
    )
    loaded = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=_env(server.uri),
                            capture_output=True, text=True, timeout=300, check=False)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    row = json.loads(loaded.stdout.strip().splitlines()[-1])[0]
    assert row["ability"] in ("can", "uncertain", "cannot")
    assert abs(row["p_can"] + row["p_uncertain"] + row["p_cannot"] - 1) < 1e-4


@pytest.mark.parametrize("same_experiment", [False, True], ids=["two-experiments", "one-experiment"])
def test_two_pipelines_at_once(server, tiny_model_dir, dataset, tmp_path, same_experiment):
    names = ["shared", "shared"] if same_experiment else ["team-a", "team-b"]
    runs = []
    for index, name in enumerate(names):
        folder = tmp_path / f"p{index}"
        folder.mkdir()
        # distinct seeds: two different pipelines, so neither may reuse the other's steps
        runs.append(_start(server.uri, tiny_model_dir, dataset, folder, "--seed", str(100 + index + 10 * same_experiment),
                           MLFLOW_EXPERIMENT_NAME=f"{name}-{same_experiment}"))
    outputs = [p.communicate(timeout=900)[0] for p in runs]
    assert all(p.returncode == 0 for p in runs), [o[-2000:] for o in outputs]
    ids = [_ids(o) for o in outputs]
    client = mlflow.MlflowClient(server.uri)
    for name in ("judgment_v1", "knowledge_base", "judgment_v2"):
        versions = [ids[i][name] for i in range(2)]
        assert versions[0] != versions[1]
        for i, version in enumerate(versions):
            registered = client.get_model_version(name, version)
            assert registered.tags["parent_run_id"] == ids[i]["multiphase"]
    for i in range(2):  # each pipeline's artifacts are its own
        target = tmp_path / f"download{i}"
        target.mkdir()
        path = client.download_artifacts(ids[i]["phase1/collect"], "responses.jsonl", str(target))
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        seed = client.get_run(ids[i]["phase1/collect"]).data.params["seed"]
        assert seed == str(100 + i + 10 * same_experiment) and len(rows) == 10


def test_server_going_away_mid_run_then_resume(tmp_path, tiny_model_dir, dataset):
    port = _free_port()
    folder = tmp_path / "server"
    folder.mkdir()
    server = Server(folder, port).start()
    work = tmp_path / "work"
    work.mkdir()
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    try:
        process = _start(server.uri, tiny_model_dir, dataset, work, "--knowledge_epochs", "150", "--max_steps", "-1", **quick)
        client = mlflow.MlflowClient(server.uri)
        deadline = time.time() + 600
        while time.time() < deadline:
            time.sleep(0.3)
            found = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                       "attributes.run_name = 'train_knowledge' and attributes.status = 'RUNNING'")
            if found:
                break
        assert found, "train_knowledge never started"
        server.stop()
        out, _ = process.communicate(timeout=600)
        assert process.returncode != 0
        assert "Traceback" not in out.splitlines()[-1]
        server = Server(folder, port).start()
        finished = {r.info.run_name: r.info.run_id for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], "attributes.status = 'FINISHED'")}
        rerun = _start(server.uri, tiny_model_dir, dataset, work, "--knowledge_epochs", "150", "--max_steps", "-1", **quick)
        out, _ = rerun.communicate(timeout=900)
        assert rerun.returncode == 0, out[-3000:]
        ids = _ids(out)
        assert ids["phase1/collect"] == finished["collect"]
        assert ids["phase1/train_judgment"] == finished["train_judgment"]
        assert ids["phase2/train_knowledge"] != found[0].info.run_id
    finally:
        server.stop()
