"""One-line ValueErrors for bad env arguments."""
from __future__ import annotations

import numpy as np


def check_int(field: str, value, minimum: int, why: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= ``minimum``; ``why`` says what the bound is for."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum} (got {value!r}): {why}")
