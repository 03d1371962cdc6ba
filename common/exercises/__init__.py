"""Write-it-yourself exercises, and a checker that names the bug.

**For the learner.** Write a block of the paper in the notebook's skeleton cell, then::

    from common.exercises import check
    check("resnet.BasicBlock", MyBasicBlock)     # your class, or a function that builds the block

``check`` builds your block and the course's reference block for several cases (stride 1 and 2,
equal and changing channels, the first block of a stage...) and compares them in this order,
stopping at the first difference:

1. your block builds and runs (and leaves its input alone);
2. the output shape;
3. the parameters, layer by layer (a per-channel scale of shape (C,), (C, 1, 1) or
   (1, C, 1, 1) holds the same C values: they count as the same parameter);
4. the outputs, with the reference's weights copied into your block: by name when your names
   are the reference's, otherwise by position (each parameter and buffer in order of use, with
   equal shapes; the report says so; a 1x1 convolution and an ``nn.Linear`` with the same
   weights count as equal), compared in eval mode with *random* batch-norm statistics,
   normalisation parameters and layer-scale values (at their default values a batch norm is
   the identity in eval mode and hides a misplaced one; at layer scale's 1e-6 every branch
   hides); a block random in eval mode (dropout left on) is named here;
5. the gradients of one backward pass in eval mode, of the input and of every parameter (a
   detached shortcut or an SE gate under ``torch.no_grad()`` gives the right outputs and cuts
   them);
6. the outputs in train mode, and the running statistics, wherever the reference is
   deterministic in train mode (two runs with other seeds agree): dropout or stochastic depth
   the exercise does not have is named here;
7. the initial values of the parameters the reference starts at a constant (layer scale's
   1e-6): every earlier stage copies the reference's values in, so only this one sees yours;
8. the names, for blocks that must load torchvision's weights;
9. a run in bfloat16 (and on the GPU when CUDA is in use): a tensor made inside forward
   without the input's device and dtype (``torch.zeros(n, c, h, w)``) fails there, and a cast
   to float32 (``.float()``) makes the output's dtype another than the input's.

A difference raises ``AssertionError`` with a diagnosis in words: the case, what differs, and the
likely cause. When your block behaves exactly like one of the exercise's *known bugs* (the
reference with one classic mistake), the report names that bug. When it behaves exactly like
one of its *accepted variants* (another reading the paper allows), it passes with a one-line
note on the course's choice. A skeleton that still raises
``NotImplementedError`` is reported as "not done yet", without an error. ``list_exercises()``
lists the exercises; ``diagnose(name, candidate)`` returns the report instead of raising.

**For the author of a paper's exercises.** One file per paper, ``common/exercises/<paper>.py``
(imported automatically), registers each exercise with ``@exercise`` on a *reference factory*:
a function with exactly the signature the learner's class gets, that builds the block from the
course's saved code. Every name starts with the file's name. A complete example::

    from common.exercises import Case, Mutant, exercise
    from common.models import resnet

    def _relu_before_addition(block, x):                # forward of the reference, one bug in it
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.relu(block.bn2(block.conv2(out)))   # the bug: a ReLU before the addition
        identity = x if block.downsample is None else block.downsample(x)
        return block.relu(out + identity)

    @exercise(
        "resnet.BasicBlock",
        paper="He et al. 2015 (arXiv:1512.03385), Fig. 2; option A: sec. 3.3",
        cases=[
            # label, positional arguments of the factory, input shape, tags (for the diagnosis)
            Case("inside a stage: 16 -> 16, stride 1", (16, 16, 1), (2, 16, 8, 8)),
            Case("first block of a stage: 16 -> 32, stride 2", (16, 32, 2), (2, 16, 8, 8),
                 tags=("stride", "channels", "shortcut")),
        ],
        mutants=[
            Mutant("ReLU before the addition",
                   "The residual branch ends in a ReLU before the addition ...",
                   forward=_relu_before_addition),       # or build=<factory of the buggy block>
        ],
    )
    def basic_block(in_channels, out_channels, stride=1):
        return resnet.BasicBlock(in_channels, out_channels, stride,
                                 resnet.make_shortcut("A", in_channels, out_channels, stride))

Choose cases that expose the usual bugs (stride 1 and 2, equal and changing channels, the first
block of a stage) and keep them small (a few thousand to a few hundred thousand parameters, 8x8
inputs): the checker builds every mutant for every case when a learner's block fails. Tags name
what a case exercises; when exactly the cases with one tag fail, the report says so (known tags:
see ``TAG_HINTS``; ``hints={tag: text}`` adds or overrides them). Each mutant must be caught, and
named, when it is itself given to ``check`` (``tests/test_exercises.py`` asserts it for every
registered mutant, and that every reference passes). Another reading the paper allows is not a
bug: register it as ``accepted=[Accepted(title, note, forward=...)]`` (or ``build=``), and a
block that behaves exactly like it passes, with the note.

**For the maintainer.** The engine: ``registry`` (the declarations above), ``running`` (one
block on one case), ``transplant`` (the reference's weights copied in; the reference's and the
known bugs' runs, cached per exercise), ``stages`` (``Stage`` and one function per stage, in
``STAGES``), ``hints`` (the likely causes and their detectors), ``report`` (``diagnose``,
``check``). Each module's docstring says how to add a stage or a hint.
"""
from common.exercises.hints import TAG_HINTS
from common.exercises.registry import (
    Accepted,
    Case,
    Exercise,
    Mutant,
    exercise,
    get_exercise,
    list_exercises,
    register,
)
from common.exercises.report import Report, check, diagnose
from common.exercises.stages import Stage

__all__ = ["check", "diagnose", "list_exercises", "get_exercise", "exercise", "register",
           "Case", "Mutant", "Accepted", "Exercise", "Report", "Stage", "TAG_HINTS"]
