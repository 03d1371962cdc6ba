"""How ``fit`` computes on a device: the autocast dtype it chooses (and why, in words), the memory
layout, batches moved to the device, and waiting for the device. ``evaluate``, ``common.bench``
and ``common.comparison`` use the same choices, so that their numbers are ``fit``'s.

- CUDA: bf16 autocast on GPUs that compute bf16 natively (compute capability 8.0 on), fp16 with
  a gradient scaler on older ones (Colab's T4); channels_last.
- CPU: bf16 autocast where the CPU computes bf16 natively (``cpu_has_native_bf16``), unless the
  model has layers that are slower in bf16 there (``slow_in_cpu_bf16``); fp32 elsewhere;
  channels_last.
- Apple MPS and other devices: fp32.

Measured speeds of these choices, with their machines: docs/speed.md.
"""
from __future__ import annotations

import torch
from torch import nn


def channels_last_for(device: torch.device) -> bool:
    """Whether ``fit`` uses channels_last (NHWC) on ``device``: the faster layout for
    convolutions with cuDNN and with oneDNN on x86 CPUs; the numbers are the same up to
    summation order."""
    return device.type in ("cuda", "cpu")


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


def slow_in_cpu_bf16(model: nn.Module | None) -> int:
    """How many of ``model``'s layers run slower in bf16 than in fp32 on a CPU: depthwise
    convolutions with kernels larger than 3x3 (EfficientNet's 5x5s), for which oneDNN's bf16
    kernels are slower than its fp32 ones in channels_last (the measurement: docs/speed.md)."""
    if model is None:
        return 0
    return sum(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
               and max(m.kernel_size) > 3 for m in model.modules())


def amp_dtype(device: torch.device, amp: bool, model: nn.Module | None = None):
    """The autocast dtype fit and evaluate use on ``device`` (None: fp32): bf16 on CUDA GPUs with
    native bf16, fp16 on older ones; bf16 on CPUs with native bf16 unless ``model`` has layers
    that are slower in bf16 there (``slow_in_cpu_bf16``), fp32 on other CPUs."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16() and not slow_in_cpu_bf16(model):
        return torch.bfloat16
    return None


def precision_text(device: torch.device, amp: bool, dtype, model: nn.Module | None = None) -> str:
    """The precision in words, for fit's first printed line (``dtype``: ``amp_dtype``'s)."""
    if dtype == torch.float16:
        return "float16 autocast on CUDA with gradient scaling (this GPU has no bf16)"
    if dtype is not None:
        return f"bfloat16 autocast on {'CPU (native bf16)' if device.type == 'cpu' else 'CUDA'}"
    if not amp:
        return "float32 (amp=False)"
    slow = slow_in_cpu_bf16(model) if device.type == "cpu" and cpu_has_native_bf16() else 0
    if slow:
        return (f"float32 (this CPU has native bf16, but this model's {slow} "
                "depthwise convolutions larger than 3x3 run slower in bf16 on CPUs)")
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
