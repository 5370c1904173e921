"""A static, traceable Qwen3.5 text decoder built on the weights of a Hugging Face model.

Prefill and decode are one graph: every layer takes its state (conv + recurrent for Gated
DeltaNet layers, key + value for attention layers) as explicit tensors and returns the updated
state, so the exported IR needs no cache objects and no transformers internals.
"""

from .decoder import StaticQwen35Decoder, locate_text_model

__all__ = ["StaticQwen35Decoder", "locate_text_model"]
