"""Scoring forecasts: the metrics (``metrics``), the scales they divide by (``scales``) and
the choice of a model or weights by a named metric (``selection``).

Below the models in the layers (data -> scoring -> ... -> models -> evaluation), as darts keeps
its metrics apart from its models: an ensemble weighs its members by the same metric a backtest
reports, so the models need it, and it needs nothing above the data.
"""
