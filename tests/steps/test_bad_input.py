"""The bad-input table: each case through the command line gives a non-zero exit, one clear line
naming the problem and the fix, no run left RUNNING and no registered model version."""

import contextlib
import json
import os
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from helpers import command


def _dataset(folder: Path, train: str | None = None, validation: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = "".join(
        json.dumps({"question_id": f"q{i}", "question": f"What is {i}?", "answer": {"value": str(i), "aliases": [str(i)]}}) + "\n"
        for i in range(5)
    )
    (folder / "train.jsonl").write_text(good if train is None else train)
    (folder / "validation.jsonl").write_text(good if validation is None else validation)
    return folder


def _bad_row(**answer):
    return json.dumps({"question_id": "bad", "question": "What?", "answer": {"value": "x", **answer}}) + "\n"


# (case, entry point, arguments (a callable of tmp_path for file cases), message)
CASES = [
    ("unknown model name", "collect", ["--model", "gpt-five"], "unknown model 'gpt-five'"),
    ("a folder that is not a model", "collect", lambda t: ["--model", str(_dataset(t / "notamodel"))], "has no config.json"),
    ("a model folder that does not exist", "collect", ["--model", "./checkpoints/none"], "does not exist"),
    ("missing dataset folder", "collect", ["--dataset", "/no/such/folder"], "no directory exists"),
    ("missing split file", "collect", lambda t: ["--dataset", str(_only_train(t))], "validation"),
    ("wrong schema (row and field named)", "collect", lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases="x")))], "line 1"),
    ("empty dataset", "collect", lambda t: ["--dataset", str(_dataset(t / "d", validation=""))], "has no questions"),
    ("more samples than exist", "collect", lambda t: ["--dataset", str(_dataset(t / "d")), "--num_samples", "50"], "lower num_samples/test_samples to <= 5"),
    ("num_trials 0", "collect", ["--num_trials", "0"], "num_trials must be >= 1, got 0"),
    ("negative learning rate", "train_judgment", ["--data_run_id", "a" * 32, "--learning_rate", "-0.1"], "learning_rate must be in (0, 1)"),
    ("non-numeric learning rate", "train_judgment", ["--data_run_id", "a" * 32, "--learning_rate", "fast"], "'fast' is not a valid float"),
    ("upstream run id that does not exist", "build_judgment_data", ["--collect_run_id", "f" * 32], "is not a run in this tracking store"),
    ("malformed run id", "evaluate_judgment", ["--collect_run_id", "123"], "collect_run_id must be an MLflow run id"),
    ("question with no aliases", "collect", lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases=[])))], "answer.aliases"),
    ("very long question", "collect", lambda t: ["--dataset", str(_long_question(t)), "--num_samples", "5", "--test_samples", "5"], "the limit is 1000"),
    ("bad label scheme", "collect", ["--label_scheme", "five"],
     "Invalid value for '--label_scheme': 'five' is not one of 'three', 'binary'"),
    ("bad dtype", "collect", ["--dtype", "int8"], "'int8' is not one of 'auto', 'bfloat16', 'float16', 'float32'"),
    ("zero temperature", "collect", ["--temperature", "0"], "temperature must be in (0, 5]"),
    ("bad phase", "multiphase", ["--phase", "4"], "Invalid value for '--phase': '4' is not one of '0', '1', '2', '3'"),
    ("unknown registry URI form", "collect", ["--model", "models:/a/b/c"], "is not a registry URI"),
    ("num_trials far too large", "collect", ["--num_trials", "1000000"], "num_trials must be <= 100, got 1000000"),
    ("blank aliases", "collect", lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases=["", " "])))],
     "line 1: field 'answer.aliases' has no usable alias"),
    ("aliases of punctuation", "collect", lambda t: ["--dataset", str(_dataset(t / "d", validation=_bad_row(aliases=["!!!"])))],
     "validation.jsonl, line 1: field 'answer.aliases' has no usable alias"),
    ("question of zero-width spaces", "collect",
     lambda t: ["--dataset", str(_dataset(t / "d", train=json.dumps({"question_id": "z", "question": "\u200b\u200b", "answer": {"value": "x", "aliases": ["x"]}}) + "\n"))],
     "line 1: field 'question' is empty"),
    ("a folder named train.jsonl", "collect", lambda t: ["--dataset", str(_split_path_made_by(t, lambda p: p.mkdir()))],
     "train.jsonl exists but is not a readable file: it is a folder"),
    ("a symbolic link loop", "collect", lambda t: ["--dataset", str(_split_path_made_by(t, lambda p: p.symlink_to(p.name)))],
     "train.jsonl exists but is not a readable file: it is a symbolic link loop"),
    # One file as the dataset: its size bounds both samples together; errors still name file, line and field.
    ("a single file smaller than both samples", "collect",
     lambda t: ["--dataset", str(_dataset(t / "d") / "train.jsonl"), "--num_samples", "3", "--test_samples", "3"],
     "holds 5 questions, fewer than the 3 train + 3 validation = 6 asked for"),
    ("a bad row in a single file", "collect",
     lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases=[])) / "train.jsonl")],
     "train.jsonl, line 1: field 'answer.aliases'"),
    ("a missing single file", "collect", ["--dataset", "/no/such/questions.parquet"], "dataset file /no/such/questions.parquet does not exist"),
    ("no split at all", "collect", ["--num_samples", "0", "--test_samples", "0"], "num_samples and test_samples are both 0"),
    ("a judge URI that is not a registry URI", "evaluate_registered", ["--model_uri", "runs:/abc/judge"],
     "model_uri 'runs:/abc/judge' is not a registry URI"),
    ("a judge that is not registered", "evaluate_registered", ["--model_uri", "models:/judgment_v2@current"],
     "model_uri 'models:/judgment_v2@current' is not registered in"),
    ("a bad split for a registered judge", "evaluate_registered", ["--split", "test"],
     "Invalid value for '--split': 'test' is not one of 'train', 'validation'"),
    # Bounds of options with no sane meaning beyond them, and seeds the random generators take.
    ("lora_alpha far too large", "train_judgment", ["--data_run_id", "a" * 32, "--lora_alpha", "1000000"],
     "lora_alpha must be in 1..4096, got 1000000"),
    ("lora_r far too large", "train_judgment", ["--data_run_id", "a" * 32, "--lora_r", "100000"], "lora_r must be in 1..1024, got 100000"),
    ("batch_size far too large", "train_knowledge", ["--data_run_id", "a" * 32, "--batch_size", "10000000"],
     "batch_size must be in 1..4096, got 10000000"),
    ("epochs far too many", "multiphase", ["--knowledge_epochs", "1e9"], "knowledge_epochs must be in (0, 1000], got 1000000000.0"),
    ("a negative seed", "collect", ["--seed", "-1"], "seed must be in 0..4294967295, got -1"),
    ("a seed beyond the generators", "train_judgment", ["--data_run_id", "a" * 32, "--seed", str(10**20)],
     f"seed must be in 0..4294967295, got {10**20}"),
    ("a sample_seed beyond the generators", "collect", ["--sample_seed", str(2**40)], f"sample_seed must be in 0..4294967295, got {2**40}"),
    ("an upper-case run id", "build_judgment_data", ["--collect_run_id", "A" * 32],
     f"run ids are in lower case; pass {'a' * 32!r}"),
    ("pickled model weights", "collect", lambda t: ["--model", str(_pickled_model(t))],
     "holds pickled weights (pytorch_model.bin) and no .safetensors file; pickled weights are refused"),
    ("deeply nested JSON", "collect",
     lambda t: ["--dataset", str(_dataset(t / "d", train="[" * 100000 + "]" * 100000 + "\n"))],
     "train.jsonl, line 1: the JSON is nested too deeply to read"),
    ("a CSV cell over the csv module's limit", "collect", lambda t: ["--dataset", str(_huge_csv_cell(t))],
     "questions.csv, row 1: a cell is longer than 131,072 characters, the csv module's limit"),
]


