"""Tests for building models and loading every supported checkpoint form, safely."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from engine.checkpoint import (
    LoadedModel,
    build_model,
    head_key,
    load_model,
    sha256_of,
    state_covers_all_tensors,
)
from engine.errors import InspectorError
from engine.profile import ModelProfile, load_profile, profile_from_checkpoint
from engine.resources import resource_path

NEU = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")

StateDict = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def resnet18_state() -> StateDict:
    """A 6-class resnet18 state_dict whose values are all distinct from a fresh model's."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=6)
    # Make BN statistics non-default so the test also proves buffers are loaded.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.num_batches_tracked.fill_(17)
    return {k: v.clone() for k, v in model.state_dict().items()}


def neu_profile(
    weights: Path | None, architecture: str = "resnet18", **changes: object
) -> ModelProfile:
    profile = profile_from_checkpoint(weights or Path("unused.pth"), architecture, NEU)
    profile = dataclasses.replace(profile, weights=weights.resolve() if weights else None)
    return dataclasses.replace(profile, **changes)


def assert_loaded_exactly(loaded: LoadedModel, state: StateDict) -> None:
    got = loaded.model.state_dict()
    assert got.keys() == state.keys()
    for key, value in state.items():
        expected = value.float() if value.is_floating_point() else value
        assert got[key].dtype == expected.dtype, key
        assert torch.equal(got[key], expected), key
    assert not loaded.model.training
    assert all(
        p.device.type == "cpu" and p.dtype == torch.float32 for p in loaded.model.parameters()
    )


def save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


# --- accepted forms --------------------------------------------------------------------------

FORMS: dict[str, Callable[[StateDict], object]] = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 12},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    "model": lambda sd: {"model": sd, "best_acc": 0.93},
    "net": lambda sd: {"net": sd},
    "nested": lambda sd: {"model": {"state_dict": sd}},
    "dataparallel": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "compiled": lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
}


@pytest.mark.parametrize("form", FORMS)
def test_checkpoint_forms_load_exactly(
    tmp_path: Path, resnet18_state: StateDict, form: str
) -> None:
    path = save(tmp_path / "w.pth", FORMS[form](resnet18_state))
    loaded = load_model(neu_profile(path))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.classes == NEU
    assert loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    if form == "dataparallel":
        assert loaded.notes == ("stripped 'module.' prefix",)
    if form == "bare":
        assert loaded.notes == ()


def test_lightning_checkpoint_strips_model_prefix(
    tmp_path: Path, resnet18_state: StateDict
) -> None:
    inner = {f"model.{k}": v for k, v in resnet18_state.items()}
    inner["criterion.weight"] = torch.ones(6)  # a loss module's buffer, not part of the model
    path = save(
        tmp_path / "epoch=3.ckpt", {"state_dict": inner, "pytorch-lightning_version": "2.4"}
    )
    loaded = load_model(neu_profile(path))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.notes == ("stripped 'model.' prefix (ignored 1 other entries)",)


