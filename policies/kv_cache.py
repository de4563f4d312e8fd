"""A KV cache layer with room reserved for the tokens still to come, for the sampling loop.

transformers' ``DynamicLayer`` appends a token with ``torch.cat`` of the whole cache, so each
decoding step copies every layer's keys and values once more: ``n`` new tokens after a context
of ``T`` cost ``O(n (T + n))`` copying per layer. :class:`ReservedLayer` keeps them in buffers
with room for ``capacity`` positions, writes each new token in place and hands attention a view
of the filled part, so the copying is ``O(n)``. The attention sees the same numbers, so the
logits are identical.
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicLayer


class ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live in buffers with room for ``capacity`` positions.

    Args:
        layer: a filled ``DynamicLayer``; its keys and values are copied into the buffers.
        capacity: positions to reserve (the buffers grow, doubling, if more arrive).
    """

    def __init__(self, layer: DynamicLayer, capacity: int) -> None:
        super().__init__()
        self.device, self.is_initialized = layer.keys.device, True
        self.length = layer.keys.shape[-2]
        self.key_buffer = self._reserve(layer.keys, max(capacity, self.length))
        self.value_buffer = self._reserve(layer.values, max(capacity, self.length))
        self._expose()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + key_states.shape[-2]
        if end > self.key_buffer.shape[-2]:
            self.key_buffer = self._reserve(self.keys, 2 * end)
            self.value_buffer = self._reserve(self.values, 2 * end)
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep (and repeat) the rows ``beam_idx``, as ``DynamicLayer`` does."""
        index = beam_idx.to(self.device)
        self.key_buffer = self.key_buffer.index_select(0, index)
        self.value_buffer = self.value_buffer.index_select(0, index)
        self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        self.length = self.keys.shape[-2]

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    @staticmethod
    def _reserve(states: torch.Tensor, capacity: int) -> torch.Tensor:
        buffer = states.new_empty((*states.shape[:2], capacity, states.shape[-1]))
        buffer[:, :, : states.shape[-2]] = states
        return buffer


def reserve(cache: Cache, capacity: int) -> bool:
    """Make each layer of ``cache`` a :class:`ReservedLayer` with room for ``capacity`` positions.

    Only a cache whose layers are all plain, filled ``DynamicLayer`` objects is changed (sliding
    windows, static, quantised or offloaded caches are left as they are).

    Returns:
        Whether the cache was changed.
    """
    layers = getattr(cache, "layers", None)
    plain = getattr(cache, "offloading", False) is False and layers
    if not plain or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return False
    for index, layer in enumerate(layers):
        layers[index] = ReservedLayer(layer, capacity)
    return True


def cache_argument(model: torch.nn.Module) -> str:
    """The forward keyword of the KV cache: ``cache`` in transformers 5, ``past_key_values`` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
