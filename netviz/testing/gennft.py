"""A kube-proxy nftables-mode listing (`table ip kube-proxy`) for N services,
shaped like kube-proxy's own (pkg/proxy/nftables): a `service-ips` verdict map
keyed `ipv4_addr . inet_proto . inet_service`, one service chain and one
endpoint chain per service, masquerading by mark.  For `manage.py bench`."""

from __future__ import annotations

from typing import Any


def cluster_ip(i: int) -> str:
    return f"172.30.{i // 250}.{i % 250 + 1}"


def endpoint_ip(i: int) -> str:
    return f"10.{180 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"


def generate_kube_nft(services: int) -> str:
    elements = ",\n\t\t\t     ".join(
        f"{cluster_ip(i)} . tcp . 80 : goto service-{i}" for i in range(services)
    )
    out = [
        "table ip kube-proxy {\n",
        "\tset cluster-ips {\n\t\ttype ipv4_addr\n\t\telements = { "
        + ", ".join(cluster_ip(i) for i in range(services)) + " }\n\t}\n\n",
        f"\tmap service-ips {{\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = {{ {elements} }}\n\t}}\n\n",
        "\tchain filter-forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
        "\t\tct state new jump cluster-ips-check\n\t}\n\n",
        "\tchain cluster-ips-check {\n\t\tip daddr @cluster-ips reject\n\t\tip daddr 172.30.0.0/16 drop\n\t}\n\n",
        "\tchain mark-for-masquerade {\n\t\tmeta mark set meta mark | 0x00004000\n\t}\n\n",
        "\tchain masquerading {\n\t\tmeta mark & 0x00004000 == 0x00000000 return\n"
        "\t\tmeta mark set meta mark ^ 0x00004000\n\t\tmasquerade fully-random\n\t}\n\n",
        "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n\n",
        "\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\tjump masquerading\n\t}\n\n",
        "\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n",
    ]
    for i in range(services):
        out.append(
            f"\n\tchain service-{i} {{\n\t\tip daddr {cluster_ip(i)} tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade\n"
            f"\t\tnumgen random mod 1 vmap {{ 0 : goto endpoint-{i} }}\n\t}}\n"
            f"\n\tchain endpoint-{i} {{\n\t\tip saddr {endpoint_ip(i)} jump mark-for-masquerade\n"
            f"\t\tmeta l4proto tcp dnat to {endpoint_ip(i)}:8080\n\t}}\n"
        )
    out.append("}\n")
    return "".join(out)


def sample_nft_packets(services: int, count: int) -> list[dict[str, Any]]:
    step = max(services // count, 1)
    return [
        {"proto": "tcp", "src": "192.168.0.50", "dst": cluster_ip(i * step % services), "dport": 80, "in_iface": "eth0"}
        for i in range(count)
    ]


HOST = {"interfaces": [{"name": "eth0", "addrs": ["192.168.0.2/24"]}, {"name": "cni0", "addrs": ["10.180.0.254/16"]}],
        "routes": ["10.0.0.0/8 dev cni0"]}
