"""The high-volume contingency plan: levels, rules, and the switch seat managers pull."""