def _pickled_model(tmp_path: Path) -> Path:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle
    return folder


def _huge_csv_cell(tmp_path: Path) -> Path:
    path = tmp_path / "questions.csv"
    path.write_text('question_id,question,answer.value,answer.aliases\nq1,"' + "why " * 40000 + '",x,"[""x""]"\n')
    return path


def _split_path_made_by(tmp_path: Path, make) -> Path:
    folder = _dataset(tmp_path / "d")
    (folder / "train.jsonl").unlink()
    make(folder / "train.jsonl")
    return folder


def _only_train(tmp_path: Path) -> Path:
    folder = _dataset(tmp_path / "d")
    (folder / "validation.jsonl").unlink()
    return folder


def _long_question(tmp_path: Path) -> Path:
    row = json.dumps({"question_id": "long", "question": "Why " * 400 + "?", "answer": {"value": "x", "aliases": ["x"]}}) + "\n"
    folder = _dataset(tmp_path / "d")
    with open(folder / "train.jsonl", "a") as handle:
        handle.write(row)
    (folder / "train.jsonl").write_text((folder / "train.jsonl").read_text())
    return folder


def _assert_clean_failure(result, message):
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    assert mlflow.MlflowClient().search_model_versions() == []


@pytest.mark.parametrize(("case", "entrypoint", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tracking, tmp_path, case, entrypoint, args, message):
    if callable(args):
        args = args(tmp_path)
    result = CliRunner().invoke(command(entrypoint), args)
    _assert_clean_failure(result, message)


def test_upstream_run_of_the_wrong_step(tracking):
    with mlflow.start_run(tags={"know_thyself.step": "collect"}) as run:
        pass
    result = CliRunner().invoke(command("train_judgment"), ["--data_run_id", run.info.run_id])
    _assert_clean_failure(result, "is a collect run, not a build_judgment_data run")


def test_unreachable_tracking_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    assert result.exit_code != 0
    assert "tracking server http://127.0.0.1:9 is not reachable" in result.output
    assert "Traceback" not in result.output


def test_unwritable_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if mode == os.W_OK else real_access(path, mode))
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    assert result.exit_code != 0
    assert "is not writable" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_failure_inside_a_step_ends_its_run_failed(tracking, tiny_model_dir, trivia_dir, monkeypatch):
    from know_thyself.evaluation import ability as collect

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(collect, "load_sampler", broken)
    result = CliRunner().invoke(command("phase1"), ["--model", tiny_model_dir, "--dataset", str(trivia_dir),
                                                     "--num_samples", "4", "--test_samples", "4"])
    assert result.exit_code != 0 and "disk full" in result.output
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert {r.info.run_name: r.info.status for r in runs} == {"phase1": "FAILED", "collect": "FAILED"}


