"""Flax Linen modules only: they know nothing of losses, optimisers or data."""
