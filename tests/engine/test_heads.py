"""Tests for engine/heads.py: sigmoid heads and outputs that are not one logits tensor."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import (
    BinaryClassifierOutputTarget,
    ClassifierOutputTarget,
)
from torch import nn
from torchvision.models.googlenet import GoogLeNetOutputs
from torchvision.models.inception import InceptionOutputs

from engine.cam import CamEngine
from engine.errors import InspectorError
from engine.heads import (
    BinaryHead,
    Head,
    MultiLabelHead,
    describe_output,
    head_classes,
    head_fits,
    head_outputs,
    make_head,
    select_logits,
)
from engine.profile import OutputSpec
from tests.conftest import TinyNet, engine_records

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 32


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]


def _net(classes: int, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(classes).eval()


def _engine(
    model: nn.Module,
    classes: tuple[str, ...],
    output: OutputSpec | None = None,
    layer: str = "features",
) -> CamEngine:
    records = engine_records((SIZE, SIZE), MEAN, STD, layer=layer, output=output)
    return CamEngine(model, classes, *records, "cpu")


def _wrapped(kind: str, classes: tuple[str, ...], output: OutputSpec | None = None) -> CamEngine:
    return _engine(Wrapped(kind).eval(), classes, output, "net.features")


def _logits(engine: CamEngine, images: list[np.ndarray]) -> torch.Tensor:
    with torch.no_grad():
        return engine.model(engine.prepare(images)).float()


def _reference(engine: CamEngine, images: list[np.ndarray], targets: list) -> np.ndarray:
    with GradCAM(model=engine.model, target_layers=[engine.model.features]) as cam:
        return cam(input_tensor=engine.prepare(images), targets=targets)


# --- heads ------------------------------------------------------------------------------------


def test_make_head_by_activation_and_width() -> None:
    assert type(make_head("softmax", 1)) is Head
    assert type(make_head("softmax", 6)) is Head
    assert type(make_head("sigmoid", 1)) is BinaryHead
    assert type(make_head("sigmoid", 4)) is MultiLabelHead
    with pytest.raises(InspectorError, match="unknown output activation 'tanh'"):
        make_head("tanh", 2)


def test_head_classes_defaults_for_binary() -> None:
    assert head_classes(("ok", "defect"), "sigmoid") == ("ok", "defect")
    assert head_classes(("class_0",), "sigmoid") == ("negative", "positive")
    assert head_classes(("a", "b", "c"), "sigmoid") == ("a", "b", "c")
    assert head_classes(("only",), "softmax") == ("only",)


def test_head_outputs_and_fit_for_checkpoints() -> None:
    assert head_outputs(2, "sigmoid") == 1  # ["ok", "defect"]: one logit
    assert head_outputs(2, "softmax") == 2
    assert head_outputs(5, "sigmoid") == 5
    assert head_fits(1, 2, "sigmoid") and head_fits(2, 2, "sigmoid")
    assert not head_fits(1, 2, "softmax") and not head_fits(3, 2, "sigmoid")


def test_head_formulas() -> None:
    logits = torch.tensor([[2.0], [-0.5], [0.0]])
    binary = BinaryHead()
    p = 1 / (1 + np.exp(-np.array([2.0, -0.5, 0.0])))
    np.testing.assert_allclose(
        binary.probabilities(logits).numpy(), np.stack([1 - p, p], 1), rtol=1e-6
    )
    assert binary.predicted(logits).tolist() == [1, 0, 0]  # p = 0.5 ties go to class 0
    assert binary.scores(logits, torch.tensor([1, 1, 0])).tolist() == [2.0, -0.5, -0.0]
    multi = torch.tensor([[3.0, 2.0, -1.0]])
    probs = MultiLabelHead().probabilities(multi)
    np.testing.assert_allclose(probs.numpy(), 1 / (1 + np.exp(-multi.numpy())), rtol=1e-6)
    assert float(probs.sum()) > 1.0  # independent labels: no reason to sum to 1
    assert Head().scores(multi, torch.tensor([1])).tolist() == [2.0]


# --- softmax stays what it was --------------------------------------------------------------


def test_softmax_is_bit_identical_to_torch_softmax() -> None:
    engine = _engine(_net(6), tuple(f"c{i}" for i in range(6)))
    images = _images(2)
    results = engine.explain(images, "gradcam")
    probs = torch.softmax(_logits(engine, images), dim=1)
    top_p, top_i = probs.topk(5, dim=1)
    for i, result in enumerate(results):
        assert [p.index for p in result.top_k] == top_i[i].tolist()
        assert [p.probability for p in result.top_k] == [float(v) for v in top_p[i]]
    captured = engine.capture(images)
    np.testing.assert_array_equal(captured[0].probabilities, probs[0].numpy())


# --- binary ----------------------------------------------------------------------------------


def test_binary_head_probabilities_and_prediction() -> None:
    engine = _engine(_net(1), ("ok", "defect"), OutputSpec(activation="sigmoid"))
    images = _images(6)
    with torch.no_grad():  # centre the bias so some images are positive and some negative
        engine.model.head.bias -= _logits(engine, images)[:, 0].median()
    logits = _logits(engine, images)[:, 0]
    assert (logits > 0).any() and (logits <= 0).any(), "the test needs both predictions"
    results = engine.explain(images, "gradcam")
    for result, logit in zip(results, logits, strict=True):
        p = float(torch.sigmoid(logit))
        probabilities = {pred.name: pred.probability for pred in result.top_k}
        assert len(result.top_k) == 2
        assert probabilities["defect"] == pytest.approx(p, abs=1e-7)
        assert probabilities["ok"] == pytest.approx(1 - p, abs=1e-7)
        assert result.predicted.name == ("defect" if logit > 0 else "ok")
        assert result.target_index == result.predicted.index


def test_binary_positive_and_negative_maps_come_from_opposite_gradients() -> None:
    engine = _engine(_net(1, seed=3), ("ok", "defect"), OutputSpec(activation="sigmoid"))
    images = _images(2, seed=4)
    positive = engine.capture(images, target="defect")
    negative = engine.capture(images, target="ok")
    for pos, neg in zip(positive, negative, strict=True):
        grad_pos = pos.layers["features"].gradient
        grad_neg = neg.layers["features"].gradient
        assert np.abs(grad_pos).max() > 0
        np.testing.assert_array_equal(grad_neg, -grad_pos)
        raw_pos = engine.cam_from_capture(pos, "gradcam").raw
        raw_neg = engine.cam_from_capture(neg, "gradcam").raw
        # relu(x) and relu(-x): where one explanation has heat the other has none.
        assert np.all(raw_pos * raw_neg == 0)
        assert raw_pos.max() > 0 and raw_neg.max() > 0
    for index in (0, 1):
        ours = engine.explain(images, "gradcam", target=index)
        expected = _reference(engine, images, [BinaryClassifierOutputTarget(index)] * 2)
        for result, ref in zip(ours, expected, strict=True):
            np.testing.assert_allclose(result.cam, ref, atol=1e-3)


def test_binary_default_names_and_target_range() -> None:
    engine = _engine(_net(1), ("class_0",), OutputSpec(activation="sigmoid"))
    assert engine.classes == ("negative", "positive")
    result = engine.explain(_images(1), "gradcam", target="positive")[0]
    assert result.target_name == "positive"
    with pytest.raises(InspectorError, match=r"target class 2 is out of range 0\.\.1"):
        engine.explain(_images(1), "gradcam", target=2)


def test_binary_from_capture_keeps_sigmoid_probabilities() -> None:
    engine = _engine(_net(1), ("ok", "defect"), OutputSpec(activation="sigmoid"))
    images = _images(2, seed=5)
    direct = engine.explain(images, "gradcam++")
    for capture, expected in zip(engine.capture(images), direct, strict=True):
        p = float(torch.sigmoid(_logits(engine, [images[0]])[0, 0]))
        assert capture.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
        again = engine.cam_from_capture(capture, "gradcam++")
        assert again.top_k == expected.top_k
        np.testing.assert_allclose(again.cam, expected.cam, atol=1e-6)
        assert p > 0  # keeps the reference computation honest


def test_binary_score_cam_negates_for_the_negative_class() -> None:
    engine = _engine(_net(1, seed=2), ("ok", "defect"), OutputSpec(activation="sigmoid"))
    images = _images(1, seed=2)
    from pytorch_grad_cam import ScoreCAM

    for index in (0, 1):
        ours = engine.explain(images, "scorecam", target=index)[0]
        with ScoreCAM(model=engine.model, target_layers=[engine.model.features]) as cam:
            cam.batch_size = 16
            ref = cam(
                input_tensor=engine.prepare(images),
                targets=[BinaryClassifierOutputTarget(index)],
            )[0]
        np.testing.assert_allclose(ours.cam, ref, atol=1e-3)


# --- multi-label -----------------------------------------------------------------------------


def test_multilabel_probabilities_are_independent_sigmoids() -> None:
    labels = ("rust", "scratch", "dent", "stain")
    engine = _engine(_net(4, seed=1), labels, OutputSpec(activation="sigmoid"))
    images = _images(2, seed=1)
    logits = _logits(engine, images)
    results = engine.explain(images, "gradcam")
    for result, row in zip(results, logits, strict=True):
        expected = torch.sigmoid(row)
        assert len(result.top_k) == 4
        for pred in result.top_k:
            assert pred.probability == pytest.approx(float(expected[pred.index]), abs=1e-7)
        assert result.predicted.index == int(row.argmax())
    capture = engine.capture(images[:1])[0]
    np.testing.assert_allclose(capture.probabilities, torch.sigmoid(logits[0]).numpy())
    assert capture.probabilities.sum() != pytest.approx(1.0, abs=1e-3)


def test_multilabel_each_label_equals_pytorch_grad_cam() -> None:
    labels = ("rust", "scratch", "dent", "stain")
    engine = _engine(_net(4, seed=1), labels, OutputSpec(activation="sigmoid"))
    images = _images(2, seed=6)
    for index in range(4):
        ours = engine.explain(images, "gradcam", target=labels[index])
        expected = _reference(engine, images, [ClassifierOutputTarget(index)] * 2)
        for result, ref in zip(ours, expected, strict=True):
            assert result.target_name == labels[index]
            np.testing.assert_allclose(result.cam, ref, atol=1e-3)


# --- outputs that are not one tensor ---------------------------------------------------------


class Wrapped(nn.Module):
    """TinyNet whose output is wrapped: a tuple, dict, object or namedtuple with an aux head."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = TinyNet(3)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> object:
        logits = self.net(x)
        aux = logits.flip(1) * 2.0  # a different 'answer', so choosing wrongly shows
        if self.kind == "tuple":
            return (logits, aux)
        if self.kind == "features_first":
            return (x, logits)  # e.g. a reconstruction before the logits
        if self.kind == "dict":
            return {"aux": aux, "logits": logits}
        if self.kind == "dict_other":
            return OrderedDict(scores=logits, aux=aux[:, :1, None])
        if self.kind == "object":
            return SimpleNamespace(logits=logits, hidden=aux)
        if self.kind == "inception":
            return InceptionOutputs(logits, aux)
        if self.kind == "googlenet":
            return GoogLeNetOutputs(logits, aux, aux)
        if self.kind == "squeezed":
            return logits[:, 0]
        raise AssertionError(self.kind)


