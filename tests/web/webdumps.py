"""Dumps for the web tests: real ones from fixtures/demo and tests/data/realworld,
and a hostile one."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo"
REALWORLD = ROOT / "tests" / "data" / "realworld"

# Everything a comment can carry that HTML, DOT or a graphviz record label
# would read as syntax.  Chain names cannot hold most of it; comments can.
# As iptables-save writes it (`"` and `\\` escaped inside the quotes) …
HOSTILE_COMMENT = 'ns/<script>alert(1)</script>{a|b}\\"q\\\\x:https'
# … and as the comment really is.
HOSTILE_TEXT = 'ns/<script>alert(1)</script>{a|b}"q\\x:https'
HOSTILE_DUMP = f"""# a dump with hostile comments
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
:cali-fw-cali0badc0ffee - [0:0]
-A INPUT -p tcp -m comment --comment "{HOSTILE_COMMENT} cluster IP" -m tcp --dport 443 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -m comment --comment "{HOSTILE_COMMENT}" -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -s 10.0.0.5/32 -m comment --comment "<img src=x onerror=alert(2)>" -j ACCEPT
COMMIT
"""


def demo_text(node: str, name: str = "ruleset.rules") -> str:
    path = DEMO / node / name
    return path.read_text() if path.exists() else ""


def shared_dump(name: str) -> str:
    return (REALWORLD / name).read_text(encoding="utf-8")
