import pytest


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray cluster for every test that needs Ray (starting one costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