def _plain_reference(method: str = "gradcam") -> list:
    torch.manual_seed(0)
    plain = TinyNet(3).eval()
    return _engine(plain, ("a", "b", "c")).explain(_images(2), method)


@pytest.mark.parametrize(
    ("kind", "note"),
    [
        (
            "tuple",
            "the model returns a tuple of 2 (tensor (2, 3), tensor (2, 3)); explained element 0; "
            "set [output] logits in the profile to choose",
        ),
        (
            "dict",
            "the model returns a dict {'aux': tensor (2, 3), 'logits': tensor (2, 3)}; "
            "explained 'logits'; set [output] logits in the profile to choose",
        ),
        (
            "object",
            "the model returns a SimpleNamespace with tensor attributes logits, hidden; "
            "explained .logits; set [output] logits in the profile to choose",
        ),
        (
            "inception",
            "the model returns an InceptionOutputs (logits: tensor (2, 3), aux_logits: tensor "
            "(2, 3)); explained 'logits'; set [output] logits in the profile to choose",
        ),
        ("googlenet", "the model returns a GoogLeNetOutputs (logits: tensor (2, 3), aux_logits2"),
        (
            "features_first",
            "the model returns a tuple of 2 (tensor (2, 3, 32, 32), tensor (2, 3)); "
            "explained element 1; set [output] logits in the profile to choose",
        ),
    ],
)
def test_auto_finds_the_logits_and_says_which(kind: str, note: str) -> None:
    engine = _wrapped(kind, ("a", "b", "c"))
    ours = engine.explain(_images(2), "gradcam")
    for result, expected in zip(ours, _plain_reference(), strict=True):
        assert result.top_k == expected.top_k
        np.testing.assert_allclose(result.cam, expected.cam, atol=1e-6)
    assert all(result.output_note.startswith(note) for result in ours)
    assert engine.capture(_images(2))[1].output_note.startswith(note)


