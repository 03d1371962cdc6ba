"""The reference's weights copied into another block: the ways of copying that fit
(``mappings``), the outputs, train-mode outputs and gradients under each (``Outputs``), and the
reference's own runs (``reference``) and the known bugs' (``mutant_runs``), built once per
exercise and kept in a cache outside the registry's records."""
from __future__ import annotations

import copy
import itertools
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional

import torch
from torch import nn

from common.exercises import running as R
from common.exercises.registry import Accepted, Case, Exercise, mutant_factory

MAX_MAPPINGS = 8                 # ways of copying the weights tried per case

#: exercise -> {("ref", accepted variant or None, case index) or ("mutant", index): runs}. Keyed
#: by the record itself (weakly), so that an exercise registered again gets fresh runs.
_CACHE: "weakref.WeakKeyDictionary[Exercise, dict]" = weakref.WeakKeyDictionary()


def mappings(cand: list, ref: list):
    """Ways to copy the reference's state into the candidate, ``(how, {cand key: ref key})``,
    each with every shape equal: by name when every name and shape is the reference's; by
    position, in order of use in forward, then in order of definition; then by matching each
    reference layer to a candidate layer of the same shapes, trying the orders of the layers
    that share their shapes (a block that computes its shortcut first, say)."""
    seen = set()

    def new(mapping):
        key = tuple(sorted(mapping.items()))
        fresh = key not in seen
        seen.add(key)
        return fresh

    ck = {k: s for layer in cand for k, s in zip(layer.keys, layer.shapes)}
    rk = {k: s for layer in ref for k, s in zip(layer.keys, layer.shapes)}
    if ck == rk and new(m := {k: k for k in rk}):
        yield "by name", m

    def flat(layers):
        return [(k, s) for layer in layers for k, s in zip(layer.keys, layer.shapes)]

    def by_definition(layers):
        return sorted(layers, key=lambda layer: layer.reg_index)

    for how, c, r in [("by position, in order of use in forward", cand, ref),
                      ("by position, in order of definition", by_definition(cand),
                       by_definition(ref))]:
        fc, fr = flat(c), flat(r)
        if len(fc) == len(fr) and all(a[1] == b[1] for a, b in zip(fc, fr)):
            if new(m := {a[0]: b[0] for a, b in zip(fc, fr)}):
                yield how, m
    yield from _by_matching_layers(cand, ref, new)


def _by_matching_layers(cand: list, ref: list, new):
    groups_r, groups_c = {}, {}
    for layer in ref:
        groups_r.setdefault(layer.signature, []).append(layer)
    for layer in cand:
        groups_c.setdefault(layer.signature, []).append(layer)
    if {s: len(g) for s, g in groups_r.items()} != {s: len(g) for s, g in groups_c.items()}:
        return
    sigs = list(groups_r)
    orders = [list(itertools.islice(itertools.permutations(groups_c[s]), MAX_MAPPINGS))
              for s in sigs]
    for combo in itertools.islice(itertools.product(*orders), MAX_MAPPINGS):
        m = {}
        for s, layers in zip(sigs, combo):
            for c, r in zip(layers, groups_r[s]):
                m.update(zip(c.keys, r.keys))
        if new(m):
            yield "by position, matching layers of the same shapes", m


@dataclass(frozen=True)
class Ref:
    """The reference block of one case, with random weights, norm statistics and layer-scale
    values (``common.inspection.random_reference``): its eval-mode run and state, and what the
    later stages compare with, each computed once, when first asked for: its train-mode output
    and updated buffers, whether it is deterministic in train mode (two runs with other seeds
    agree), its gradients (``running.grads``), whether it runs in bfloat16 (and on the GPU in
    use), and the values a default build starts at where they are a constant
    (``running.constant_start``). Those are properties of the reference, not state: the record
    never changes once made."""

    case: Case
    run: R.Run
    state: dict
    build: Callable[[], nn.Module]              # a default build (default initialisation)

    def _train_forward(self, seed: int) -> tuple:
        model = self.run.model
        try:
            out = R.forward(model.train(), R.make_input(self.case), seed=seed)
            buffers = {k: v.detach().clone() for k, v in model.state_dict().items()}
        finally:
            model.eval().load_state_dict(self.state)        # the running statistics as they were
        return out, buffers

    @cached_property
    def _train(self) -> tuple:
        return self._train_forward(R.SEED)

    @property
    def out_train(self) -> torch.Tensor:
        return self._train[0]

    @property
    def buffers_train(self) -> dict:
        return self._train[1]

    @cached_property
    def train_deterministic(self) -> bool:
        return R.close(self.out_train, self._train_forward(R.SEED + 7)[0])

    @cached_property
    def grads(self) -> tuple:
        return R.grads(self.run.model, self.case)

    @cached_property
    def elsewhere_ok(self) -> bool:
        return R.elsewhere(self.run.model, self.case) is None

    @cached_property
    def constants(self) -> dict:
        with R.quiet_rng():
            return R.constant_start(self.build())


