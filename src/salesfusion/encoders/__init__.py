"""Per-modality encoders, an encoder registry and an embedding cache."""
