"""The multimodal neural forecaster, split as GluonTS splits a model:

- ``config``: ``MultimodalConfig``, validated at the edge;
- ``inputs``: ``MultimodalInputs``, the fitted preprocessing state (item and market rows,
  vocabularies, covariate names and scale, target transform, launch levels) with the functions
  that turn a panel and origins into windows and tensors; ``fitting`` builds it, ``launch_windows``
  and ``explain`` read it;
- ``predictor``: ``MultimodalPredictor`` (network + inputs): forecasts, launch forecasts, save and
  load, and ``with_items`` for items described by their content (``new_items``);
- ``estimator``: ``MultimodalForecaster``, the registered ``Forecaster`` that fits both.
"""

from salesfusion.models.multimodal.config import MultimodalConfig
from salesfusion.models.multimodal.estimator import MultimodalForecaster
from salesfusion.models.multimodal.fitting import DEFAULT_CACHE
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.models.multimodal.predictor import MultimodalPredictor

__all__ = ["DEFAULT_CACHE", "MultimodalConfig", "MultimodalForecaster", "MultimodalInputs",
           "MultimodalPredictor"]
