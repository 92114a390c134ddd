"""Training: losses, the Lightning module and data windows."""
