"""Datasets in the HumanML3D layout: captions, readers, writers, PyTorch datasets, generated data."""
