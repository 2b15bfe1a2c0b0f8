"""Phase 2's early stop on the embedded model: the greedy answers to the taught questions are generated
and graded between epochs of the running training (TRL's fused head and the shared prompt prefix in
place), and the training stops at the first checked epoch whose answers are right often enough."""

from know_thyself.config import TrainConfig
from know_thyself.data.prompts import answer_completion, answer_messages
from know_thyself.inference.models import EMBEDDED, load_model
from know_thyself.training.learned import LearnedStop, greedy_accuracy_check
from know_thyself.training.lora import train_lora

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Germany": "Berlin"}


def test_the_training_stops_at_the_first_checked_epoch_that_answers_well_enough():
    questions = [f"What is the capital of {country}?" for country in CAPITALS]
    answers = list(CAPITALS.values())
    examples = [{"prompt": answer_messages(q), "completion": answer_completion(f"The capital is {a}.")}
                for q, a in zip(questions, answers)]
    model, tokenizer = load_model(EMBEDDED, dtype="float32")
    check = greedy_accuracy_check(tokenizer, questions, [[a] for a in answers], max_new_tokens=16)
    before = check(model)
    assert before >= 0.5  # the model knows most of these already; a gentle training keeps them
    stop = LearnedStop(before, check)
    cfg = TrainConfig(data_run_id="0" * 32, batch_size=4, epochs=6, learning_rate=1e-5, loss="sft", balance="none",
                      dtype="float32", lora_layers=0)
    trained = train_lora(examples, cfg, (model, tokenizer), callbacks=(stop,))
    assert stop.accuracy == [(2, before)]  # no check after the first epoch; the second is good enough
    assert stop.stopped_after == 2 and trained.trainer.state.global_step == 2  # one batch of 4 per epoch
    assert len(stop.reproduced) == 2 and all(0.0 <= share <= 1.0 for share in stop.reproduced)
    assert trained.trainer.model.training  # handed back in training mode after the check
    late = LearnedStop(1.01, check)  # a share no check reaches: every epoch runs, checked from the second to the last but one
    trained = train_lora(examples, TrainConfig(**{**cfg.__dict__, "epochs": 4}), load_model(EMBEDDED, dtype="float32"),
                         callbacks=(late,))
    assert [epoch for epoch, _ in late.accuracy] == [2, 3] and late.stopped_after is None
    assert len(late.reproduced) == 4 and trained.trainer.state.global_step == 4  # the last epoch ran, unchecked
