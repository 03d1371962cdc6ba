"""How ``fit`` computes on a device: the autocast dtype it chooses (and why, in words), the memory
layout, batches moved to the device, and waiting for the device. ``evaluate``, ``common.bench``
and ``common.comparison`` use the same choices, so that their numbers are ``fit``'s.

- CUDA: bf16 autocast on GPUs that compute bf16 natively (compute capability 8.0 on), fp16 with
  a gradient scaler on older ones (Colab's T4); channels_last.
- CPU: bf16 autocast where the CPU computes bf16 natively (``cpu_has_native_bf16``), with the
  layers that are slower in bf16 there (``slow_in_cpu_bf16``: depthwise convolutions larger than
  3x3) computed in fp32 (``fp32_layers``); fp32 elsewhere; channels_last, except for a model
  whose card says it is faster in NCHW on CPUs (``ModelCard.nchw_on``: DenseNet).
- Apple MPS and other devices: fp32.

Measured speeds of these choices, with their machines: docs/speed.md.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from common.models.registry import list_models, model_card


def nchw_declared(model: nn.Module | None, device: torch.device) -> bool:
    """Whether ``model``'s card (found by its registry name, ``model.name``) declares it faster
    in NCHW than in channels_last on ``device``'s type (``ModelCard.nchw_on``)."""
    name = getattr(model, "name", None)
    return (isinstance(name, str) and name in list_models()
            and device.type in model_card(name).nchw_on)


def channels_last_for(device: torch.device, model: nn.Module | None = None) -> bool:
    """Whether ``fit`` uses channels_last (NHWC) on ``device``: the faster layout for
    convolutions with cuDNN and with oneDNN on x86 CPUs, unless ``model``'s card declares it
    faster in NCHW there (``ModelCard.nchw_on``: DenseNet on CPUs, whose concatenations cost more
    in channels_last); the numbers are the same up to summation order."""
    return device.type in ("cuda", "cpu") and not nchw_declared(model, device)


#: CPU features (``torch.cpu.get_capabilities()`` names) that compute bf16 natively: AVX512-BF16
#: (AMD Zen 4 and later, Intel Cooper Lake and later), AMX-BF16 (Intel Sapphire Rapids and later)
#: and the Arm BF16 extension (e.g. AWS Graviton3).
NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_has_native_bf16() -> bool:
    """Whether CPU autocast in bf16 runs on native bf16 instructions here.

    Two of PyTorch's own checks, both required: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
    (oneDNN, which runs CPU autocast's convolutions and matrix products, can use bf16 here:
    what PyTorch's own tests and torch._inductor ask) and ``torch.cpu.get_capabilities()``
    listing one of ``NATIVE_BF16_FEATURES``. The first alone is also true on AVX-512 CPUs without
    bf16 instructions (oneDNN then emulates bf16, slower than fp32), hence the second. Where the
    installed torch lacks either check, the answer is False: fp32, never a slow emulation."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        return False
    return any(caps.get(name) is True for name in NATIVE_BF16_FEATURES)


def cuda_has_native_bf16(device: torch.device | str = "cuda") -> bool:
    """Whether this GPU computes bf16 in hardware: compute capability 8.0 on (Ampere: A100, L4,
    H100) or ROCm. Not ``torch.cuda.is_bf16_supported()``, which also says yes where bf16 is only
    emulated (its default ``including_emulation=True``), as on Colab's T4 (7.5): fp16 is the
    T4's fast type."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def _slow_layers(model: nn.Module | None) -> list[nn.Module]:
    if model is None:
        return []
    return [m for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            and max(m.kernel_size) > 3]


def slow_in_cpu_bf16(model: nn.Module | None) -> int:
    """How many of ``model``'s layers run slower in bf16 than in fp32 on a CPU: depthwise
    convolutions with kernels larger than 3x3 (EfficientNet's 5x5s, ConvNeXt's 7x7s), for which
    oneDNN's bf16 kernels are slower than its fp32 ones in channels_last. ``fit`` computes these
    layers in fp32 and the rest of the model in bf16 (``fp32_layers``): a whole
    ``cifar_efficientnet_b0`` training step then ran 1.5x as fast as in fp32, where the whole
    model in bf16 gained far less (measured on a shared machine: docs/speed.md)."""
    return len(_slow_layers(model))


