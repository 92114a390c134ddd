"""The classical and gradient-boosted baselines; each module registers its models when the
model registry asks for them (``components.MODELS``)."""
