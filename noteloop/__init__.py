"""noteloop: a clinical information extraction workbench."""

__version__ = "0.1.0"
