"""Training: the examples the judge and the knowledge phase learn from, and LoRA SFT with TRL.

* :mod:`~know_thyself.training.judgment_examples`: judgment examples, their balancing, the held-out share;
* :mod:`~know_thyself.training.label_loss`: the judge's loss, a cross-entropy over the label words at
  the label position, with class weights and optional soft targets;
* :mod:`~know_thyself.training.judge`: training the judge (the one path of train_judgment and the sweep);
* :mod:`~know_thyself.training.best_epoch`: the epoch that judges held-out questions best is the one kept;
* :mod:`~know_thyself.training.knowledge_examples`: Phase 2's question-answer examples;
* :mod:`~know_thyself.training.lora`: LoRA supervised fine-tuning through TRL's ``SFTTrainer``, adapters;
* :mod:`~know_thyself.training.speedups`: the CPU speed-ups of that trainer;
* :mod:`~know_thyself.training.divergence`: a training that diverged (a loss or weight not finite, a loss
  that climbed far, an exploding gradient, an adapter larger than its layer) is refused;
* :mod:`~know_thyself.training.dev_split`: the dev split carved from train, and the best grid point.
"""