def test_a_pass_changes_no_engine_attribute() -> None:
    """The head is decided at construction and the output note comes back with the pass."""
    engine = _wrapped("tuple", ("a", "b", "c"), OutputSpec(activation="sigmoid"))
    before = dict(vars(engine))
    engine.explain(_images(2), "gradcam")
    engine.cam_from_capture(engine.capture(_images(1))[0], "scorecam")
    assert vars(engine).keys() == before.keys()
    assert all(vars(engine)[name] is value for name, value in before.items())
    assert type(engine.head) is MultiLabelHead  # three sigmoid outputs, read once at construction


def test_plain_tensor_output_has_no_note() -> None:
    engine = _engine(_net(3), ("a", "b", "c"))
    result = engine.explain(_images(1), "gradcam")[0]
    assert result.output_note == "" and engine.capture(_images(1))[0].output_note == ""


@pytest.mark.parametrize(
    ("kind", "choice"),
    [("tuple", 1), ("tuple", "1"), ("dict", "aux"), ("object", "hidden"), ("inception", 1)],
)
def test_chosen_element_is_explained_without_a_note(kind: str, choice: int | str) -> None:
    spec = OutputSpec(logits=int(choice) if str(choice).isdigit() else choice)
    engine = _wrapped(kind, ("a", "b", "c"), spec)
    model = engine.model
    result = engine.explain(_images(1), "gradcam")[0]
    with torch.no_grad():
        aux = model.net(engine.prepare(_images(1))).flip(1) * 2.0
    assert result.predicted.index == int(aux.argmax())
    assert result.predicted.probability == pytest.approx(float(aux.softmax(1).max()), abs=1e-6)
    assert result.output_note == ""


