"""Small scenario builders for kernel and engine tests."""

from __future__ import annotations

from typing import Any

from netviz.scenario import Scenario, scenario_from_dict

# A router with a client side, a server side and an upstream with the default route.
HOST: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.88.1.1/24"]},
        {"name": "eth1", "addrs": ["10.88.2.1/24"]},
        {"name": "eth2", "addrs": ["192.0.2.1/24"]},
    ],
    "routes": ["default via 192.0.2.254 dev eth2", "198.51.100.0/24 via 10.88.2.254"],
}
HOST6: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["2001:db8:1::1/64"]},
        {"name": "eth1", "addrs": ["2001:db8:2::1/64"]},
    ],
    "routes": ["default via 2001:db8:2::fe dev eth1"],
}


def scenario(
    ruleset: str,
    packet: dict[str, Any],
    host: dict[str, Any] | None = None,
    ipsets: str | None = None,
    family: str = "ipv4",
) -> Scenario:
    data: dict[str, Any] = {
        "ruleset": ruleset if ruleset.endswith("\n") else ruleset + "\n",
        "family": family,
        "host": host if host is not None else (HOST6 if family == "ipv6" else HOST),
        "packet": packet,
    }
    if ipsets:
        data["ipsets"] = ipsets if ipsets.endswith("\n") else ipsets + "\n"
    return scenario_from_dict(data)
