"""Phase 2's early stop on the embedded model: it reads the training's own forwards (TRL's fused head, the
shared prompt prefix) and stops once every example comes out token for token."""

from know_thyself.config import TrainConfig
from know_thyself.data.prompts import judgment_completion, judgment_messages
from know_thyself.inference.models import EMBEDDED, load_model
from know_thyself.training.learned import LearnedStop
from know_thyself.training.lora import train_lora


def test_the_training_stops_once_every_example_is_reproduced():
    # One completion for every question: learned in a few epochs, not before the first.
    same = [{"prompt": judgment_messages(f"Which river flows through town {i}?"), "completion": judgment_completion("can")}
            for i in range(8)]
    stop = LearnedStop(1.0)
    cfg = TrainConfig(data_run_id="0" * 32, batch_size=4, epochs=12, learning_rate=1e-3, loss="sft", balance="none",
                      dtype="float32")
    trained = train_lora(same, cfg, model_and_tokenizer=load_model(EMBEDDED, dtype="float32"), callbacks=(stop,))
    assert stop.history[0] < 1.0 and stop.history[-1] == 1.0
    assert stop.stopped_after == len(stop.history) < 12
    assert trained.trainer.state.global_step == 2 * stop.stopped_after  # 8 examples in batches of 4 per epoch
