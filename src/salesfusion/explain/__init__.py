"""Explanations and market intelligence: analyses of what drives demand, each checked against
the synthetic truth."""
