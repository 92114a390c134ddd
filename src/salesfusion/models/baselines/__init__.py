from salesfusion.models.baselines import (  # noqa: F401
    knn,
    launch_curves,
    lightgbm,
    lightgbm_launch,
    statistical,
)
