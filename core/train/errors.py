"""Training errors whose message tells the user what to fix."""
from __future__ import annotations

from doctune.core.errors import UserError


class TrainError(UserError):
    """Training cannot start or continue; the message names the setting, file or folder."""