def test_dataparallel_around_lightning(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = save(tmp_path / "w.pt", {f"module.net.{k}": v for k, v in resnet18_state.items()})
    loaded = load_model(neu_profile(path))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.notes == ("stripped 'module.net.' prefix",)


@pytest.mark.parametrize("prefix", ["backbone.", "encoder.", "model.model."])
def test_a_training_scripts_prefix_is_stripped(
    tmp_path: Path, resnet18_state: StateDict, prefix: str
) -> None:
    path = save(tmp_path / "w.pt", {prefix + k: v for k, v in resnet18_state.items()})
    loaded = load_model(neu_profile(path))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.notes == (f"stripped '{prefix}' prefix",)


def test_timm_ema_weights_are_preferred(tmp_path: Path, resnet18_state: StateDict) -> None:
    plain = {k: torch.zeros_like(v) for k, v in resnet18_state.items()}
    content = {"state_dict": plain, "state_dict_ema": resnet18_state, "epoch": 9}
    loaded = load_model(neu_profile(save(tmp_path / "checkpoint-9.pth.tar", content)))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.notes == (
        "used the averaged weights under 'state_dict_ema', as timm's loader does",
    )


def test_bin_extension(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = save(tmp_path / "pytorch_model.bin", resnet18_state)
    assert_loaded_exactly(load_model(neu_profile(path)), resnet18_state)


def test_legacy_non_zip_format(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = tmp_path / "old.pth"
    torch.save(resnet18_state, path, _use_new_zipfile_serialization=False)
    assert_loaded_exactly(load_model(neu_profile(path)), resnet18_state)


def test_safetensors(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = tmp_path / "w.safetensors"
    save_file(resnet18_state, str(path))
    loaded = load_model(neu_profile(path))
    assert_loaded_exactly(loaded, resnet18_state)
    assert loaded.weights_sha256 == sha256_of(path)


def test_safetensors_is_sniffed_whatever_the_extension(
    tmp_path: Path, resnet18_state: StateDict
) -> None:
    path = tmp_path / "w.pth"
    save_file(resnet18_state, str(path))
    assert_loaded_exactly(load_model(neu_profile(path)), resnet18_state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_non_float32_checkpoint_is_converted(
    tmp_path: Path, resnet18_state: StateDict, dtype: torch.dtype
) -> None:
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in resnet18_state.items()}
    loaded = load_model(neu_profile(save(tmp_path / "half.pth", state)))
    assert_loaded_exactly(loaded, state)
    assert loaded.notes == (f"converted {str(dtype).removeprefix('torch.')} weights to float32",)


def test_missing_batchnorm_counters_are_filled(tmp_path: Path, resnet18_state: StateDict) -> None:
    state = {k: v for k, v in resnet18_state.items() if not k.endswith("num_batches_tracked")}
    loaded = load_model(neu_profile(save(tmp_path / "old.pth", state)))
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())


def test_no_weights_gives_random_model_with_profile_classes() -> None:
    loaded = load_model(neu_profile(None))
    assert loaded.weights_sha256 is None
    assert loaded.classes == NEU
    assert loaded.notes == ("no weights: random initialisation",)
    assert loaded.model.fc.out_features == 6
    assert not loaded.model.training


def test_no_weights_and_no_classes_is_an_error() -> None:
    profile = dataclasses.replace(neu_profile(None), classes=())
    with pytest.raises(InspectorError, match="has neither weights nor classes"):
        load_model(profile)


# --- classes ---------------------------------------------------------------------------------


def test_classes_inferred_from_head(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = save(tmp_path / "w.pth", resnet18_state)
    loaded = load_model(dataclasses.replace(neu_profile(path), classes=()))
    assert loaded.classes == tuple(f"class_{i}" for i in range(6))
    assert loaded.notes == ("inferred 6 classes from checkpoint head fc.weight",)
    assert_loaded_exactly(loaded, resnet18_state)


def test_class_count_mismatch(tmp_path: Path) -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    path = save(tmp_path / "w.pth", model.state_dict())
    profile = dataclasses.replace(neu_profile(path), source=tmp_path / "neu.toml")
    with pytest.raises(InspectorError) as info:
        load_model(profile)
    assert str(info.value) == "checkpoint head has 10 classes, profile 'neu.toml' lists 6"
    with pytest.raises(InspectorError, match=r"profile 'w' lists 6$"):
        load_model(neu_profile(path))  # made in a dialog: named after the weights file


@pytest.mark.parametrize(
    ("architecture", "key"),
    [
        ("resnet18", "fc.weight"),
        ("vgg11", "classifier.6.weight"),
        ("densenet121", "classifier.weight"),
        ("mobilenet_v3_small", "classifier.3.weight"),
        ("efficientnet_b0", "classifier.1.weight"),
        ("convnext_tiny", "classifier.2.weight"),
        ("squeezenet1_1", "classifier.1.weight"),
        ("vit_b_16", "heads.head.weight"),
        ("inception_v3", "fc.weight"),
    ],
)
def test_head_key(architecture: str, key: str) -> None:
    state = build_model(architecture, 7, meta=True).state_dict()
    assert head_key(state) == key
    assert state[key].shape[0] == 7


def test_inception_loads_without_aux_head(tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = torchvision.models.inception_v3(
        weights=None, num_classes=6, aux_logits=True, init_weights=False
    )
    state = trained.state_dict()
    loaded = load_model(neu_profile(save(tmp_path / "inc.pth", state), "inception_v3"))
    kept = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    assert_loaded_exactly(loaded, kept)
    assert loaded.notes == (f"ignored {len(state) - len(kept)} auxiliary-classifier tensors",)


@pytest.mark.parametrize("form", ["pth", "safetensors"])
def test_mnasnet_gets_module_versions(tmp_path: Path, form: str) -> None:
    # MNASNet's loader refuses a state_dict without per-module versions; safetensors has none.
    torch.manual_seed(4)
    original = torchvision.models.mnasnet0_5(weights=None, num_classes=6).eval()
    state = {f"module.{k}": v for k, v in original.state_dict().items()}
    path = tmp_path / f"m.{form}"
    if form == "pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    loaded = load_model(neu_profile(path, "mnasnet0_5"))
    assert_loaded_exactly(loaded, original.state_dict())
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(image), original(image))


def test_state_covers_all_tensors() -> None:
    assert state_covers_all_tensors(build_model("resnet18", 3, meta=True))
    hidden = nn.Linear(2, 2)
    hidden.register_buffer("scale", torch.ones(2), persistent=False)
    assert not state_covers_all_tensors(hidden)
    plain = nn.Linear(2, 2)
    plain.offset = torch.zeros(2)  # a bare tensor attribute, invisible to state_dict
    assert not state_covers_all_tensors(plain)


def test_uninitialised_build_gives_the_same_outputs(tmp_path: Path) -> None:
    torch.manual_seed(5)
    original = torchvision.models.convnext_tiny(weights=None, num_classes=6).eval()
    loaded = load_model(
        neu_profile(save(tmp_path / "c.pth", original.state_dict()), "convnext_tiny")
    )
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(image), original(image))


# --- refusals --------------------------------------------------------------------------------


def test_wrong_architecture_names_missing_keys(tmp_path: Path, resnet18_state: StateDict) -> None:
    path = save(tmp_path / "r18.pth", resnet18_state)
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(path, "resnet34"))
    message = str(info.value)
    assert message.startswith(
        "weights 'r18.pth' do not fit resnet34: missing layer1.2.conv1.weight, "
        "layer1.2.bn1.weight, layer1.2.bn1.bias (+"
    )
    assert "unexpected" not in message and "\n" not in message


def test_shape_mismatch_names_shapes(tmp_path: Path, resnet18_state: StateDict) -> None:
    state = dict(resnet18_state)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    state["extra.weight"] = torch.zeros(3)
    del state["layer4.1.bn2.bias"]
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(save(tmp_path / "gray.pth", state)))
    assert str(info.value) == (
        "weights 'gray.pth' do not fit resnet18: missing layer4.1.bn2.bias; "
        "unexpected extra.weight; "
        "shape conv1.weight is [64, 1, 7, 7] in the checkpoint, [64, 3, 7, 7] in the model"
    )


def test_resnet50_into_resnet18_profile(tmp_path: Path) -> None:
    state = torchvision.models.resnet50(weights=None, num_classes=6).state_dict()
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(save(tmp_path / "r50.pth", state)))
    message = str(info.value)
    assert "do not fit resnet18" in message
    assert "unexpected layer1.0.conv3.weight" in message
    assert (
        "shape layer1.0.conv1.weight is [64, 64, 1, 1] in the checkpoint, [64, 64, 3, 3]" in message
    )


