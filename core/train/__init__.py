"""Training: LoRA on the student from the project's items (see ``loop.run``).

Public surface: ``run(TrainParams, events=, cancel=) -> TrainResult``,
``latest_complete_run(project) -> Path | None``, ``choose_placement``, and the
student: ``resolve_student`` (a hub id or folder to a checked local folder),
``trusted_now`` (whether a run's trust in the student's code still holds).
"""
from doctune.core.runs import latest_complete_run
from doctune.core.train.device import Placement, choose_placement
from doctune.core.train.errors import TrainError
from doctune.core.train.params import TrainParams, TrainResult
from doctune.core.train.step import run
from doctune.core.train.student import resolve_student, trusted_now

__all__ = [
    "run", "TrainParams", "TrainResult", "TrainError", "latest_complete_run", "choose_placement", "Placement",
    "resolve_student", "trusted_now",
]
