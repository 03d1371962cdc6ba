"""The comparison, stage by stage. Each stage is one function ``(Comparison) -> None`` that
raises ``Failure`` at the first difference it finds; ``STAGES`` runs them in order. A stage
names the known bugs the block behaves exactly like (``Comparison.known``) and the likely causes
(``hints``). To add a stage: a ``Stage`` member, a function, and its place in ``STAGES``."""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Optional

import torch

from common.exercises import hints as H
from common.exercises import running as R
from common.exercises import transplant as T
from common.exercises.registry import Accepted, Exercise


class Stage(str, enum.Enum):
    """Where a check failed (``Report.stage``), in the order ``check`` compares. A member
    equals its value: ``report.stage == "outputs"``."""

    NOT_DONE = "not done"
    BUILD = "build"
    SHAPE = "shape"
    PARAMETERS = "parameters"
    TRANSPLANT = "transplant"
    RANDOM = "random"
    OUTPUTS = "outputs"
    GRADIENTS = "gradients"
    TRAIN = "train"
    INITIAL = "initial values"
    NAMES = "names"
    DEVICE = "device"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def variant_may_explain(self) -> bool:
        """A block that differs from the reference here may still be an accepted variant (another
        reading of the paper builds, runs, is deterministic and device-agnostic like it)."""
        return self in (Stage.SHAPE, Stage.PARAMETERS, Stage.OUTPUTS, Stage.GRADIENTS,
                        Stage.TRAIN)

    @property
    def after_behaviour(self) -> bool:
        """A stage after every comparison of behaviour (initial values, names, device)."""
        return self in (Stage.INITIAL, Stage.NAMES, Stage.DEVICE)

    @property
    def speaks_for_itself(self) -> bool:
        """Its message says what to do (a build error, the names): no "No known pattern"."""
        return self in (Stage.BUILD, Stage.NAMES)


class Failure(Exception):
    def __init__(self, stage: Stage, what: str, details: str = "", case: Optional[str] = None,
                 known=(), hints=()):
        super().__init__(what)
        self.stage, self.what, self.details, self.case = stage, what, details, case
        self.known, self.hints = list(known), list(hints)


@dataclass
class Comparison:
    """One check of a candidate against the reference (or, with ``source``, against an accepted
    variant): the candidate's runs, and what the stages found so far (``outs``: its outputs
    under the reference's weights, per case; ``chosen``: the way of copying whose outputs
    agree). Made for one call of ``check``."""

    ex: Exercise
    who: str
    runs: list
    source: Optional[Accepted] = None
    outs: list = field(default_factory=list)
    chosen: list = field(default_factory=list)

    @cached_property
    def refs(self) -> list:
        return [T.reference(self.ex, i, self.source) for i in range(len(self.ex.cases))]

    @property
    def cases(self) -> tuple:
        return self.ex.cases

    def known(self, same: Callable[[T.MutantRuns, int], bool], first: int = 0,
              cases: Optional[list] = None) -> list:
        """The known bugs for which ``same(their runs, i)`` holds in every case i (of ``cases``,
        all by default; case ``first`` is tried first, so that a bug that differs there is
        built for no other case); none when comparing with an accepted variant."""
        if self.source is not None:
            return []
        cases = list(range(len(self.cases))) if cases is None else cases
        order = [first, *(i for i in cases if i != first)] if first in cases else cases
        return [m for j, m in enumerate(self.ex.mutants)
                if all(same(T.mutant_runs(self.ex, j), i) for i in order)]

    def train_compared(self, i: int) -> bool:
        """Train mode is compared unless the exercise says, or the reference is random there."""
        if self.ex.train_mode is not None:
            return self.ex.train_mode
        return self.refs[i].train_deterministic


# --------------------------------------------------------------------------- 0-1. runs at all

def not_done(c: Comparison) -> None:
    for i, r in enumerate(c.runs):
        if r.not_done:
            raise Failure(Stage.NOT_DONE, f"not done yet: your {c.who} raises NotImplementedError "
                          f"while {r.where}", case=c.cases[i].label)


def _crash_print(r: R.Run) -> Optional[tuple]:
    """Where a run fails, with what error, and the numbers in its message (sorted: the same
    bug written as `out + identity` or `identity + out` gives the same numbers)."""
    return ((r.where, type(r.error).__name__, tuple(sorted(re.findall(r"\d+", str(r.error)))))
            if r.error is not None else None)


