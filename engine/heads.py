"""Classifier heads: how a model's logits become class probabilities and the score to explain.

A softmax head (one logit per class, probabilities summing to 1) is the default. A sigmoid head
with one output is a binary classifier with two classes, negative then positive; with several
outputs it is multi-label, one independent probability per label. Each head answers the same
three questions, so the CAM engine needs no special cases.

Models do not always return one logits tensor: ``select_logits`` picks it out of a tuple, a
dict, an object with ``.logits`` or a namedtuple such as torchvision's InceptionOutputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from engine.errors import InspectorError

BINARY_DEFAULT_CLASSES: tuple[str, str] = ("negative", "positive")


class Head:
    """Softmax over the logits: one class is true, probabilities sum to 1."""

    kind = "softmax"

    def class_count(self, logits: torch.Tensor) -> int:
        return logits.shape[1]

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, classes) probabilities from (B, outputs) logits."""
        return torch.softmax(logits.float(), dim=1)

    def predicted(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) index of the most probable class."""
        return logits.argmax(dim=1)

    def scores(self, logits: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        """(B,) the value whose gradient explains each image's target class: its logit."""
        return logits.gather(1, target_index[:, None])[:, 0]


class BinaryHead(Head):
    """One sigmoid output p: class 1 (positive) has probability p, class 0 has 1 - p.

    The positive class is explained by the logit, the negative class by the negated logit
    (pytorch-grad-cam's BinaryClassifierOutputTarget), so their maps come from gradients of
    opposite sign.
    """

    kind = "binary"

    def class_count(self, logits: torch.Tensor) -> int:
        return 2

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits.float()[:, :1])
        return torch.cat([1.0 - p, p], dim=1)

    def predicted(self, logits: torch.Tensor) -> torch.Tensor:
        # p > 0.5 exactly when the logit is positive; a tie goes to class 0, as argmax does.
        return (logits[:, 0] > 0).long()

    def scores(self, logits: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        sign = target_index.to(logits.dtype) * 2 - 1
        return logits[:, 0] * sign


class MultiLabelHead(Head):
    """One independent sigmoid per label: probabilities need not sum to 1."""

    kind = "multilabel"

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits.float())


def make_head(activation: str, outputs: int) -> Head:
    """The head for a profile's [output] activation and the model's number of outputs."""
    if activation == "softmax":
        return Head()
    if activation == "sigmoid":
        return BinaryHead() if outputs == 1 else MultiLabelHead()
    raise InspectorError(f"unknown output activation '{activation}': use softmax or sigmoid")


def head_outputs(class_count: int, activation: str) -> int:
    """Outputs a new model needs: a two-class sigmoid profile is a one-output binary model."""
    return 1 if activation == "sigmoid" and class_count == 2 else class_count


def head_fits(outputs: int, class_count: int, activation: str) -> bool:
    """Whether a checkpoint head with ``outputs`` rows serves a profile listing these classes."""
    return outputs == class_count or outputs == head_outputs(class_count, activation)


def head_classes(classes: Sequence[str], activation: str) -> tuple[str, ...]:
    """Class names the engine shows: a one-name sigmoid head becomes negative/positive."""
    names = tuple(classes)
    if activation == "sigmoid" and len(names) <= 1:
        return BINARY_DEFAULT_CLASSES
    return names


_LOGIT_KEYS = ("logits", "out", "output")
_CHOOSE = "set [output] logits in the profile to choose"


def select_logits(output: object, choice: int | str = "auto") -> tuple[torch.Tensor, str]:
    """The (B, outputs) logits in a model's output and a note when it had to guess which.

    ``choice`` is the profile's [output] logits: "auto", an index into a tuple or list, or a
    key or attribute name. A bad choice is an InspectorError listing what the output holds.
    """
    if isinstance(output, torch.Tensor):
        return _as_matrix(output, "the model output"), ""
    if choice == "auto":
        tensor, where, note = _guess(output)
        return _as_matrix(tensor, where), _with_hint(note)
    tensor, where = _chosen(output, choice)
    return _as_matrix(tensor, where), ""


