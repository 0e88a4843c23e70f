"""Datasets in the HumanML3D layout: captions, readers and writers, PyTorch datasets, the generated dataset."""
