"""Judges registered before the package took its layered shape keep loading by their URI.

A judge is an MLflow model from code: the code file stored inside it runs when it loads. The file in
tests/data/legacy_judge_model.py is the judge's code as the earlier layout logged it (it imports
``know_thyself.models`` and ``know_thyself.judge``).
"""

from pathlib import Path

import mlflow

from know_thyself.tracking.registry import JUDGE_ARTIFACT, register

LEGACY_CODE = Path(__file__).resolve().parents[2] / "data" / "legacy_judge_model.py"


def test_a_judge_logged_with_the_old_layout_loads_and_judges(tracking, tiny, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    assert "from know_thyself.models import load_model" in LEGACY_CODE.read_text()
    model, _ = tiny
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name=JUDGE_ARTIFACT, python_model=str(LEGACY_CODE), artifacts={"adapter": str(adapter)},
            model_config={"base_model": tiny_model_dir, "label_scheme": "three"},
        )
    version = register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v1", {})
    judged = mlflow.pyfunc.load_model(f"models:/judgment_v1/{version}").predict(["What is the capital of Peru?"])
    assert list(judged.columns) == ["question", "ability", "p_can", "p_uncertain", "p_cannot"]
    assert judged.loc[0, "ability"] in ("can", "uncertain", "cannot")
    assert abs(judged.loc[0, ["p_can", "p_uncertain", "p_cannot"]].sum() - 1.0) < 1e-5
