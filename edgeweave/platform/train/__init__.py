"""The device side's engine: local SGD, sub-models cut from the global model, batched devices, partials.

Plain functions and small classes on tensors and arrays: `training.py` (local steps, evaluation),
`sgd.py` (settings of a device's steps), `plans.py` and `submodel.py` (which channels a sub-model
keeps, gathering and scattering them, its FLOPs), `sliced_training.py` (a DISTREAL vector per
mini-batch), `batched.py` (devices with one plan trained at once), `task_plans.py` and
`task_training.py` (task-wise decoupling), `aggregate.py` (partial sums and their average).
Imports `core`, `config`, `data` and `models`; knows no method.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "models")
