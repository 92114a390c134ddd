from salesfusion.models.baselines import statistical  # noqa: F401