def test_squeezed_binary_output_is_one_column() -> None:
    engine = _wrapped("squeezed", ("ok", "defect"), OutputSpec(activation="sigmoid"))
    result = engine.explain(_images(1), "gradcam")[0]
    assert sum(p.probability for p in result.top_k) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kind", "choice", "message"),
    [
        ("tuple", 2, "[output] logits = 2 is out of range: the model returned a tuple of 2 ("),
        ("dict", "scores", "[output] logits = 'scores' is not a key of a dict {'aux': tensor"),
        ("dict", 0, "[output] logits = 0 is an index, but the model returned a dict"),
        ("object", "logit", "'logit' is not an attribute of a SimpleNamespace with tensor"),
        ("features_first", 0, "output[0] has shape (2, 3, 32, 32); expected (batch, classes)"),
    ],
)
def test_bad_choice_is_one_line_listing_the_output(
    kind: str, choice: int | str, message: str
) -> None:
    engine = _wrapped(kind, ("a", "b", "c"), OutputSpec(logits=choice))
    with pytest.raises(InspectorError) as info:
        engine.explain(_images(2), "gradcam")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_auto_without_any_logits_says_what_it_found() -> None:
    output = {"features": torch.zeros(1, 4, 2, 2)}
    with pytest.raises(InspectorError, match=r"returned a dict \{'features': tensor \(1, 4, 2, 2"):
        select_logits(output)
    assert describe_output([torch.zeros(2, 3), "x"]) == "a list of 2 (tensor (2, 3), str)"
    assert select_logits(OrderedDict(scores=torch.zeros(2, 3)))[1].startswith(
        "the model returns an OrderedDict {'scores': tensor (2, 3)}; explained 'scores'"
    )
