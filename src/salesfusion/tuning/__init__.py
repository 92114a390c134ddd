"""Hyperparameter search over validated model configurations: searchers (``searchers``), the
validation-part objective (``objective``), the resumable trial log (``log``), the local loop
(``runner``) and the Ray Tune backend (``ray_backend``)."""
