"""Loaders that read saved models through other routes than the Python TensorFlow API."""
