from salesfusion.models.baselines import knn, lightgbm, statistical  # noqa: F401