def builds(c: Comparison) -> None:
    """It builds and runs in every case, and leaves its input alone."""
    crashed = [i for i, r in enumerate(c.runs) if r.error is not None]
    if crashed:
        i = crashed[0]
        r, case, err = c.runs[i], c.cases[i], c.runs[i].error
        fp = [_crash_print(x) for x in c.runs]
        known = c.known(lambda m, k: _crash_print(m.run(k)) == fp[k], first=i)
        details = (f"{c.ex.call(case, c.who)} failed while {r.where}: {type(err).__name__}: "
                   f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                   f"{R.where_in_your_code(err)}")
        if getattr(err, "not_a_module", False) and c.ex.not_a_module:
            details += "\n  " + c.ex.not_a_module
        others = [c.cases[k].label for k in crashed[1:]]
        if others:
            details += "\n  It fails in these cases too: " + "; ".join(others) + "."
        ok = [x.label for k, x in enumerate(c.cases) if k not in crashed]
        if ok:
            details += "\n  It runs in: " + "; ".join(ok) + "."
        raise Failure(Stage.BUILD, f"your {c.who} does not run in case {case.label!r}", details,
                      case.label, known, H.error_hints(err, case))
    modified = [i for i, r in enumerate(c.runs) if r.input_modified]
    if modified:
        case = c.cases[modified[0]]
        raise Failure(Stage.BUILD, "your forward changes its input tensor in place",
                      f"In case {case.label!r} the tensor given to your block's forward was "
                      "different after the call.", case.label, hints=[("input-modified", {})])


# --------------------------------------------------------------------------- 2-3. the structure

def shape(c: Comparison) -> None:
    n, runs, refs = len(c.cases), c.runs, c.refs
    bad = [i for i in range(n) if tuple(runs[i].out.shape) != tuple(refs[i].run.out.shape)]
    if not bad:
        return
    fp = [tuple(r.out.shape) for r in runs]
    known = c.known(lambda m, k: m.run(k).error is None and tuple(m.run(k).out.shape) == fp[k],
                    first=bad[0])
    lines = [f"  {c.cases[i].label}: yours {tuple(runs[i].out.shape)}, the reference's "
             f"{tuple(refs[i].run.out.shape)}" for i in bad]
    i = bad[0]
    raise Failure(Stage.SHAPE, f"the output shape differs in {len(bad)} of {n} cases",
                  f"Input {tuple(c.cases[i].input_shape)}, {c.ex.call(c.cases[i], c.who)}:\n"
                  + "\n".join(lines), c.cases[i].label, known,
                  H.shape_hints(tuple(runs[i].out.shape), tuple(refs[i].run.out.shape))
                  + H.tag_hints(c.ex, set(bad)))


def _param_print(run: R.Run) -> tuple:
    return tuple(sorted(layer.signature for layer in run.layers))


def parameters(c: Comparison) -> None:
    n, runs, refs = len(c.cases), c.runs, c.refs
    bad = [i for i in range(n) if _param_print(runs[i]) != _param_print(refs[i].run)]
    if not bad:
        return
    fp = [_param_print(r) for r in runs]
    known = c.known(lambda m, k: m.run(k).error is None and _param_print(m.run(k)) == fp[k],
                    first=bad[0])
    i = bad[0]
    cand, ref = runs[i].layers, refs[i].run.layers
    table, pairs = H.layer_table(cand, ref)
    pc, pr = sum(layer.n_params for layer in cand), sum(layer.n_params for layer in ref)
    ratio = f" ({pc / pr:.2f}x)" if pr else ""
    raise Failure(Stage.PARAMETERS, f"the parameters differ in {len(bad)} of {n} cases",
                  f"Case {c.cases[i].label!r}, {c.ex.call(c.cases[i], c.who)}: yours has "
                  f"{pc:,} parameters, the reference {pr:,}{ratio}. Layer by layer, in "
                  f"order of use in forward [parameters]:\n{table}",
                  c.cases[i].label, known,
                  H.param_hints(cand, ref, pairs) + H.tag_hints(c.ex, set(bad)))


