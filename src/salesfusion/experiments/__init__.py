"""Experiments: many models on several datasets, repeated trials, ablations, significance."""
