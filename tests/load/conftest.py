import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "load: runs the app under gunicorn with many clients (NETVIZ_LOAD=1 enables it)"
    )