def test_full_pickled_module_refused_without_opt_in(tmp_path: Path) -> None:
    path = save(tmp_path / "x.pt", torchvision.models.resnet18(weights=None, num_classes=6))
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(path))
    message = str(info.value)
    assert message.startswith("'x.pt' is a full pickled model")
    assert "torchvision.models.resnet.ResNet" in message
    assert "set trust_pickle = true in the profile or pass --trust-pickle" in message


def test_pickled_extras_beside_state_dict_are_refused(
    tmp_path: Path, resnet18_state: StateDict
) -> None:
    path = save(tmp_path / "x.pt", {"state_dict": resnet18_state, "args": argparse.Namespace(lr=1)})
    with pytest.raises(InspectorError, match=r"\(argparse.Namespace\).*trust_pickle"):
        load_model(neu_profile(path))
    with pytest.warns(UserWarning, match="full unpickling"):
        loaded = load_model(neu_profile(path), trust_pickle=True)
    assert_loaded_exactly(loaded, resnet18_state)


@pytest.mark.parametrize("via", ["argument", "profile"])
def test_full_pickled_module_loaded_with_opt_in(tmp_path: Path, via: str) -> None:
    torch.manual_seed(2)
    original = torchvision.models.resnet18(weights=None, num_classes=6).half()
    path = save(tmp_path / "x.pt", original)
    profile = neu_profile(path, "vgg11", trust_pickle=via == "profile")  # architecture is ignored
    with pytest.warns(UserWarning, match="'x.pt'.*can run its code"):
        loaded = load_model(profile, trust_pickle=via == "argument")
    assert isinstance(loaded.model, torchvision.models.ResNet)
    assert_loaded_exactly(loaded, original.state_dict())
    assert loaded.classes == NEU
    assert loaded.notes[0] == "loaded pickled objects from 'x.pt' (trusted)"
    assert "architecture ignored" in loaded.notes[1]