def describe_output(output: object) -> str:
    """What a model output holds, in words: 'a tuple of 2 (tensor (1, 6), tensor (1, 3))'."""
    if isinstance(output, Mapping):
        items = ", ".join(f"{k!r}: {_what(v)}" for k, v in output.items())
        return f"{_a(output)} {{{items}}}"
    if isinstance(output, tuple | list):
        fields = getattr(output, "_fields", None)
        if fields:
            items = ", ".join(f"{f}: {_what(v)}" for f, v in zip(fields, output, strict=False))
            return f"{_a(output)} ({items})"
        items = ", ".join(_what(v) for v in output)
        return f"{_a(output)} of {len(output)} ({items})"
    names = (
        [n for n, v in vars(output).items() if isinstance(v, torch.Tensor)]
        if hasattr(output, "__dict__")
        else []
    )
    extra = f" with tensor attributes {', '.join(names)}" if names else ""
    return f"{_a(output)}{extra}"


def _a(value: object) -> str:
    name = type(value).__name__
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _what(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)}"
    return type(value).__name__


def _as_matrix(tensor: object, where: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise InspectorError(f"{where} is a {type(tensor).__name__}, not a logits tensor")
    if tensor.dim() == 1:  # a binary model that squeezed its single output
        return tensor[:, None]
    if tensor.dim() != 2:
        raise InspectorError(
            f"{where} has shape {tuple(tensor.shape)}; expected (batch, classes) logits"
        )
    return tensor


def _guess(output: object) -> tuple[torch.Tensor, str, str]:
    """The obvious logits: a 'logits'/'out'/'output' entry, else the first 2-D tensor."""
    what = describe_output(output)
    if isinstance(output, Mapping):
        for key in (*_LOGIT_KEYS, *output.keys()):
            if _is_logits(output.get(key)):
                return output[key], f"output[{key!r}]", f"{_said(what)}; explained {key!r}"
    elif isinstance(output, tuple | list):
        fields = getattr(output, "_fields", ())
        for key in _LOGIT_KEYS:
            if key in fields and _is_logits(getattr(output, key)):
                return getattr(output, key), f"output.{key}", f"{_said(what)}; explained {key!r}"
        for index, value in enumerate(output):
            if _is_logits(value):
                name = f" ({fields[index]})" if index < len(fields) else ""
                note = f"{_said(what)}; explained element {index}{name}"
                return value, f"output[{index}]", note
    else:
        for key in _LOGIT_KEYS:
            if _is_logits(getattr(output, key, None)):
                value = getattr(output, key)
                return value, f"output.{key}", f"{_said(what)}; explained .{key}"
    raise InspectorError(
        f"the model returned {what}: no (batch, classes) logits tensor found; "
        f"{_CHOOSE} (an index, key or attribute name)"
    )


def _said(what: str) -> str:
    return f"the model returns {what}"


def _with_hint(note: str) -> str:
    return f"{note}; {_CHOOSE}"


def _is_logits(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() in (1, 2)


def _chosen(output: object, choice: int | str) -> tuple[object, str]:
    what = describe_output(output)
    if isinstance(choice, int):
        if not isinstance(output, tuple | list):
            raise InspectorError(
                f"[output] logits = {choice} is an index, but the model returned {what}"
            )
        if choice >= len(output):
            raise InspectorError(
                f"[output] logits = {choice} is out of range: the model returned {what}"
            )
        return output[choice], f"output[{choice}]"
    if isinstance(output, Mapping):
        if choice not in output:
            raise InspectorError(f"[output] logits = '{choice}' is not a key of {what}")
        return output[choice], f"output[{choice!r}]"
    if not hasattr(output, choice):
        raise InspectorError(f"[output] logits = '{choice}' is not an attribute of {what}")
    return getattr(output, choice), f"output.{choice}"
