from salesfusion.models.baselines import knn, launch_curves, lightgbm, statistical  # noqa: F401
