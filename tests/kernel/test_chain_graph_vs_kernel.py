"""The loader refuses exactly the chain graphs the kernel refuses: loops
through jumps or gotos reachable from a built-in chain, and nesting deeper
than the jump stack (iptables-nft: "Too many links")."""

from __future__ import annotations

import pytest

from netviz.engine.limits import JUMP_STACK_SIZE
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.kernel.netns import load, missing_tools, namespace
from netviz.kernel.replay import ReplayError

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"


def nested(depth: int, verb: str) -> str:
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(1, depth + 1)]
    lines.append(f"-A INPUT {verb} C1")
    lines += [f"-A C{i} {verb} C{i + 1}" for i in range(1, depth)]
    return "\n".join([*lines, "COMMIT", ""])


CASES = {
    "goto loop": HEAD + "-A INPUT -g A\n-A A -g B\n-A B -g A\nCOMMIT\n",
    "jump loop": HEAD + "-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n",
    "mixed loop": HEAD + "-A INPUT -j A\n-A A -g B\n-A B -j A\nCOMMIT\n",
    "self jump": HEAD + "-A INPUT -j A\n-A A -j A\nCOMMIT\n",
    "loop reached last": HEAD + "-A B -j A\n-A A -j B\n-A INPUT -j A\nCOMMIT\n",
    "unreachable loop": HEAD + "-A A -j B\n-A B -g A\nCOMMIT\n",
    "unreachable self goto": HEAD + "-A A -g A\nCOMMIT\n",
    "diamond": HEAD + "-A INPUT -j A\n-A INPUT -j B\n-A A -j B\nCOMMIT\n",
    "15 jumps": nested(JUMP_STACK_SIZE - 1, "-j"),
    "16 jumps": nested(JUMP_STACK_SIZE, "-j"),
    "15 gotos": nested(JUMP_STACK_SIZE - 1, "-g"),
    "16 gotos": nested(JUMP_STACK_SIZE, "-g"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_loader_refuses_what_the_kernel_refuses(kernel: None, name: str) -> None:
    if missing_tools("iptables-nft-restore"):
        pytest.skip("iptables-nft-restore is not installed")
    text = CASES[name]
    try:
        parse_ruleset(text)
        ours = True
    except ParseError as exc:
        assert "Too many links" in exc.reason
        ours = False
    with namespace("nvz-graph") as ns:
        try:
            load(ns, text, backend="nft")
            kernels = True
        except ReplayError as exc:
            assert "Too many links" in str(exc)
            kernels = False
    assert ours == kernels, f"{name}: netviz {'accepts' if ours else 'refuses'}, the kernel does not"
