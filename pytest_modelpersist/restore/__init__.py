"""Restoring into a model: the options a restore takes, naming, planning, and the one engine.

`options` (the parsed restore options) and `naming` (closest-name suggestions) import neither
numpy nor TensorFlow: the format contract and the option parser use them at collection time.
"""
