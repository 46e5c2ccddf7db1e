"""Shared test setup. Each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.mlflow",
    "tests.fixtures.kube",
    "tests.fixtures.cluster",
    "tests.fixtures.airflow",
    "tests.fixtures.mlserver",
    "tests.fixtures.operators",
]