def transplant(c: Comparison) -> None:
    """The reference's weights can be copied into the block (``transplant.Outputs``)."""
    c.outs = [T.Outputs(c.runs[i], c.refs[i], case) for i, case in enumerate(c.cases)]
    no_map = [i for i, o in enumerate(c.outs) if not o.maps]
    if no_map:
        i = no_map[0]
        table, _ = H.layer_table(c.runs[i].layers, c.refs[i].run.layers)
        raise Failure(Stage.TRANSPLANT, "the reference's weights cannot be copied into your block",
                      f"Case {c.cases[i].label!r}: the parameters agree, but the buffers (such "
                      f"as batch norm's running statistics) or their order do not:\n{table}",
                      c.cases[i].label)


# --------------------------------------------------------------------------- 4-5. what it computes

def _matching(vals: list, targets: list) -> list:
    """Indices of the mappings whose output equals one of ``targets``."""
    return [k for k, v in enumerate(vals) if v is not None
            and any(t is not None and R.close(v, t) for t in targets)]


def _random_in_eval(c: Comparison, i: int) -> None:
    """The same outputs every time in eval mode? (dropout or stochastic depth left on)"""
    again = R.forward(c.runs[i].model.eval(), R.make_input(c.cases[i]), seed=R.SEED + 7)
    last = c.outs[i].eval[-1]
    if not (isinstance(again, torch.Tensor) and R.close(again, last)):
        raise Failure(Stage.RANDOM, "your block is random in eval mode",
                      f"In case {c.cases[i].label!r}, two forward passes in eval mode (with "
                      f"other random seeds) gave different outputs (max |difference| = "
                      f"{R.max_diff(again, last):.3g}).", c.cases[i].label,
                      hints=[("random-in-eval", {})])


def outputs(c: Comparison) -> None:
    """Equal outputs in eval mode, with the reference's weights copied in."""
    n, outs, refs = len(c.cases), c.outs, c.refs
    good = [_matching(outs[i].eval, [refs[i].run.out]) for i in range(n)]
    bad = [i for i in range(n) if not good[i]]
    if not bad:
        c.chosen = [g[0] for g in good]
        return
    _random_in_eval(c, bad[0])
    known = c.known(lambda m, k: (mo := m.outs(k)) is not None
                    and bool(_matching(outs[k].eval, mo.eval)), first=bad[0])
    ref_model = refs[bad[0]].run.model
    hints = H.output_hints([(outs[i].eval[0], refs[i].run.out) for i in bad], ref_model,
                           R.has_batch_norm(ref_model))
    hints += H.unused_hints(c.runs[bad[0]].layers, refs[bad[0]].run.layers, outs[bad[0]])
    hints += H.tag_hints(c.ex, set(bad))
    w = max(len(x.label) for x in c.cases)
    rows = [f"  {'DIFFERS' if i in bad else 'ok     '}  {c.cases[i].label:<{w}}  max |yours - "
            f"reference| = {R.max_diff(outs[i].eval[0], refs[i].run.out):.3g} (the reference's "
            f"outputs lie in [{refs[i].run.out.min():.3g}, {refs[i].run.out.max():.3g}])"
            for i in range(n)]
    hows = " / ".join(sorted({o.maps[0][0] for o in outs if o.maps}))
    raise Failure(Stage.OUTPUTS, f"the outputs differ in {len(bad)} of {n} cases",
                  f"With the reference's weights copied into yours ({hows}), in eval "
                  f"mode with random batch-norm statistics:\n" + "\n".join(rows),
                  c.cases[bad[0]].label, known, hints)


def _gradient_hints(x_grad, found: dict, ok: bool, x_ok: bool, no_grad: list,
                    differ: list) -> list:
    if not ok or (x_grad is None and not any(g is not None for g in found.values())):
        return [("no-autograd", {})]
    if no_grad:
        return [("no-gradient", {"names": ", ".join(no_grad)})]
    if not x_ok and not differ:
        return [("input-gradient", {})]
    return [("gradient-differs", {"names": ", ".join(differ) or "the input"})]


def _layer_names(keys: list) -> list:
    """The layers that own these state keys, in order, each once."""
    names = []
    for k in keys:
        name = k.rsplit(".", 1)[0] if "." in k else "(the block itself)"
        if name not in names:
            names.append(name)
    return names