def test_pickled_dataparallel_is_unwrapped(tmp_path: Path) -> None:
    inner = torchvision.models.resnet18(weights=None, num_classes=6)
    path = save(tmp_path / "dp.pt", nn.DataParallel(inner))
    with pytest.warns(UserWarning):
        loaded = load_model(neu_profile(path), trust_pickle=True)
    assert isinstance(loaded.model, torchvision.models.ResNet)
    assert_loaded_exactly(loaded, inner.state_dict())


def test_trusted_pickle_still_checks_class_count(tmp_path: Path) -> None:
    path = save(tmp_path / "x.pt", {"model": torchvision.models.resnet18(weights=None)})
    with (
        pytest.warns(UserWarning),
        pytest.raises(InspectorError, match="checkpoint head has 1000 classes, profile"),
    ):
        load_model(neu_profile(path), trust_pickle=True)


def test_plain_state_dict_with_trust_does_not_warn(
    tmp_path: Path, resnet18_state: StateDict
) -> None:
    import warnings

    path = save(tmp_path / "w.pth", resnet18_state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_model(neu_profile(path), trust_pickle=True)
    assert loaded.notes == ()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "weights file 'bad.pth' is empty (0 bytes)"),
        (b"this is a text file,\nnot weights\n", "'bad.pth' is not a readable checkpoint"),
        (b"\x80\x02garbage", "'bad.pth' is not a readable checkpoint"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(InspectorError) as info:
        load_model(neu_profile(path))
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_files(tmp_path: Path, resnet18_state: StateDict, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".safetensors":
        save_file(resnet18_state, str(whole))
    else:
        torch.save(resnet18_state, whole)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InspectorError, match=rf"^'cut{suffix}' is not a readable checkpoint"):
        load_model(neu_profile(cut))


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match=r"weights file not found: .*gone\.pth"):
        load_model(neu_profile(tmp_path / "gone.pth"))


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = save(tmp_path / "w.pth", {"epoch": 3, "optimizer": {"lr": 0.1}})
    with pytest.raises(InspectorError, match="holds a dict with keys epoch, optimizer, not model"):
        load_model(neu_profile(path))
    path = save(tmp_path / "t.pth", torch.zeros(3))
    with pytest.raises(InspectorError, match=r"'t\.pth' holds a Tensor, not model weights"):
        load_model(neu_profile(path))


# --- timm models through the same state_dict machinery ---------------------------------------


