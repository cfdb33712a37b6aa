import gymnasium
import pytest


class TextObservationEnv(gymnasium.Env):
    """An env whose observation (free text) no memrl encoder takes: bad-input tests make it by id."""
    observation_space = gymnasium.spaces.Text(8)
    action_space = gymnasium.spaces.Discrete(2)


gymnasium.register("memrl-test/TextObservation-v0", entry_point=TextObservationEnv)


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray cluster for every test that needs Ray (starting one costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def margin(request):
    """Assert a claim about a trained (or sampled) quantity and record how far it cleared its threshold.

    ``margin("val_loss", value, below=0.5)`` asserts value < 0.5 (``above=`` asserts value > threshold).
    With MEMRL_TEST_MARGINS=<file> set, each check appends one JSON line (test, quantity, value,
    threshold, the kernel settings) to that file: docs/testing/measure_margins.sh collects them for
    docs/testing.md, under several CPU kernel settings.
    """
    import json
    import os

    def check(quantity: str, value: float, *, below: float | None = None, above: float | None = None) -> None:
        if (below is None) == (above is None):
            raise TypeError("margin() takes exactly one of below= or above=")
        value = float(value)
        path = os.environ.get("MEMRL_TEST_MARGINS")
        if path:
            kernels = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}
            record = {"test": request.node.nodeid, "quantity": quantity, "value": value,
                      "op": "<" if below is not None else ">", "threshold": below if below is not None else above,
                      "kernels": kernels}
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if below is not None:
            assert value < below, f"{quantity} = {value:.4g}, expected < {below:.4g}"
        else:
            assert value > above, f"{quantity} = {value:.4g}, expected > {above:.4g}"

    return check
