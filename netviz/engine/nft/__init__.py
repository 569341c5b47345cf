"""Native nftables rulesets: model, parsers (list ruleset text and JSON), evaluator."""
