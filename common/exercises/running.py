"""Building and running one block on one case: which layers its forward uses and in what order
(``run``), one backward pass (``grads``), a run in bfloat16 and on the GPU in use
(``elsewhere``), and what its modules say about it (``constant_start``, ``random_modules``).
Nothing here compares two blocks: ``transplant`` copies weights, ``stages`` compares."""
from __future__ import annotations

import contextlib
import copy
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from common.exercises.registry import ENGINE, Case

ATOL, RTOL = 1e-5, 1e-4          # outputs count as equal within these (torch.allclose)
SEED = 0
_TORCH_DIR = str(Path(torch.__file__).resolve().parent)
_ENGINE_FILES = {str(Path(__file__).with_name(f"{m}.py")) for m in ENGINE}
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass
class Layer:
    """A module that owns parameters or buffers, as the report shows it."""

    name: str
    module: nn.Module
    keys: list                  # its state_dict keys: parameters first, then buffers
    shapes: tuple               # their value shapes (``value_shape``), in the same order
    n_params: int
    calls: int
    signature: tuple            # what must be equal for two layers to be "the same layer"
    reg_index: int              # position in model.named_modules(): the order of definition
    in_shape: tuple = ()        # the shape of its first input (when forward uses it)

    @property
    def kind(self) -> str:
        """Its type, with "FC" for a fully connected layer: an nn.Linear, or a convolution that
        sees a 1x1 map (an SE block's FCs written as 1x1 convolutions)."""
        m = self.module
        if isinstance(m, nn.Linear) or (isinstance(m, nn.modules.conv._ConvNd)
                                        and len(self.in_shape) > 2
                                        and all(s == 1 for s in self.in_shape[2:])):
            return "FC"
        return type(m).__name__

    @property
    def pooled_fc(self) -> bool:
        """An FC on a pooled input (one value per channel): an SE block's FCs, told by structure
        (an nn.Linear on an (N, C) input, or a convolution on a 1x1 map), never by name. An
        nn.Linear on a channels-last (N, H, W, C) map is a 1x1 convolution, not an SE's FC."""
        m, shape = self.module, self.in_shape
        if isinstance(m, nn.Linear):
            return len(shape) >= 2 and all(s == 1 for s in shape[1:-1])
        return (isinstance(m, nn.modules.conv._ConvNd) and len(shape) > 2
                and all(s == 1 for s in shape[2:]))

    @property
    def width(self) -> tuple:
        """(channels in, channels out) of a convolution or an nn.Linear, else ()."""
        m = self.module
        if isinstance(m, nn.Linear):
            return m.in_features, m.out_features
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels, m.out_channels
        return ()

    @property
    def desc(self) -> str:
        return f"{self.name or '(the block itself)'}: {describe(self.module)}"


@dataclass
class Run:
    """What building and running one block on one case showed."""

    model: Optional[nn.Module] = None
    error: Optional[BaseException] = None
    where: str = ""             # "building" or "running" when error is set
    not_done: bool = False
    out: Optional[torch.Tensor] = None
    layers: list = field(default_factory=list)        # in order of first use, then unused ones
    input_modified: bool = False
    initial: dict = field(default_factory=dict)       # the state_dict as built, before any copy


def describe(m: nn.Module) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        k = "x".join(map(str, m.kernel_size))
        d = f"{type(m).__name__} {m.in_channels}→{m.out_channels}, {k}"
        if any(s != 1 for s in m.stride):
            d += f", stride {m.stride[0] if len(set(m.stride)) == 1 else m.stride}"
        if m.groups != 1:
            d += f", groups {m.groups}"
        return d + (", with bias" if m.bias is not None else ", no bias")
    if isinstance(m, nn.modules.batchnorm._NormBase):
        d = f"{type(m).__name__}({m.num_features})"
        if not m.affine:
            d += ", affine=False"
        if not m.track_running_stats:
            d += ", no running statistics"
        return d
    if isinstance(m, nn.Linear):
        return f"Linear {m.in_features}→{m.out_features}" + (
            ", with bias" if m.bias is not None else ", no bias")
    shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in
                       [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)])
    return f"{type(m).__name__} ({shapes})"


