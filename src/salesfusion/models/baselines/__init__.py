from salesfusion.models.baselines import lightgbm, statistical  # noqa: F401