# The options each entry point needs before it opens the tracking store.
ENTRYPOINT_ARGS = {
    "collect": [],
    "build_judgment_data": ["--collect_run_id", "f" * 32],
    "evaluate_judgment": ["--collect_run_id", "f" * 32],
    "train_judgment": ["--data_run_id", "f" * 32],
    "build_knowledge_data": ["--collect_run_id", "f" * 32],
    "train_knowledge": ["--data_run_id", "f" * 32],
    "test_knowledge": ["--collect_before_run_id", "e" * 32, "--collect_after_run_id", "f" * 32],
    "phase1": [],
    "multiphase": [],
}


@pytest.mark.parametrize("entrypoint", sorted(ENTRYPOINT_ARGS))
def test_corrupt_tracking_store(tmp_path, monkeypatch, entrypoint):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    garbage = bytes(range(256)) * 64
    (tmp_path / "mlflow.db").write_bytes(garbage)
    try:
        result = CliRunner().invoke(command(entrypoint), ENTRYPOINT_ARGS[entrypoint])
    finally:
        mlflow.set_tracking_uri(None)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert f"the tracking store {tmp_path / 'mlflow.db'} is not an SQLite database" in result.output
    assert "move it aside" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert (tmp_path / "mlflow.db").read_bytes() == garbage  # left for the user to inspect


