"""Small helpers shared by the associative-memory benchmarks (not a benchmark: the name starts with _)."""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable


def crossing(xs, ys, level: float) -> float | None:
    """First x where the decreasing curve ys(x) falls to ``level``, interpolated linearly in log x.

    None when the curve does not cross inside the grid (widen the grid).
    """
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 >= level > y1:
            weight = (y0 - level) / (y0 - y1)
            return float(math.exp(math.log(x0) + weight * (math.log(x1) - math.log(x0))))
    return None


def median_ms(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time in ms of each function over ``repeats`` calls, after one warm-up call.

    The functions are called in turn within each repeat, so load from other
    processes on a shared machine hits all of them alike.
    """
    times = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}
