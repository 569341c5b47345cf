"""Random host sysctls and packets for the kernel check of scenario-v2 §1.

Each seed gives one scenario: a three-interface host with an fwmark rule,
a random set of sysctls (rp_filter 0/1/2 on all, default or a device,
accept_local, route_localnet, src_valid_mark, ip_forward and per-device
forwarding) and a packet chosen to meet them: sources from the wrong side,
the host's own addresses, 127/8, marked packets, forwarded or local.
"""

from __future__ import annotations

import random
from typing import Any

IFACES = ("eth0", "eth1", "eth2")
HOST: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.81.0.1/24"]},
        {"name": "eth1", "addrs": ["10.82.0.1/24"]},
        {"name": "eth2", "addrs": ["10.83.0.1/24"]},
    ],
    "routes": [
        "default via 10.82.0.254 dev eth1",
        "10.90.0.0/16 via 10.81.0.254 dev eth0",
        "10.91.0.0/16 via 10.83.0.254 dev eth2 table 100",
        "blackhole 10.66.0.0/16",
    ],
    "rules": ["pref 100 fwmark 0x1 lookup 100"],
}
# Every chain logs, so each table a packet passes is a hop; conntrack and a
# nat table make localhost DNAT (kube-proxy's NodePort) part of the mix.
RULES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -m conntrack --ctstate NEW -j LOG
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m addrtype --src-type LOCAL -j LOG
-A INPUT -j LOG
-A FORWARD -j LOG
-A POSTROUTING -j LOG
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -d 127.0.0.1/32 -p tcp --dport 30080 -j DNAT --to-destination 10.82.0.50:8080
-A POSTROUTING -s 127.0.0.0/8 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -j LOG
-A FORWARD -j LOG
COMMIT
"""
SOURCES = ("10.90.0.5", "10.91.0.5", "10.82.0.7", "10.81.0.7", "10.83.0.7", "10.81.0.1", "10.82.0.1",
           "127.0.0.5", "10.66.0.9", "198.51.100.7")
DESTINATIONS = ("10.81.0.1", "10.82.0.1", "10.83.9.9", "10.81.0.9", "8.8.4.4", "127.0.0.1", "10.90.1.1", "10.91.1.1")


def random_scenario(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sysctls: dict[str, str] = {}
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(("rp_filter", "rp_filter", "accept_local", "route_localnet", "src_valid_mark", "forwarding"))
        scope = rng.choice(("all", "default", *IFACES))
        value = rng.choice(("0", "1", "2")) if key == "rp_filter" else rng.choice(("0", "1"))
        sysctls[f"net.ipv4.conf.{scope}.{key}"] = value
    if rng.random() < 0.2:
        sysctls["net.ipv4.ip_forward"] = rng.choice(("0", "1"))
    if rng.random() < 0.15:
        packet: dict[str, Any] = {"proto": "tcp", "src": "127.0.0.1", "dst": "127.0.0.1", "sport": 40000, "dport": 30080}
    else:
        packet = {"proto": rng.choice(("tcp", "udp")), "src": rng.choice(SOURCES), "dst": rng.choice(DESTINATIONS),
                  "sport": 40000 + rng.randint(0, 99), "dport": 80, "in_iface": rng.choice(IFACES)}
        if rng.random() < 0.3:
            packet["mark"] = 1
    return {"name": f"sysctl-{seed}", "ruleset": RULES, "family": "ipv4",
            "host": {**HOST, "sysctls": sysctls}, "packet": packet}
