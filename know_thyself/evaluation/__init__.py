"""Measuring: what a model knows, and how well a judge predicts it.

* :mod:`~know_thyself.evaluation.ability`: sample and grade N answers per question and label its ability
  (the collect step's work);
* :mod:`~know_thyself.evaluation.judgment`: a judge scored beside cheap baselines
  (:mod:`~know_thyself.evaluation.methods`, :mod:`~know_thyself.evaluation.probe`);
* :mod:`~know_thyself.evaluation.metrics`: the metrics, one module per family, and bootstrap intervals;
* :mod:`~know_thyself.evaluation.knowledge_test`: QA accuracy before and after Phase 2;
* :mod:`~know_thyself.evaluation.taught`: judgment v2's held-out test, and where the merged model
  shows what Phase 2 taught;
* :mod:`~know_thyself.evaluation.comparison`: headline numbers and the paired comparison of two judges;
* :mod:`~know_thyself.evaluation.summary`, :mod:`~know_thyself.evaluation.plots`: the multiphase
  summary and the figures.

Plain data in, plain data out: nothing here touches the tracking store.
"""
