"""salesfusion: multimodal demand forecasting for cross-border e-commerce."""

import os

# Before any OpenMP library loads: passive waiting (see ``salesfusion.threads``).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
