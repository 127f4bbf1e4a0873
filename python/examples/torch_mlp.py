"""Shared PyTorch code for the torch_*.py example plugins: the float64 ReLU MLP forward and the
loss, written with torch operations so autograd does the derivatives (an independent check of
the hand-written numpy derivatives in mlp.py).

Convention (ticketbench's): z_l = h_{l-1} W_l^T + b_l, h_l = relu(z_l) for l < L-1, the last
layer's z is the logits. Classification: the batch mean of cross-entropy(softmax(logits / T),
y); regression: mean squared error over all entries. Float64 on the CPU (or ``device``).
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

try:  # the plugin package, when it is not installed: python/ticketbench_plugin beside examples/
    import ticketbench_plugin  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPE = torch.float64


def tensors(weights, biases, requires_grad=False, device="cpu"):
    """float64 torch leaves for the weights and biases (bias None stays None)."""
    def leaf(a):
        t = torch.as_tensor(np.asarray(a), device=device).to(DTYPE).clone()
        return t.requires_grad_(requires_grad)
    ws = [leaf(w) for w in weights]
    bs = [None if b is None else leaf(b) for b in biases]
    return ws, bs


def data(x, y, kind="classification", device="cpu"):
    """The batch as torch tensors: x float64 [n, inputs]; y int64 labels or float64 targets."""
    xt = torch.as_tensor(np.asarray(x), device=device).to(DTYPE).reshape(len(x), -1)
    if kind == "regression":
        yt = torch.as_tensor(np.asarray(y), device=device).to(DTYPE)
    else:
        yt = torch.as_tensor(np.asarray(y), device=device).to(torch.int64).reshape(-1)
    return xt, yt


def forward(ws, bs, x):
    """Logits of the ReLU MLP."""
    h = x
    for l, w in enumerate(ws):
        h = F.linear(h, w, bs[l])
        if l < len(ws) - 1:
            h = torch.relu(h)
    return h


def loss(ws, bs, x, y, kind="classification", temperature=1.0):
    """The batch loss (cross-entropy on logits / T, or MSE for regression)."""
    out = forward(ws, bs, x)
    if kind == "regression":
        return F.mse_loss(out, y.reshape(out.shape))
    return F.cross_entropy(out / temperature, y)


def task_kind(req):
    """"classification" or "regression", from the request's task."""
    return "regression" if req.task.get("kind") == "regression" else "classification"


def check_linear(req):
    """Raises unless every layer of the request is a linear layer (these examples are MLP-only)."""
    for l, layer in enumerate(req.layers):
        if layer.get("kind", "linear") != "linear":
            raise NotImplementedError(
                f"layer {l} is {layer.get('kind')!r}; these example plugins handle linear (MLP) layers only"
            )