def test_damaged_tables_in_a_valid_store(tmp_path, monkeypatch, empty_store):
    """A store whose header and schema read fine but whose tables are garbage: still one line."""
    import shutil
    import sqlite3

    monkeypatch.chdir(tmp_path)
    # An absolute URI: MLflow keeps one store per URI string in a process, so the relative
    # default would reach a store another test opened.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    # A copy of the session's empty store: no connection of this process has its pages cached.
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    store = tmp_path / "mlflow.db"
    with contextlib.closing(sqlite3.connect(store)) as connection:
        roots = [page for (page,) in connection.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    with store.open("r+b") as handle:  # every table and index root: not a valid page any more
        for page in roots:
            handle.seek((page - 1) * page_size)
            handle.write(b"\xff" * page_size)
    try:
        result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    finally:
        mlflow.set_tracking_uri(None)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert f"the tracking store {store} is damaged" in result.output and "move it aside" in result.output


def test_batch_too_large_for_memory_is_refused_before_the_run(tracking, tiny_model_dir, trivia_dir, monkeypatch):
    from know_thyself.inference import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 200 * 2**20)
    args = ["--model", tiny_model_dir, "--dataset", str(trivia_dir), "--num_samples", "12", "--test_samples", "8",
            "--num_trials", "100", "--inference_batch_size", "64", "--dtype", "float32"]
    result = CliRunner().invoke(command("collect"), args)
    _assert_clean_failure(result, "inference_batch_size=12 x num_trials=100 = 1200 rows")
    assert "lower inference_batch_size to " in result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


# --------------------------------------------------------------------------------------------
# Permissions, under a real unprivileged user: the suite runs as root in CI, and root reads and
# writes everything, so each case runs in a forked child that drops to 'nobody' first.
# --------------------------------------------------------------------------------------------


def _as_unprivileged(body, timeout: int = 300) -> dict:
    """Run ``body()`` (returning a JSON-able dict) in a forked child without root's rights."""
    import pwd
    import signal

    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            signal.alarm(timeout)
            if os.geteuid() == 0:
                try:
                    os.setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)
                except OSError as exc:
                    raise _Skip(f"cannot drop root privileges here: {exc}") from None
                # Imports are done, but the command still reads files of the environment and the
                # checkout at run time (a package's data, its metadata): a checkout in a private
                # folder (mktemp -d) cannot serve another user.
                for needed in (Path(sys.prefix), Path(__file__).resolve().parents[2]):
                    if not os.access(needed, os.R_OK | os.X_OK):
                        raise _Skip(f"the unprivileged user cannot read {needed}; run from a checkout others can read")
            payload = {"result": body()}
        except _Skip as exc:
            payload = {"skip": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_end, "w") as handle:
            handle.write(json.dumps(payload))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        text = handle.read()
    os.waitpid(pid, 0)
    payload = json.loads(text) if text else {"error": "the child died without an answer"}
    if "skip" in payload:
        pytest.skip(payload["skip"])
    assert "error" not in payload, payload["error"]
    return payload["result"]


class _Skip(Exception):
    pass