def value_shape(shape) -> tuple:
    """The shape that decides whether two tensors hold the same values. A tensor with one
    dimension above 1 is a vector: a per-channel scale of shape (C,), (C, 1, 1) or
    (1, C, 1, 1) holds the same C values (ConvNeXt's layer scale, written channels-last or
    channels-first). A 1x1 convolution's weight (C_out, C_in, 1, 1) is a fully connected
    layer's (C_out, C_in), so an SE block or a classifier written with ``nn.Linear`` matches
    one written with 1x1 ``nn.Conv2d``. (Weights are reshaped when copied.)"""
    shape = tuple(shape)
    big = tuple(s for s in shape if s != 1)
    if len(big) <= 1:
        return big or ((1,) if shape else ())
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def layers(model: nn.Module, order: dict) -> list:
    """Modules with state (parameters or persistent buffers), in order of first use in forward
    (``order``: name -> (first call index, number of calls, first input's shape)), unused ones
    last."""
    state = model.state_dict(keep_vars=True)
    out = []
    for reg_index, (name, m) in enumerate(model.named_modules()):
        prefix = f"{name}." if name else ""
        local = [n for n, _ in m.named_parameters(recurse=False)] + \
                [n for n, _ in m.named_buffers(recurse=False)]
        keys = [prefix + n for n in local if prefix + n in state]
        if not keys:
            continue
        shapes = tuple(value_shape(state[k].shape) for k in keys)
        n_params = sum(p.numel() for p in m.parameters(recurse=False))
        first, calls, in_shape = order.get(name, (math.inf, 0, ()))
        kinds = tuple("p" if k[len(prefix):] in m._parameters else "b" for k in keys)
        out.append((first, reg_index, Layer(name, m, keys, shapes, n_params, calls,
                                            tuple(zip(kinds, shapes)), reg_index, in_shape)))
    return [layer for *_, layer in sorted(out, key=lambda t: (t[0], t[1]))]


def is_not_done(err: BaseException) -> bool:
    """A NotImplementedError raised by the learner's own code (the skeleton), or torch's
    complaint that forward is missing; not one raised inside torch for an unsupported op."""
    if not isinstance(err, NotImplementedError):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return True
    last = frames[-1]
    return last.name == "_forward_unimplemented" or not last.filename.startswith(_TORCH_DIR)


def where_in_your_code(err: BaseException) -> str:
    """The last line of the traceback outside torch and the engine: where the learner looks."""
    for fr in reversed(traceback.extract_tb(err.__traceback__)):
        if not fr.filename.startswith(_TORCH_DIR) and fr.filename not in _ENGINE_FILES:
            return f" (in {fr.name}, line {fr.lineno}: {(fr.line or '').strip()})"
    return ""


def make_input(case: Case) -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(*case.input_shape, generator=g) * case.scale


