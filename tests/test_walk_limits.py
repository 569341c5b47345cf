"""Chain graphs the kernel refuses at load time (loops through jumps or
gotos, nesting deeper than the jump stack) are refused by the parser with the
chains and the line; and every walk is bounded by a step budget, so even a
ruleset that bypasses the parser cannot make a walk run without end."""

from __future__ import annotations

import pytest

from netviz.engine.context import TraceState
from netviz.engine.host import Host
from netviz.engine.limits import JUMP_STACK_SIZE, MAX_WALK_STEPS, LoadLimits, WalkLimitError
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.engine.pipeline import packet_from_dict, trace_packet
from netviz.engine.ruleset import Chain, Rule, Ruleset, Table, Target

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
# The dump of the report: anonymous upload, then any packet to a local address.
GOTO_LOOP = HEAD + "-A INPUT -g A\n-A A -g B\n-A B -g A\nCOMMIT\n"
HOST = {"interfaces": [{"name": "eth0", "addrs": ["10.0.0.1/24"]}], "routes": []}
PACKET = {"proto": "tcp", "src": "10.0.0.2", "dst": "10.0.0.1", "dport": 22, "in_iface": "eth0"}


def nested(depth: int, verb: str = "-j") -> str:
    """INPUT → C1 → … → C<depth>: `depth` jumps below the built-in chain."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(1, depth + 1)]
    lines.append(f"-A INPUT {verb} C1")
    lines += [f"-A C{i} {verb} C{i + 1}" for i in range(1, depth)]
    return "\n".join([*lines, "COMMIT", ""])


def refusal(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_ruleset(text)
    return info.value


def test_it_refuses_the_goto_loop_naming_the_chains_and_the_line() -> None:
    err = refusal(GOTO_LOOP)
    assert err.line == 9 and err.text == "-A B -g A"
    assert "A → B → A" in err.reason and "Too many links" in err.reason


@pytest.mark.parametrize(
    ("rules", "line", "cycle"),
    [
        ("-A INPUT -j A\n-A A -j B\n-A B -j A\n", 9, "A → B → A"),
        ("-A INPUT -j A\n-A A -g B\n-A B -j A\n", 9, "A → B → A"),
        ("-A INPUT -j A\n-A A -j A\n", 8, "A → A"),
        # The loop exists before INPUT reaches it: refused all the same.
        ("-A B -j A\n-A A -j B\n-A INPUT -j A\n", 7, "A → B → A"),
    ],
)
def test_it_refuses_loops_through_jumps_too(rules: str, line: int, cycle: str) -> None:
    err = refusal(HEAD + rules + "COMMIT\n")
    assert err.line == line and cycle in err.reason and "Too many links" in err.reason


def test_a_loop_no_built_in_chain_reaches_loads_as_in_the_kernel() -> None:
    # nft_table_validate() only walks chains reachable from a base chain.
    parse_ruleset(HEAD + "-A A -j B\n-A B -g A\nCOMMIT\n")
    parse_ruleset(HEAD + "-A A -g A\nCOMMIT\n")


@pytest.mark.parametrize("verb", ["-j", "-g"])
def test_nesting_deeper_than_the_jump_stack_is_refused(verb: str) -> None:
    parse_ruleset(nested(JUMP_STACK_SIZE - 1, verb))
    err = refusal(nested(JUMP_STACK_SIZE, verb))
    # C15 → C16 is the 16th jump: line 4 + 16 declarations + 1 (INPUT) + 15.
    assert err.line == 4 + JUMP_STACK_SIZE + 1 + JUMP_STACK_SIZE - 1
    assert "C16" in err.reason and "INPUT" in err.reason and "Too many links" in err.reason


def test_a_wide_graph_of_many_chains_is_checked_without_recursion() -> None:
    # 5,000 chains each jumping to the next 3 (a DAG 15 deep at most) load.
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(5000)]
    lines += [f"-A INPUT -j C{i}" for i in range(0, 5000, 14)]
    lines += [f"-A C{i} -j C{i + k}" for i in range(5000) for k in (1, 2, 3) if i % 14 != 13 and i + k < 5000 and (i + k) // 14 == i // 14]
    parse_ruleset("\n".join([*lines, "COMMIT", ""]))


def _rule(chain: str, index: int, target: str, goto: bool) -> Rule:
    verb = "-g" if goto else "-j"
    return Rule("filter", chain, index, index, f"-A {chain} {verb} {target}", (), Target(target, (), goto))


def walk(ruleset: Ruleset, max_steps: int | None = None) -> None:
    state = TraceState(use_index=False)
    if max_steps is not None:
        state.max_steps = max_steps
    trace_packet(ruleset, Host.from_dict(HOST, "ipv4"), packet_from_dict(PACKET), state)


def test_a_goto_loop_that_bypassed_the_parser_ends_at_the_step_budget() -> None:
    table = Table("filter", (
        Chain("filter", "INPUT", "ACCEPT", (_rule("INPUT", 1, "A", True),)),
        Chain("filter", "A", None, (_rule("A", 1, "B", True),)),
        Chain("filter", "B", None, (_rule("B", 1, "A", True),)),
    ))
    with pytest.raises(WalkLimitError) as info:
        walk(Ruleset(tables=(table,)))
    assert info.value.steps == MAX_WALK_STEPS
    assert f"{MAX_WALK_STEPS:,}" in str(info.value)


def test_the_budget_is_read_when_a_walk_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from netviz.engine import limits

    monkeypatch.setattr(limits, "MAX_WALK_STEPS", 123)
    assert TraceState().max_steps == 123


def test_a_fan_out_the_kernel_loads_ends_at_the_step_budget() -> None:
    # Every chain calls the next three times: 3^15 calls of C15, within the
    # jump stack, so the loader takes it; the walk stops at its budget.
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":C{i} - [0:0]" for i in range(1, 16)]
    lines.append("-A INPUT -j C1")
    lines += [f"-A C{i} -j C{i + 1}" for i in range(1, 15) for _ in range(3)]
    ruleset = parse_ruleset("\n".join([*lines, "COMMIT", ""]))
    with pytest.raises(WalkLimitError) as info:
        walk(ruleset, max_steps=50_000)
    assert info.value.steps == 50_000


# --- what a server accepts (LoadLimits) ---------------------------------------------


def test_it_refuses_more_chains_than_the_limit_at_the_first_one_over() -> None:
    text = nested(12, "-j")
    parse_ruleset(text, limits=LoadLimits(max_chains=15))  # 12 user chains + 3 built-in
    err = refusal_with(text, LoadLimits(max_chains=10))
    assert err.line == 1 + 3 + 8 and "more than 10 chains" in err.reason


def test_it_refuses_more_rules_than_the_limit_counting_expanded_address_lists() -> None:
    text = nested(12, "-j")
    err = refusal_with(text, LoadLimits(max_rules=5))
    assert err.line == 4 + 12 + 6 and "more than 5 rules" in err.reason
    # One line, 3 × 3 rules (iptables adds one per address pair).
    lists = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1,10.0.0.2,10.0.0.3 -d 10.1.0.1,10.1.0.2,10.1.0.3 -j ACCEPT\nCOMMIT\n"
    assert len(parse_ruleset(lists, limits=LoadLimits(max_rules=9)).rules()) == 9
    err = refusal_with(lists, LoadLimits(max_rules=8))
    assert err.line == 3 and "more than 8 rules" in err.reason


def test_it_refuses_more_set_members_than_the_limit() -> None:
    ipsets = "create S hash:ip family inet\n" + "".join(f"add S 10.0.0.{i}\n" for i in range(1, 21))
    text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m set --match-set S src -j ACCEPT\nCOMMIT\n"
    parse_ruleset(text, ipsets, limits=LoadLimits(max_set_members=20))
    with pytest.raises(ParseError) as info:
        parse_ruleset(text, ipsets, limits=LoadLimits(max_set_members=10))
    assert info.value.line == 12 and "more than 10 set members" in info.value.reason


def refusal_with(text: str, limits: LoadLimits) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_ruleset(text, limits=limits)
    return info.value