def gradients(c: Comparison) -> None:
    """One backward pass in eval mode (a detached shortcut or an SE gate under torch.no_grad()
    gives the same outputs, but cuts the gradient)."""
    n, outs, refs, chosen = len(c.cases), c.outs, c.refs, c.chosen
    bad = [i for i in range(n) if not R.same_grads(outs[i].grads(chosen[i]), refs[i].grads)]
    if not bad:
        return
    known = c.known(lambda m, k: (mo := m.outs(k)) is not None and bool(mo.maps)
                    and R.close(mo.eval[0], refs[k].run.out)
                    and R.same_grads(outs[k].grads(chosen[k]), mo.grads(0)[:2]), first=bad[0])
    i = bad[0]
    x_grad, found, ok = outs[i].grads(chosen[i])
    rx_grad, rgrads = refs[i].grads
    inverse = {r: k for k, r in outs[i].maps[chosen[i]][1].items()}
    no_grad = _layer_names([inverse[k] for k in rgrads if k in inverse
                            and R.grad_close(found.get(k), None)
                            and not R.grad_close(rgrads[k], None)])
    differ = _layer_names([inverse[k] for k in rgrads if k in inverse
                           and not R.grad_close(found.get(k), rgrads[k])])
    x_ok = R.grad_close(x_grad, rx_grad)
    lines = [f"  the input's gradient: {'agrees' if x_ok else 'DIFFERS'}"
             + ("" if x_ok or x_grad is not None else " (none: the output does not depend on "
                "the input through autograd)")]
    if differ:
        lines.append(f"  the gradients of your layers {', '.join(differ)}: DIFFER"
                     + (f" (none reaches {', '.join(no_grad)})" if no_grad else ""))
    else:
        lines.append("  every parameter's gradient: agrees")
    raise Failure(Stage.GRADIENTS, f"the outputs agree, but the gradients differ in "
                  f"{len(bad)} of {n} cases",
                  f"Case {c.cases[i].label!r}: one backward pass in eval mode with the "
                  f"reference's weights copied into yours:\n" + "\n".join(lines),
                  c.cases[i].label, known, _gradient_hints(x_grad, found, ok, x_ok, no_grad,
                                                           differ))


# --------------------------------------------------------------------------- 6. train mode

def _same_train(result: tuple, others: list) -> bool:
    out, buffers = result
    return any(R.close(out, o) and all(R.close(buffers[key].float(), ob[key].float())
                                       for key in buffers) for o, ob in others)


def _train_hints(c: Comparison, i: int) -> list:
    if c.outs[i].random_in_train(c.chosen[i]):
        seen = R.random_modules(c.runs[i].model)
        which = ("your " + ", ".join(seen) if seen else
                 "something in your forward draws random numbers in training (F.dropout(x, p, "
                 "training=self.training), torchvision.ops.stochastic_depth(..., "
                 "training=self.training)) with p > 0")
        return [("random-in-train", {"which": which})]
    late = H.late_strides(c.runs[i].layers, c.refs[i].run.layers)
    if late:
        return [("stride-late", {"names": ", ".join(late)})]
    return (H.unused_hints(c.runs[i].layers, c.refs[i].run.layers, c.outs[i], c.chosen[i])
            or [("train-only", {})])


def train_mode(c: Comparison) -> None:
    """The outputs in train mode (batch statistics, dropout) and the buffers a forward pass
    updates (running statistics), wherever the reference is deterministic in train mode."""
    trained = [i for i in range(len(c.cases)) if c.train_compared(i)]
    outs, chosen = c.outs, c.chosen
    for i in trained:
        result, ref, case = outs[i].train(chosen[i]), c.refs[i], c.cases[i]
        if _same_train(result, [(ref.out_train, ref.buffers_train)]):
            continue
        known = c.known(lambda m, k: (mo := m.outs(k)) is not None and _same_train(
            outs[k].train(chosen[k]), [mo.train(j) for j in range(len(mo.maps))]),
            first=i, cases=trained)
        diff = R.max_diff(result[0], ref.out_train)
        if diff <= R.ATOL + R.RTOL * ref.out_train.abs().max().item():
            raise Failure(Stage.TRAIN, "the running statistics differ after a forward pass in "
                          "train mode", f"Case {case.label!r}: the outputs agree in eval and in "
                          "train mode, but the buffers the forward pass updates (batch norm's "
                          "running mean and variance) do not.", case.label, known,
                          [("bn-momentum", {})])
        raise Failure(Stage.TRAIN, "the outputs differ in train mode",
                      f"Case {case.label!r}: the outputs agree in eval mode; in train mode max "
                      f"|yours - reference| = {diff:.3g}.", case.label, known,
                      _train_hints(c, i))


