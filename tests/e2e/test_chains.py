"""The phase1 chain on the tiny model through its click command: every step a child of one parent, and
the label-noise ceiling's second collect (slow: whole chains)."""

import mlflow
from helpers import ids_of, invoke


def test_phase1_nests_every_step_under_one_parent(tracking, tiny_model_dir, trivia_dir):
    result = invoke(
        "phase1", "--model", tiny_model_dir, "--dataset", trivia_dir, "--num_samples", 6, "--test_samples", 4,
        "--num_trials", 2, "--max_new_tokens", 4, "--max_steps", 2, "--batch_size", 2,
    )
    assert result.exit_code == 0, result.output
    ids = ids_of(result)
    parent = ids.pop("phase1")
    assert set(ids) == {"collect", "build_judgment_data", "train_judgment", "evaluate_judgment"}
    for step, run_id in ids.items():
        run = mlflow.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent, step
        assert run.info.status == "FINISHED"
    # One evaluation, with the adapter: no run evaluates the bare model separately.
    every_run = mlflow.search_runs(search_all_experiments=True, output_format="list")
    evaluations = [r for r in every_run if r.data.tags.get("know_thyself.step") == "evaluate_judgment"]
    assert [r.info.run_name for r in evaluations] == ["evaluate_judgment_v1"]
    assert not any(r.info.run_name.startswith("evaluate_baseline") for r in every_run)
    # The parent's baseline numbers are the evaluation's prompt_only rows.
    headline = mlflow.get_run(parent).data.metrics
    evaluated = mlflow.get_run(ids["evaluate_judgment"]).data.metrics
    assert "judgment_v1/validation/judge/exact_match" in headline
    assert headline["baseline/validation/judge/exact_match"] == evaluated["validation/prompt_only/exact_match"]
    assert headline["judgment_v1/validation/judge/exact_match"] == evaluated["validation/judge/exact_match"]


def test_phase1_with_the_label_noise_ceiling(tracking, tiny_model_dir, trivia_dir):
    result = invoke(
        "phase1", "--model", tiny_model_dir, "--dataset", trivia_dir, "--num_samples", 6, "--test_samples", 4,
        "--num_trials", 2, "--max_new_tokens", 4, "--max_steps", 1, "--batch_size", 2, "--reference_sample_seed", 9,
    )
    assert result.exit_code == 0, result.output
    ids = ids_of(result)
    reference = mlflow.get_run(ids["collect_reference"])
    assert reference.data.tags["mlflow.parentRunId"] == ids["phase1"]
    assert (reference.data.params["splits"], reference.data.params["sample_seed"]) == ("validation", "9")
    assert reference.data.metrics["validation/questions"] == 4 and "train/questions" not in reference.data.metrics
    for step in ("evaluate_judgment",):
        run = mlflow.get_run(ids[step])
        assert run.data.params["reference_collect_run_id"] == ids["collect_reference"]
        assert 0.0 <= run.data.metrics["validation/label_noise_ceiling/exact_match"] <= 1.0


def test_steps_chain_by_run_id(tracking, tiny_model_dir, trivia_dir):
    small = ["--model", tiny_model_dir, "--dataset", trivia_dir]
    collected = invoke("collect", *small, "--num_samples", 6, "--test_samples", 4, "--num_trials", 2, "--max_new_tokens", 4)
    assert collected.exit_code == 0, collected.output
    collect_id = ids_of(collected)["collect"]
    built = invoke("build_judgment_data", "--collect_run_id", collect_id)
    data_id = ids_of(built)["build_judgment_data"]
    trained = invoke("train_judgment", "--model", tiny_model_dir, "--data_run_id", data_id, "--max_steps", 2, "--batch_size", 2)
    assert trained.exit_code == 0, trained.output
    train_id = ids_of(trained)["train_judgment"]
    evaluated = invoke("evaluate_judgment", "--model", tiny_model_dir, "--collect_run_id", collect_id, "--adapter_run_id", train_id)
    assert evaluated.exit_code == 0, evaluated.output
    metrics = mlflow.get_run(ids_of(evaluated)["evaluate_judgment"]).data.metrics
    assert 0 <= metrics["validation/judge/exact_match"] <= 1
    built_metrics = mlflow.get_run(data_id).data.metrics
    assert sum(v for k, v in built_metrics.items() if k.startswith("train/label_count/")) == 6
    # the same collect command again reuses the finished run
    again = invoke("collect", *small, "--num_samples", 6, "--test_samples", 4, "--num_trials", 2, "--max_new_tokens", 4)
    assert ids_of(again)["collect"] == collect_id
