"""Extraction backends: the only package that imports torch, transformers and peft.

Import the submodules you need (``base`` and ``config`` stay light; ``encoder`` loads
torch): this file imports nothing, so ``import noteloop.core.model`` costs nothing.
"""
