"""Kernel tests: replay scenarios in real network namespaces.

Every test here needs the `kernel` fixture, which skips (with the reason from
kernel_available()) when this machine cannot create namespaces or lacks the
tools; a kernel test never passes without asking the kernel.
"""

from __future__ import annotations

import pytest

from netviz.kernel import kernel_available


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (many kernel replays)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything that asks the kernel carries the `kernel` marker, so
    # `-m "not kernel"` leaves out exactly the tests that need root.
    for item in items:
        if "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture
def kernel() -> None:
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"kernel replay unavailable: {why}")


