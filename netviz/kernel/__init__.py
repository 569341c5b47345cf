"""Ask the real kernel: replay a scenario in network namespaces."""

from .replay import (
    KernelTrace,
    KernelUnavailable,
    ReplayError,
    ReplayUnsupported,
    check_loads,
    kernel_available,
    replay,
)

__all__ = [
    "KernelTrace",
    "KernelUnavailable",
    "ReplayError",
    "ReplayUnsupported",
    "check_loads",
    "kernel_available",
    "replay",
]
