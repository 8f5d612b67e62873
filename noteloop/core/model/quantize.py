"""int8 weights for the encoder's inference on CPU.

The merged encoder's linear layers are quantized dynamically: their weights are stored as
int8, one scale per output channel, and each layer's input is quantized on the fly. Chosen
by bench/bench_encoder.py (``speed --inference``): on MACCROBAT2020's test notes, per-channel
int8 predicted 1.6-1.7 times as fast as float32 at a strict F1 within 0.005 of it, where one
scale per layer cost 0.013 and ONNX Runtime's int8 was slower than torch's.

Quantizing is quick and deterministic, so a loaded model quantizes its own
merged weights rather than storing a second copy of them; what is stored with the model is
the check that int8 keeps its F1 (:class:`noteloop.core.model.base.Int8Check`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

# Which linear layers become int8, fastest first: the publish-time check keeps the first
# that holds the F1. Every one ("all"), or all but each layer's feed-forward output
# projection, whose input (after GELU) has the outlying features that int8 rounds worst:
# on a 150-note MACCROBAT2020 model "all" cost 0.009 strict F1 and "ffn_output_float"
# 0.002, on a 50-note model "all" cost 0.003.
SCHEMES = ("all", "ffn_output_float")


def int8_encoder(encoder: nn.Module, scheme: str = "all") -> nn.Module:
    """``encoder`` with the linear layers of ``scheme`` replaced by int8 ones, in place
    (it must be a copy of its own: the merged inference copy)."""
    if scheme not in SCHEMES:
        raise ValueError(f"int8 scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    layers = {name for name, m in encoder.named_modules() if isinstance(m, nn.Linear)
              and not (scheme == "ffn_output_float" and _ffn_output(name))}
    with warnings.catch_warnings():
        # torch announces that its quantized tensors will move to another package; the
        # pinned torch has them, and the warning would repeat for every layer
        warnings.simplefilter("ignore", UserWarning)
        quantized = quantize_dynamic(
            encoder, dict.fromkeys(layers, per_channel_dynamic_qconfig), dtype=torch.qint8,
            inplace=True,
        )
    return quantized.eval()


def _ffn_output(name: str) -> bool:
    """A BERT-style layer's feed-forward output projection (``layer.3.output.dense``), not
    the attention's (``layer.3.attention.output.dense``)."""
    return name.endswith(".output.dense") and ".attention." not in name


def int8_supported(device: str) -> bool:
    """torch's dynamic int8 layers run on CPU only."""
    return device == "cpu" and bool(torch.backends.quantized.supported_engines)


def is_int8(module: nn.Module) -> bool:
    """Whether ``module`` has int8 linear layers (built by :func:`int8_encoder`)."""
    return any(isinstance(m, Int8Linear) for m in module.modules())