def timm_state(name: str = "resnet10t", num_classes: int = 6, in_chans: int = 3) -> StateDict:
    """A timm model's state_dict with non-default BatchNorm statistics, made here."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("form", ["bare", "state_dict", "dataparallel", "safetensors"])
def test_timm_checkpoint_forms_load_exactly(tmp_path: Path, form: str) -> None:
    state = timm_state()
    if form == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    else:
        path = save(tmp_path / "w.pth", FORMS[form](state))
    loaded = load_model(neu_profile(path, "timm:resnet10t"))
    assert type(loaded.model).__module__.startswith("timm.")
    assert_loaded_exactly(loaded, state)
    assert loaded.classes == NEU
    assert loaded.weights_sha256 == sha256_of(path)


def test_timm_classes_inferred_from_head(tmp_path: Path) -> None:
    state = timm_state(num_classes=4)
    path = save(tmp_path / "w.pth", state)
    loaded = load_model(dataclasses.replace(neu_profile(path, "timm:resnet10t"), classes=()))
    assert loaded.classes == ("class_0", "class_1", "class_2", "class_3")
    assert loaded.notes == ("inferred 4 classes from checkpoint head fc.weight",)
    assert_loaded_exactly(loaded, state)


def test_timm_grayscale_checkpoint_gets_one_input_channel(tmp_path: Path) -> None:
    state = timm_state(in_chans=1)
    path = save(tmp_path / "gray.pth", {f"module.{k}": v for k, v in state.items()})
    loaded = load_model(neu_profile(path, "timm:resnet10t"))
    assert_loaded_exactly(loaded, state)
    assert loaded.model.conv1[0].in_channels == 1
    assert "built with 1 input channel(s), as checkpoint conv1.0.weight expects" in loaded.notes
    assert loaded.model(torch.zeros(2, 1, 32, 32)).shape == (2, 6)


def test_timm_class_count_mismatch(tmp_path: Path) -> None:
    path = save(tmp_path / "w.pth", timm_state(num_classes=10))
    with pytest.raises(InspectorError, match=r"checkpoint head has 10 classes, profile .* lists 6"):
        load_model(neu_profile(path, "timm:resnet10t"))


def test_timm_wrong_architecture_names_missing_keys(tmp_path: Path) -> None:
    path = save(tmp_path / "w.pth", timm_state())
    with pytest.raises(InspectorError, match=r"do not fit timm:resnet18: missing .*\(\+\d+ more\)"):
        load_model(neu_profile(path, "timm:resnet18"))


def test_timm_pickled_model_needs_opt_in(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=6)
    path = save(tmp_path / "full.pth", model)
    with pytest.raises(InspectorError, match=r"full pickled model .* trust_pickle"):
        load_model(neu_profile(path, "timm:resnet10t"))


def test_timm_random_model_when_no_weights() -> None:
    pytest.importorskip("timm")
    loaded = load_model(neu_profile(None, "timm:resnet10t"))
    assert loaded.weights_sha256 is None and loaded.classes == NEU
    assert loaded.notes == ("no weights: random initialisation",)
    assert loaded.model(torch.zeros(1, 3, 32, 32)).shape == (1, 6)
    assert not loaded.model.training


def test_build_model_timm_matches_timm(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(2)
    ours = build_model("timm:mobilenetv3_small_050", 5)
    torch.manual_seed(2)
    theirs = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=5)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items())


def test_build_model_refuses_backends_that_load_a_file() -> None:
    for architecture in ("onnx", "torchscript"):
        with pytest.raises(InspectorError, match=f"^architecture '{architecture}' is loaded from"):
            build_model(architecture, 3)


def test_sha256_of_streams_large_files(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 20_000  # several read chunks
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


# --- example profiles with weights made here -------------------------------------------------


@pytest.mark.parametrize(
    ("file", "architecture", "num_classes"),
    [("cifar10_resnet18.toml", "resnet18", 10), ("neu_resnet50.toml", "resnet50", 6)],
)
def test_example_profiles_load(
    tmp_path: Path, file: str, architecture: str, num_classes: int
) -> None:
    shutil.copy(resource_path("profiles", file), tmp_path / file)
    torch.manual_seed(3)
    state = torchvision.models.get_model(
        architecture, weights=None, num_classes=num_classes
    ).state_dict()
    save(tmp_path / file.replace(".toml", ".pth"), state)
    profile = load_profile(tmp_path / file)
    loaded = load_model(profile)
    assert_loaded_exactly(loaded, state)
    assert loaded.classes == profile.classes
    assert len(loaded.classes) == num_classes
    logits = loaded.model(torch.zeros(1, 3, *profile.preprocess.size))
    assert logits.shape == (1, num_classes)


def _sigmoid_profile(weights: Path | None, classes: list[str]) -> ModelProfile:
    from engine.profile import parse_profile

    data: dict[str, object] = {
        "name": "binary",
        "architecture": "resnet18",
        "classes": classes,
        "preprocess": {"size": [64, 64]},
        "output": {"activation": "sigmoid"},
    }
    if weights is not None:
        data["weights"] = str(weights)
    return parse_profile(data, weights.parent if weights else Path("."), None)


def test_two_class_sigmoid_profile_loads_a_one_output_checkpoint(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(num_classes=1).state_dict()
    path = save(tmp_path / "binary.pth", state)
    loaded = load_model(_sigmoid_profile(path, ["ok", "defect"]))
    assert loaded.classes == ("ok", "defect")
    assert loaded.model.fc.out_features == 1
    assert torch.equal(loaded.model.fc.weight, state["fc.weight"])


def test_two_label_sigmoid_checkpoint_stays_multi_label(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(num_classes=2).state_dict()
    path = save(tmp_path / "labels.pth", state)
    loaded = load_model(_sigmoid_profile(path, ["rust", "scale"]))
    assert loaded.model.fc.out_features == 2


def test_two_class_sigmoid_profile_without_weights_builds_one_output() -> None:
    loaded = load_model(_sigmoid_profile(None, ["ok", "defect"]))
    assert loaded.model.fc.out_features == 1 and loaded.classes == ("ok", "defect")


def test_three_class_sigmoid_profile_refuses_a_one_output_checkpoint(tmp_path: Path) -> None:
    path = save(tmp_path / "binary.pth", torchvision.models.resnet18(num_classes=1).state_dict())
    with pytest.raises(InspectorError, match="has 1 classes, profile 'binary' lists 3"):
        load_model(_sigmoid_profile(path, ["a", "b", "c"]))