@pytest.fixture
def shared_dir():
    """A temporary folder an unprivileged user can reach (pytest's tmp_path is private to root)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="know-thyself-perm-"))
    folder.chmod(0o777)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o777)
    shutil.rmtree(folder)


def _invoke(main, args: list[str]) -> dict:
    result = CliRunner().invoke(main, args)
    return {"exit_code": result.exit_code, "output": result.output}


# The child may not be able to read the Python installation (root's home, say): everything it
# runs is imported here first, by loading the command and running it once as root on the same
# path (so the child imports nothing new).


def test_read_only_working_folder_as_a_user(shared_dir, monkeypatch):
    folder = shared_dir / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    main, args = command("build_judgment_data"), ["--collect_run_id", "f" * 32]
    with monkeypatch.context() as warm_up:
        real_access = os.access
        warm_up.setattr(os, "access", lambda path, mode: mode != os.W_OK and real_access(path, mode))
        warm_up.chdir(folder)
        _invoke(main, args)

    def body():
        if not os.access(shared_dir, os.X_OK) or os.access(folder, os.W_OK):
            raise _Skip("the unprivileged user cannot reach the folder, or can write to it anyway")
        os.chdir(folder)
        return _invoke(main, args)

    result = _as_unprivileged(body)
    assert result["exit_code"] != 0
    assert f"the working folder {folder} is not writable" in result["output"], result["output"]
    assert "MLFLOW_TRACKING_URI" in result["output"] and "Traceback" not in result["output"]
    assert list(folder.iterdir()) == []


def _shared_store(shared_dir: Path, monkeypatch, empty_store: Path) -> Path:
    """A store folder anyone may write, as the working folder and the tracking store (MLflow's tables made)."""
    import shutil

    store = shared_dir / "store"
    store.mkdir()
    store.chmod(0o777)
    shutil.copyfile(empty_store, store / "mlflow.db")
    monkeypatch.chdir(store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    return store


def test_unreadable_dataset_folder_as_a_user(shared_dir, monkeypatch, empty_store):
    dataset = _dataset(shared_dir / "data")
    for path in dataset.iterdir():
        path.chmod(0o644)
    dataset.chmod(0o000)
    store = _shared_store(shared_dir, monkeypatch, empty_store)
    main = command("collect")
    try:
        warm_up = _invoke(main, ["--dataset", str(shared_dir / "missing")])
    finally:
        mlflow.set_tracking_uri(None)
    assert "no directory exists" in warm_up["output"], warm_up["output"]
    (store / "mlflow.db").chmod(0o666)

    def body():
        if not os.access(store / "mlflow.db", os.W_OK) or os.access(dataset, os.R_OK):
            raise _Skip("the unprivileged user cannot use the store, or can read the folder anyway")
        return _invoke(main, ["--dataset", str(dataset)])

    result = _as_unprivileged(body)
    assert result["exit_code"] != 0
    assert f"dataset folder {dataset} is not readable by this user" in result["output"], result["output"]
    assert "chmod" in result["output"] and "Traceback" not in result["output"]


def test_read_only_artifact_folder_as_a_user(shared_dir, monkeypatch, empty_store):
    """Found when the step starts, not when it saves what it made after minutes of sampling."""
    store = _shared_store(shared_dir, monkeypatch, empty_store)
    main, args = command("build_judgment_data"), ["--collect_run_id", "f" * 32]
    try:
        warm_up = _invoke(main, args)  # as root: the store and the experiment exist afterwards
    finally:
        mlflow.set_tracking_uri(None)
    assert "is not a run in this tracking store" in warm_up["output"], warm_up["output"]
    (store / "mlflow.db").chmod(0o666)
    artifacts = store / "mlruns"
    artifacts.mkdir()
    artifacts.chmod(0o555)

    def body():
        if not os.access(store / "mlflow.db", os.W_OK) or os.access(artifacts, os.W_OK):
            raise _Skip("the unprivileged user cannot use the store, or can write the artifact folder anyway")
        return _invoke(main, args)

    result = _as_unprivileged(body)
    assert result["exit_code"] != 0
    assert f"the artifact folder {artifacts} is not writable by this user" in result["output"], result["output"]
    assert "Traceback" not in result["output"]