def amp_dtype(device: torch.device, amp: bool, model: nn.Module | None = None):
    """The autocast dtype fit and evaluate use on ``device`` (None: fp32): bf16 on CUDA GPUs with
    native bf16, fp16 on older ones; bf16 on CPUs with native bf16 (there ``model``'s layers that
    are slower in bf16, ``slow_in_cpu_bf16``, compute in fp32: ``fp32_layers``), fp32 on other
    CPUs. (``model`` is accepted for callers that pass it; the dtype no longer depends on it.)"""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def fp32_layer_count(model: nn.Module | None, device: torch.device, dtype) -> int:
    """How many of ``model``'s layers ``fp32_layers`` computes in fp32 on ``device`` under
    autocast in ``dtype``: the ``slow_in_cpu_bf16`` ones on a CPU in bf16, else none."""
    return slow_in_cpu_bf16(model) if device.type == "cpu" and dtype == torch.bfloat16 else 0


def _in_fp32(conv: nn.Module, inner):
    def forward(x):
        with torch.autocast("cpu", enabled=False):
            return inner(x.float())
    forward.fp32_layer = True              # how a nested fp32_layers (evaluate in fit) sees it
    return forward


@contextlib.contextmanager
def fp32_layers(model: nn.Module, device: torch.device, dtype):
    """For the duration of the ``with`` block, on a CPU in bf16 autocast: ``model``'s depthwise
    convolutions larger than 3x3 (``slow_in_cpu_bf16``) compute in fp32, autocast off inside
    them, while the rest of the model stays in bf16. Each such layer's ``forward`` is wrapped by
    an instance attribute, removed when the block ends, also on an error, so that the model is
    left as it was; layers already wrapped (``evaluate`` inside ``fit``) are left to the outer
    block. Yields the number of layers in fp32 (``fp32_layer_count``); elsewhere it changes
    nothing and yields 0."""
    layers = _slow_layers(model) if fp32_layer_count(model, device, dtype) else []
    wrapped = []
    try:
        for m in layers:
            own = m.__dict__.get("forward")        # a forward of the instance's own, if any
            if getattr(own, "fp32_layer", False):
                continue                           # wrapped by an outer fp32_layers
            m.forward = _in_fp32(m, own if own is not None else type(m).forward.__get__(m))
            wrapped.append((m, own))
        yield len(layers)
    finally:
        for m, own in wrapped:
            if own is None:
                del m.forward
            else:
                m.forward = own


def precision_label(dtype, fp32_layers: int = 0) -> str:
    """The precision as ``fit`` records it in a history's precision changes: "float32",
    "bfloat16", "float16", or "bfloat16 (N depthwise convolutions larger than 3x3 in float32)".
    ``dtype``: a torch dtype, None (fp32) or its name as a history records it."""
    name = dtype if isinstance(dtype, str) else str(dtype or torch.float32).replace("torch.", "")
    if fp32_layers:
        name += f" ({fp32_layers} depthwise convolutions larger than 3x3 in float32)"
    return name


def precision_text(device: torch.device, amp: bool, dtype, model: nn.Module | None = None) -> str:
    """The precision in words, for fit's first printed line (``dtype``: ``amp_dtype``'s)."""
    if dtype == torch.float16:
        return "float16 autocast on CUDA with gradient scaling (this GPU has no bf16)"
    if dtype is not None:
        text = f"bfloat16 autocast on {'CPU (native bf16)' if device.type == 'cpu' else 'CUDA'}"
        slow = fp32_layer_count(model, device, dtype)
        if slow:
            text += (f", with this model's {slow} depthwise convolutions larger than 3x3 in "
                     "float32 (slower in bf16 on CPUs)")
        return text
    if not amp:
        return "float32 (amp=False)"
    if device.type == "cpu":
        return "float32 (this CPU has no native bf16)"
    return f"float32 (no autocast on {device.type})"


def to_device(x, y, device, channels_last: bool):
    """A batch on the model's device, images in the model's memory layout."""
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def autocast(device: torch.device, dtype):
    """Mixed precision in ``dtype`` on ``device``; plain fp32 when it is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (CUDA runs asynchronously), so that a
    clock read afterwards times the work itself; nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
