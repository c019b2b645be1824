"""pretrainx: one JAX/Flax runner for pretraining generative models."""
__version__ = "0.1.0"
