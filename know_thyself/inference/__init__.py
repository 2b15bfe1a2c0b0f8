"""The inference engine: loading models and running them.

* :mod:`~know_thyself.inference.models`: model arguments (embedded, local, registry, Hub) and loading;
* :mod:`~know_thyself.inference.sampling`: N sampled answers plus the greedy one per prompt, one
  interface over three backends;
* :mod:`~know_thyself.inference.prefix_cache`: the shared prompt prefix prefilled once;
  :mod:`~know_thyself.inference.cascade`: attention over its single copy;
* :mod:`~know_thyself.inference.memory`: the up-front memory bound of a sampling batch;
* :mod:`~know_thyself.inference.judgments`: a model's judgment and label probabilities, and the
  probability of its first answer token (before it answers).
"""