def _build_reference(ex: Exercise, factory, case: Case) -> Ref:
    from common.inspection import random_reference

    def build():
        return factory(*copy.deepcopy(case.args), **copy.deepcopy(dict(case.kwargs)))

    with R.quiet_rng():
        model = random_reference(build, seed=R.SEED)
    run = R.run(factory, case, model)
    if run.error is not None:
        raise RuntimeError(f"The reference of exercise {ex.name!r} fails in case "
                           f"{case.label!r}: {run.error!r}") from run.error
    return Ref(case, run, {k: v.detach().clone() for k, v in model.state_dict().items()}, build)


def reference(ex: Exercise, i: int, source: Optional[Accepted] = None) -> Ref:
    """The reference of case ``i`` (or, with ``source``, the accepted variant's), built once."""
    cache = _CACHE.setdefault(ex, {})
    key = ("ref", source, i)
    if key not in cache:
        factory = ex.reference if source is None else mutant_factory(ex, source)
        cache[key] = _build_reference(ex, factory, ex.cases[i])
    return cache[key]


class Outputs:
    """A block's eval-mode outputs with the reference's weights copied in, under each way of
    copying that fits (up to ``limit``; stops at the first whose outputs are the reference's),
    and, on demand, its train-mode outputs and updated buffers, and its gradients, under one of
    them. Made for one check (or one known bug), so its memo of what it computed is its own."""

    def __init__(self, run: R.Run, ref: Ref, case: Case, limit: int = MAX_MAPPINGS):
        self.model, self.ref, self.case = run.model, ref, case
        self.maps, self.eval, self._train, self._grads = [], [], {}, {}
        for how, mapping in mappings(run.layers, ref.run.layers):
            try:
                self._load(mapping)
                out = R.forward(self.model.eval(), R.make_input(case))
            except Exception:                      # noqa: BLE001 (a mapping that cannot be used)
                continue
            self.maps.append((how, mapping))
            self.eval.append(out)
            if R.close(out, ref.run.out) or len(self.maps) >= limit:
                break

    def _load(self, mapping: dict) -> None:
        own = self.model.state_dict()
        self.model.load_state_dict({c: self.ref.state[r].clone().reshape(own[c].shape)
                                    for c, r in mapping.items()}, strict=True)

    def train(self, k: int) -> tuple:
        """(output, {reference key: state after the forward pass}) in train mode, mapping k."""
        if k not in self._train:
            self._train[k] = self._train_forward(k, R.SEED)
        return self._train[k]

    def _train_forward(self, k: int, seed: int) -> tuple:
        mapping = self.maps[k][1]
        self._load(mapping)
        try:
            out = R.forward(self.model.train(), R.make_input(self.case), seed=seed)
        finally:
            self.model.eval()
        state = self.model.state_dict()
        return out, {r: state[c].detach().clone().reshape(self.ref.state[r].shape)
                     for c, r in mapping.items()}         # nn.Linear's as 1x1 conv's

    def random_in_train(self, k: int) -> bool:
        """Whether two forward passes in train mode with other seeds differ (dropout or
        stochastic depth on)."""
        again, _ = self._train_forward(k, R.SEED + 7)
        return not R.close(again, self.train(k)[0])

    def grads(self, k: int) -> tuple:
        """(the input's gradient, {reference key: gradient}) in eval mode under mapping k, and
        whether the output required grad at all."""
        if k not in self._grads:
            mapping = self.maps[k][1]
            self._load(mapping)
            try:
                x_grad, found = R.grads(self.model, self.case)
                ok = True
            except Exception:                      # noqa: BLE001 (a backward pass that fails)
                x_grad, found, ok = None, {}, False
            self._grads[k] = (x_grad, {mapping[n]: g for n, g in found.items() if n in mapping},
                              ok)
        return self._grads[k]


class MutantRuns:
    """A known bug's runs, case by case, each built when first asked for (a check that fails
    at the shape needs no outputs; a known bug whose first case differs needs no other case):
    ``run(i)``, and ``outs(i)``, its outputs under the reference's weights (None when it does
    not run)."""

    def __init__(self, ex: Exercise, j: int):
        self._ex = weakref.ref(ex)                 # the cache's key: not kept alive by its value
        self.cases, self.factory = ex.cases, mutant_factory(ex, ex.mutants[j])
        self._runs: dict = {}
        self._outs: dict = {}

    def run(self, i: int) -> R.Run:
        if i not in self._runs:
            self._runs[i] = R.run(self.factory, self.cases[i])
        return self._runs[i]

    def outs(self, i: int) -> Optional[Outputs]:
        if i not in self._outs:
            r = self.run(i)
            self._outs[i] = (None if r.error is not None
                             else Outputs(r, reference(self._ex(), i), self.cases[i], limit=1))
        return self._outs[i]


def mutant_runs(ex: Exercise, j: int) -> MutantRuns:
    """The runs of known bug ``j`` (``MutantRuns``), one object per exercise and bug."""
    cache = _CACHE.setdefault(ex, {})
    if ("mutant", j) not in cache:
        cache[("mutant", j)] = MutantRuns(ex, j)
    return cache[("mutant", j)]
