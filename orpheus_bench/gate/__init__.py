"""CI performance gates: rules (YAML), metrics, bootstrap decisions, the engine and its outputs.

``load_rules(path)`` validates a rules file; ``evaluate(rules, candidate_dir, baseline_dir)`` returns a
`GateReport` whose ``exit_code`` is 0 (pass), 1 (a rule failed) or 2 (input unusable);
``evaluate_and_print`` also prints it and writes JUnit XML / Markdown. See docs/gates.md.
"""

from __future__ import annotations

from orpheus_bench.gate.engine import GateReport, evaluate, evaluate_and_print
from orpheus_bench.gate.rules import GateRules, load_rules

__all__ = ["GateReport", "GateRules", "evaluate", "evaluate_and_print", "load_rules"]
