"""What ``check`` tells the learner: ``diagnose`` runs the stages (``stages.compare``), tries
the exercise's accepted variants when the block differs from the reference, and writes the
``Report``; ``check`` prints it or raises it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from torch import nn

from common.exercises import running as R
from common.exercises.hints import hint_text
from common.exercises.registry import Accepted, Exercise, get_exercise
from common.exercises.stages import Comparison, Failure, Stage, compare


@dataclass
class Report:
    """What ``check`` found. ``status``: "passed", "not done" or "failed"; ``stage``: where it
    failed (a ``stages.Stage``, equal to its name: "build", "shape", "parameters", "transplant",
    "random", "outputs", "gradients", "train", "initial values", "names", "device");
    ``known_bugs``: titles of the known bugs the block behaves exactly like; ``hints``: keys of
    the generic patterns recognised (see ``hints.HINTS``); ``accepted``: the title of the
    accepted variant a passing block behaves like (None when it behaves like the reference);
    ``text``: what is printed or raised."""

    name: str
    status: str
    text: str
    stage: Optional[Stage] = None
    known_bugs: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    case: Optional[str] = None
    accepted: Optional[str] = None

    def __str__(self) -> str:
        return self.text


def _usage(name: str, ex: Exercise, candidate) -> None:
    """A block already built, or something not callable, is a TypeError saying what to pass."""
    if isinstance(candidate, nn.Module):
        kind = type(candidate)
        if kind.__module__.split(".")[0] == "torch":     # nn.Sequential, nn.Conv2d...: built by
            raise TypeError(f"Pass your function itself, not what it returned (a block already "
                            f"built, {kind.__name__}): check({name!r}, my_function), not "
                            f"check({name!r}, my_function(...)).")      # the learner's function
        raise TypeError(f"Pass your class (or a function that builds the block), not a block "
                        f"already built: check({name!r}, {kind.__name__}), not "
                        f"check({name!r}, {kind.__name__}(...)).")
    if not callable(candidate):
        raise TypeError(f"check({name!r}, ...) needs your class or a function with the signature "
                        f"{ex.signature}; got {type(candidate).__name__}.")


def passed_lines(c: Comparison) -> list:
    """One line per case, under a title: what a passing block's check prints."""
    ex, n = c.ex, len(c.cases)
    lines = []
    w = max(len(case.label) for case in c.cases)
    for i, case in enumerate(c.cases):
        k = c.chosen[i]
        d = f"max |diff| {R.max_diff(c.outs[i].eval[k], c.refs[i].run.out):.1e} (eval)"
        if c.train_compared(i):
            d += f", {R.max_diff(c.outs[i].train(k)[0], c.refs[i].out_train):.1e} (train)"
        pc = sum(layer.n_params for layer in c.runs[i].layers)
        lines.append(f"  ok  {case.label:<{w}}  output {tuple(c.runs[i].out.shape)}, "
                     f"{pc:,} parameters, {d}")
    how = sorted({c.outs[i].maps[c.chosen[i]][0] for i in range(n)})
    return [f"{ex.name}: all {n} cases pass (weights copied {' / '.join(how)}).", *lines]


def _as_variant(ex: Exercise, runs: list, who: str) -> Optional[tuple]:
    """(the accepted variant, its Comparison) when ``candidate`` passes every stage against one
    of the exercise's accepted variants; (the variant, the Failure) when it behaves like one
    but fails a later stage (its initial values, names, device); else None."""
    for v in ex.accepted:
        try:
            return v, compare(ex, runs, who, source=v)
        except Failure as f:
            if f.stage.after_behaviour:
                f.details += (f"\n  (Your block behaves like an accepted variant, {v.title}: it "
                              "was compared with that.)")
                return v, f
    return None


def _failure_text(ex: Exercise, f: Failure) -> str:
    parts = [f"{ex.name}: {f.what}."]
    if f.details:
        parts.append(f.details)
    if f.known:
        parts += [f"Known bug: {m.title}. {m.diagnosis}" for m in f.known]
    elif f.hints:
        parts.append("Likely cause: " + " ".join(hint_text(k, fmt, ex) for k, fmt in f.hints))
    elif not f.stage.speaks_for_itself:
        parts.append("No known pattern: compare your code with the paper line by line, "
                     "starting with the simplest case that differs.")
    parts.append(f"(The exercise: {ex.signature}; {ex.paper}.)")
    return "\n".join(parts)


def _failed(ex: Exercise, runs: list, who: str, f: Failure) -> Report:
    if f.stage.variant_may_explain:
        found: Optional[tuple[Accepted, Union[Comparison, Failure]]] = _as_variant(ex, runs, who)
        if found is not None and isinstance(found[1], Comparison):
            v, lines = found[0], passed_lines(found[1])
            text = "\n".join([lines[0], f"Accepted: {v.title}. {v.diagnosis}", *lines[1:]])
            return Report(ex.name, "passed", text, accepted=v.title)
        if found is not None:
            f = found[1]
    if f.stage is Stage.NOT_DONE:
        cases = "\n".join(f"  - {c.label}: {ex.call(c, who)}" for c in ex.cases)
        text = (f"{ex.name}: {f.what}. Write it, then run this cell again; it will be "
                f"checked on these cases:\n{cases}")
        return Report(ex.name, "not done", text, Stage.NOT_DONE, case=f.case)
    return Report(ex.name, "failed", _failure_text(ex, f), f.stage, [m.title for m in f.known],
                  [k for k, _ in f.hints], f.case)


def diagnose(name: str, candidate: Callable) -> Report:
    """Check ``candidate`` against exercise ``name`` and return the Report (never raises for a
    wrong block; ``check`` raises)."""
    ex = get_exercise(name)
    _usage(name, ex, candidate)
    who = getattr(candidate, "__name__", type(candidate).__name__)
    with R.one_thread(), R.learners_rng_kept():
        runs = [R.run(candidate, case) for case in ex.cases]
        try:
            c = compare(ex, runs, who)
        except Failure as f:
            return _failed(ex, runs, who, f)
        return Report(name, "passed", "\n".join(passed_lines(c)))


def check(name: str, candidate: Callable) -> None:
    """Check your block against exercise ``name`` (see the package docstring): prints one line
    per case when it is right, "not done yet" for a skeleton, and raises AssertionError with a
    diagnosis when something differs."""
    report = diagnose(name, candidate)
    if report.status == "failed":
        raise AssertionError(report.text)
    print(report.text)
