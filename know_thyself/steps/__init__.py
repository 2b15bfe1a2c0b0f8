"""The pipeline's steps: one module per MLproject entry point, named after it.

Each module holds ``run_<step>(config)``: it fetches and checks the step's upstream runs, opens
(or reuses) the step's run, calls the flat library modules of :mod:`know_thyself` with plain
data, and logs what they return. The chains ``phase1`` and ``multiphase`` (also the ``main``
entry point) run the steps as nested child runs.
"""
