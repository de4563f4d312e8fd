"""Issue 27's real-model experiment (``aipo demo --config examples/real_rule.yaml``): its figure."""