@contextlib.contextmanager
def one_thread():
    """These blocks are tiny: one thread is faster than several (and far faster on a busy
    machine, where threads wait for each other)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def quiet_rng(seed: int = SEED):
    """The CPU's generator seeded (the blocks run on the CPU). ``diagnose`` keeps the learner's
    random state (``learners_rng_kept``) around the whole check: one save and restore, not one
    per forward pass (they cost more than these small blocks' forward passes). Not
    ``torch.manual_seed``: it also queues a seed for every GPU, with a traceback each time
    while CUDA is not initialised (about 1.5 ms a call, most of a warm check's time), and
    would change the learner's GPU random state."""
    torch.default_generator.manual_seed(seed)
    yield


@contextlib.contextmanager
def learners_rng_kept():
    with torch.random.fork_rng(devices=[]):
        yield


def forward(model: nn.Module, x: torch.Tensor, seed: int = SEED) -> torch.Tensor:
    """``model(x)`` without autograd, seeded (a random block draws the same numbers every time
    unless ``seed`` changes)."""
    with torch.no_grad(), quiet_rng(seed):
        return model(x)


def grads(model: nn.Module, case: Case) -> tuple:
    """One backward pass in eval mode: (the input's gradient, {parameter name: its gradient})
    for a fixed random weighting of the outputs; a gradient that does not exist is None."""
    model.eval()
    x = make_input(case).requires_grad_(True)
    try:
        with torch.enable_grad(), quiet_rng():
            out = model(x)
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(SEED + 2))
            if out.requires_grad:
                (out * w).sum().backward()
        found = {n: None if p.grad is None else p.grad.detach().clone()
                 for n, p in model.named_parameters()}
    finally:
        model.zero_grad(set_to_none=True)
    return (None if x.grad is None else x.grad.detach().clone()), found


def grad_close(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    """Gradients equal up to rounding (a missing gradient counts as zeros)."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        t = b if a is None else a
        return not bool(t.abs().max() > 1e-6) if t.numel() else True
    if a.numel() != b.numel():
        return False
    a = a.reshape(b.shape)
    return bool((a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-6) if b.numel() else True


def same_grads(a: tuple, b: tuple) -> bool:
    """Two (input's gradient, {key: gradient}, ...) equal up to rounding."""
    (xa, ga), (xb, gb) = a[:2], b[:2]
    return grad_close(xa, xb) and all(grad_close(ga.get(k), gb.get(k)) for k in {*ga, *gb})


@dataclass(frozen=True)
class Elsewhere:
    """What went wrong running a block in another dtype or on another device: ``where`` ("on
    cpu in bfloat16"), ``what`` (the error, or the output's device and dtype), and ``cast``:
    the output's dtype is one the block casts to, not the default dtype of a tensor it makes;
    ``dtype``: the output's dtype, when it is not the input's."""

    where: str
    what: str
    cast: bool = False
    dtype: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def elsewhere(model: nn.Module, case: Case, in_place: bool = False) -> Optional[Elsewhere]:
    """Run the block (a copy, unless ``in_place``) in bfloat16, and on the learner's GPU in
    float32 when CUDA is already in use: what went wrong, or None. A tensor made inside forward
    without ``dtype=x.dtype`` (say ``torch.zeros(n, c, h, w)``, float32 on the CPU whatever x
    is) turns the output into float32 (or fails); one made without ``device=x.device`` fails
    on the GPU. (The ``meta`` device would expose the device too, but its first use imports
    torch's Python decompositions: seconds.)"""
    targets = [("cpu", torch.bfloat16)]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        targets.append(("cuda", torch.float32))
    for device, dtype in targets:
        where = f"on {device} in {_name(dtype)}"
        try:
            moved = (model if in_place and device == "cpu" else copy.deepcopy(model)).to(
                device=device, dtype=dtype)
            out = forward(moved.eval(), make_input(case).to(device=device, dtype=dtype))
        except Exception as err:                   # noqa: BLE001 (reported to the learner)
            msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return Elsewhere(where, f"{type(err).__name__}: {msg}{where_in_your_code(err)}")
        if not isinstance(out, torch.Tensor):
            return Elsewhere(where, f"forward returned {type(out).__name__}")
        if out.device.type != device or out.dtype != dtype:
            cast = out.device.type == device and _casts(moved, case, device, dtype)
            return Elsewhere(where, f"the output is on {out.device.type} in {_name(out.dtype)}",
                             cast, _name(out.dtype))
    return None


def _casts(model: nn.Module, case: Case, device: str, dtype: torch.dtype) -> bool:
    """Whether a block whose output has another dtype than its input casts to that dtype
    (``.float()``, ``.to(torch.float32)``) rather than making a tensor in the default dtype
    (``torch.zeros(n, c, h, w)``): run it again with float64 as the default dtype; a tensor
    made without a dtype follows the default, a cast does not."""
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        out = forward(model, make_input(case).to(device=device, dtype=dtype))
    except Exception:                              # noqa: BLE001 (then it is not a plain cast)
        return False
    finally:
        torch.set_default_dtype(default)
    return isinstance(out, torch.Tensor) and out.dtype != torch.float64


def _built(factory: Callable, case: Case, r: Run) -> Optional[nn.Module]:
    """``factory(*case.args)`` (a copy of the arguments: a block may change a list it gets), or
    None with the error recorded in ``r``."""
    try:
        with quiet_rng():
            model = factory(*copy.deepcopy(case.args), **copy.deepcopy(dict(case.kwargs)))
    except Exception as err:                       # noqa: BLE001 (reported to the learner)
        r.error, r.where, r.not_done = err, "building", is_not_done(err)
        return None
    if not isinstance(model, nn.Module):
        r.error = TypeError(f"it returned {type(model).__name__}, not an nn.Module"
                            + (": wrap the layers in nn.Sequential(*layers)"
                               if isinstance(model, (list, tuple)) else ""))
        r.error.not_a_module = True
        r.where = "building"
        return None
    return model


def run(factory: Callable, case: Case, model: Optional[nn.Module] = None) -> Run:
    """Build (unless given) and run one block in eval mode, recording which modules forward
    uses."""
    r = Run()
    if model is None and (model := _built(factory, case, r)) is None:
        return r
    r.model = model.eval()
    r.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    order: dict = {}

    def hook(name, module, args):
        shape = tuple(args[0].shape) if args and isinstance(args[0], torch.Tensor) else ()
        first, calls, in_shape = order.get(name, (len(order), 0, shape))
        order[name] = (first, calls + 1, in_shape)

    handles = [m.register_forward_pre_hook(lambda *a, n=name: hook(n, *a))
               for name, m in model.named_modules()]
    x = make_input(case)
    x_in = x.clone()
    try:
        out = forward(model, x_in)
    except Exception as err:                       # noqa: BLE001
        r.error, r.where, r.not_done = err, "running", is_not_done(err)
        return r
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor):
        r.error = TypeError(f"forward returned {type(out).__name__}, not a tensor")
        r.where = "running"
        return r
    r.out, r.layers = out, layers(model, order)
    r.input_modified = not torch.equal(x_in, x)
    return r


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=ATOL, rtol=RTOL))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() if a.shape == b.shape and a.numel() else math.inf


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def constant_start(model: nn.Module) -> dict:
    """{state key: value} of the parameters a freshly built block starts at a constant (every
    entry equal, more than one entry), outside normalisation layers: ConvNeXt's layer scale
    (1e-6), a bias initialised to zero. Normalisation layers' 1 and 0 are PyTorch's defaults,
    and zero-initialising the last batch norm's scale is a known training choice (Goyal et al.
    2017, torchvision's ``zero_init_residual``), so they are left out."""
    inside = {id(p) for m in model.modules() if isinstance(m, _NORMS)
              for p in m.parameters(recurse=False)}
    return {k: p.detach().clone() for k, p in model.named_parameters()
            if id(p) not in inside and p.is_floating_point() and p.numel() > 1
            and bool((p == p.reshape(-1)[0]).all())}


def random_modules(model: nn.Module) -> list:
    """The dropout and stochastic-depth modules of a block with a probability above 0, as
    "name (Type, p=...)"."""
    found = []
    for name, m in model.named_modules():
        p = getattr(m, "p", getattr(m, "drop_prob", None))
        random = isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ in (
            "StochasticDepth", "DropPath")
        if random and isinstance(p, (int, float)) and p > 0:
            found.append(f"{name or '(the block itself)'} ({type(m).__name__}, p={p:g})")
    return found