# --------------------------------------------------------------------------- 7-9. the rest

def _value(t: torch.Tensor) -> str:
    t = t.detach().float()
    if bool((t == t.reshape(-1)[0]).all()):
        return f"{t.reshape(-1)[0].item():g}"
    return f"values from {t.min().item():.3g} to {t.max().item():.3g}"


def initial_values(c: Comparison) -> None:
    """The parameters the reference starts at a constant (layer scale's 1e-6) start there in
    the block as built: every other stage copies the reference's values in, so only this one
    sees them."""
    for i, case in enumerate(c.cases):
        inverse = {r: k for k, r in c.outs[i].maps[c.chosen[i]][1].items()}
        wrong = []
        for key, value in c.refs[i].constants.items():
            mine = c.runs[i].initial.get(inverse.get(key))
            if mine is None or (mine.numel() == value.numel() and torch.allclose(
                    mine.reshape(value.shape).float(), value.float(), rtol=1e-3, atol=1e-12)):
                continue
            wrong.append(f"your {inverse[key]} starts at {_value(mine)}, the reference's {key} "
                         f"at {_value(value)}")
        if wrong:
            raise Failure(Stage.INITIAL, "the outputs agree, but your block starts from other "
                          "values", f"Case {case.label!r}, your block as built: "
                          + "; ".join(wrong) + ".", case.label,
                          hints=[("initial-value", {"pairs": "; ".join(wrong)})])


def names(c: Comparison) -> None:
    """The names, for blocks that must load torchvision's weights."""
    if not c.ex.same_names:
        return
    n = len(c.cases)
    if {c.outs[i].maps[c.chosen[i]][0] for i in range(n)} == {"by name"}:
        return
    from common.inspection import state_dict_differences

    i = next(i for i in range(n) if c.outs[i].maps[c.chosen[i]][0] != "by name")
    diffs = state_dict_differences(c.runs[i].model.state_dict(), c.refs[i].state,
                                   "the reference")
    raise Failure(Stage.NAMES, "the outputs agree, but your parameter names are not the "
                  "reference's", f"Case {c.cases[i].label!r}: " + "; ".join(diffs)
                  + ". The names must be the reference's so that its (torchvision's) "
                  "state_dict loads with strict=True.", c.cases[i].label)


def device(c: Comparison) -> None:
    """The input's device and dtype: a tensor made on the CPU in float32 fails on a GPU; a cast
    to float32 changes the output's dtype in mixed precision."""
    for i, case in enumerate(c.cases):
        if not c.refs[i].elsewhere_ok:
            continue
        problem = R.elsewhere(c.runs[i].model, case, in_place=True)   # its last use
        if problem is None:
            continue
        if problem.cast:
            raise Failure(Stage.DEVICE, f"the output's dtype is not the input's ({problem.dtype} "
                          f"{problem.where})", f"Case {case.label!r}, run {problem}.",
                          case.label, hints=[("dtype-cast", {"dtype": problem.dtype})])
        raise Failure(Stage.DEVICE, "your block works only on the CPU in float32",
                      f"Case {case.label!r}, run {problem}.", case.label, hints=[("device", {})])


STAGES = (not_done, builds, shape, parameters, transplant, outputs, gradients, train_mode,
          initial_values, names, device)


def compare(ex: Exercise, runs: list, who: str, source: Optional[Accepted] = None) -> Comparison:
    """Run every stage on the candidate's ``runs`` (one ``running.run`` per case); raise
    ``Failure`` at the first difference; return what they saw. A failed comparison leaves the
    runs fit for another (against an accepted variant): only the last stage changes them."""
    c = Comparison(ex, who, runs, source)
    for stage in STAGES:
        stage(c)
    return c
