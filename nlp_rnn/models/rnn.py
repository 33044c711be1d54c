"""The three recurrent cells the project teaches, behind one constructor, plus state helpers.

State is a tensor (h) for `rnn` and `gru`, and a tuple (h, c) for `lstm`; each is (layers * directions, B, H).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..model_configs import CELLS


def make_rnn(cell: str, input_size: int, hidden: int, layers: int = 1, dropout: float = 0.0,
             bidirectional: bool = False) -> nn.RNNBase:
    """A fused multi-layer recurrent layer (cuDNN on GPU, oneDNN on CPU), batch-first."""
    kwargs = dict(num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True,
                  bidirectional=bidirectional)
    if cell == "lstm":
        return nn.LSTM(input_size, hidden, **kwargs)
    if cell == "gru":
        return nn.GRU(input_size, hidden, **kwargs)
    if cell == "rnn":
        return nn.RNN(input_size, hidden, nonlinearity="tanh", **kwargs)
    raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {cell!r}")


def map_state(state, fn):
    """Apply `fn` to every tensor of a state (h, or (h, c))."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(fn(s) for s in state)
    return fn(state)


def detach_state(state):
    """Cut the graph at a window boundary (truncated BPTT) while keeping the values."""
    return map_state(state, lambda s: s.detach())


def select_state(state, index: torch.Tensor, dim: int = 1):
    """Reorder the batch dimension of a state, e.g. to follow beams in beam search."""
    return map_state(state, lambda s: s.index_select(dim, index))


def top_hidden(state) -> torch.Tensor:
    """The last layer's hidden state, (B, H)."""
    h = state[0] if isinstance(state, tuple) else state
    return h[-1]


def quantize_int8(module: nn.Module, spec) -> nn.Module:
    """A copy of `module` with the layers in `spec` dynamically quantized to int8 (torch's eager-mode API, which
    upstream is moving to torchao; its deprecation warnings are silenced here, where it is known to work)."""
    quantization = getattr(torch.ao, "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise RuntimeError(f"int8 quantization needs torch.ao.quantization, which torch {torch.__version__} lacks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=UserWarning)
        return quantization.quantize_dynamic(module, spec, dtype=torch.qint8)


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from its pre-activations (B, 4H), in torch's gate order i, f, g, o: → h, c (B, H)."""
    i, f, _, o = torch.sigmoid(gates).chunk(4, 1)  # one sigmoid over all four (g's quarter unused) beats three
    g = torch.tanh(gates[:, 2 * c.size(1):3 * c.size(1)])
    c = f * c + i * g
    return o * torch.tanh(c), c


def gru_cell(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step from the input and recurrent products (B, 3H) with their biases, torch's gate order r, z, n."""
    H = h.size(1)
    r, z = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H]).chunk(2, 1)
    n = torch.tanh(torch.addcmul(gi[:, 2 * H:], r, gh[:, 2 * H:]))
    return torch.lerp(n, h, z)  # n + z·(h − n): at batch 1 each op is a fixed cost, so fewer ops is faster
