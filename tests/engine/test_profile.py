"""Tests for profile parsing, validation, defaults and the TOML writer."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import pytest

from engine.choices import Colormap
from engine.errors import InspectorError
from engine.methods.registry import method_names
from engine.profile import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CamDefaults,
    ModelProfile,
    OutputSpec,
    PreprocessSpec,
    demo_profile_path,
    load_profile,
    parse_profile,
    peek_classes,
    profile_from_checkpoint,
    profile_to_toml,
    save_profile,
)
from engine.resources import resource_path

NEU = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]

DEMO_TOML = """\
name = "NEU demo (ResNet18)"
architecture = "resnet18"
weights = "../demo/demo_resnet18.safetensors"   # relative to the profile file
classes = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
trust_pickle = false   # optional

[preprocess]
size = [224, 224]          # [h, w]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
grayscale = "replicate"

[cam]
layer = "layer4"
method = "gradcam"
colormap = "jet"
alpha = 0.5
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InspectorError) as info:
        load_profile(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_full_profile_parses_every_field(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    path = write(tmp_path / "profiles", DEMO_TOML, "demo.toml")
    profile = load_profile(path)
    assert profile == ModelProfile(
        name="NEU demo (ResNet18)",
        architecture="resnet18",
        weights=(tmp_path / "demo" / "demo_resnet18.safetensors").resolve(),
        classes=tuple(NEU),
        preprocess=PreprocessSpec((224, 224), IMAGENET_MEAN, IMAGENET_STD, "replicate"),
        cam=CamDefaults("layer4", "gradcam", "jet", 0.5),
        trust_pickle=False,
        source=path.resolve(),
    )
    assert profile.weights is not None and profile.weights.is_absolute()


def test_minimal_profile_gets_defaults(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, 'architecture = "resnet18"\n', "mini.toml"))
    assert profile.name == "mini"
    assert profile.weights is None
    assert profile.classes == ()
    assert profile.trust_pickle is False
    assert profile.preprocess == PreprocessSpec(
        (224, 224), IMAGENET_MEAN, IMAGENET_STD, "replicate", size_given=False
    )
    assert profile.cam == CamDefaults(None, "gradcam", "jet", 0.5)


def test_absolute_and_home_weights(tmp_path: Path) -> None:
    weights = tmp_path / "elsewhere" / "w.pth"
    text = f'architecture = "resnet18"\nweights = "{weights.as_posix()}"\n'
    profile = load_profile(write(tmp_path, text))
    assert profile.weights == weights.resolve()
    profile = load_profile(write(tmp_path, 'architecture = "resnet18"\nweights = "~/w.pth"\n'))
    assert profile.weights == (Path.home() / "w.pth").resolve()


def test_other_backends_are_accepted_unvalidated(tmp_path: Path) -> None:
    for arch in ("timm:convnext_tiny.fb_in22k", "onnx"):
        assert load_profile(write(tmp_path, f'architecture = "{arch}"\n')).architecture == arch


def test_int_values_are_accepted_for_floats(tmp_path: Path) -> None:
    profile = load_profile(
        write(
            tmp_path,
            'architecture = "resnet18"\n[preprocess]\nmean = [0, 0, 1]\n[cam]\nalpha = 1\n',
        )
    )
    assert profile.preprocess.mean == (0.0, 0.0, 1.0)
    assert profile.cam.alpha == 1.0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match=r"profile file not found: .*nope\.toml"):
        load_profile(tmp_path / "nope.toml")


def test_folder_is_not_a_profile(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match="not a file"):
        load_profile(tmp_path)


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'architecture = "resnet18"\nname = \nclasses = []\n')
    assert message.startswith("profile 'p.toml' is not valid TOML")
    assert "line 2" in message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(InspectorError, match=r"p\.toml"):
        load_profile(path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('name = "x"\n', "profile 'p.toml': architecture is missing"),
        ('architecture = "resnet19"\n', "'resnet19' is not a torchvision classifier"),
        ('architecture = "resnet19"\n', "did you mean 'resnet18'"),
        ('architecture = "ResNet50"\n', "did you mean 'resnet50'"),
        ('architecture = "fasterrcnn_resnet50_fpn"\n', "is not an image classifier"),
        ("architecture = 18\n", "architecture must be a non-empty string"),
        ('architecture = "resnet18"\nclasses = []\n', "classes is empty"),
        ('architecture = "resnet18"\nclasses = "a,b"\n', "classes must be a list"),
        ('architecture = "resnet18"\nclasses = ["a", 2]\n', "classes must hold non-empty strings"),
        ('architecture = "resnet18"\nclasses = ["a", "b", "a"]\n', "lists 'a' twice"),
        ('architecture = "resnet18"\nweights = ""\n', "weights must be a non-empty string"),
        ('architecture = "resnet18"\ntrust_pickle = "yes"\n', "trust_pickle must be true or false"),
        ('architecture = "resnet18"\nwieghts = "w.pth"\n', "did you mean 'weights'"),
        ('architecture = "resnet18"\n[cam]\ncolourmap = "jet"\n', "'cam.colourmap' is not"),
        ('architecture = "resnet18"\npreprocess = 3\n', "preprocess must be a [preprocess] table"),
    ],
)
def test_top_level_errors(tmp_path: Path, body: str, expected: str) -> None:
    message = error_of(tmp_path, body)
    assert message.startswith("profile 'p.toml': ")
    assert expected in message


@pytest.mark.parametrize(
    ("preprocess", "expected"),
    [
        ("size = [224]", "preprocess.size must be [height, width]"),
        ("size = 224", "preprocess.size must be [height, width]"),
        ("size = [224, 0]", "preprocess.size must hold whole numbers from 1 to 8192, not 0"),
        ("size = [224, 22.5]", "not 22.5"),
        ("size = [224, 100000]", "not 100000"),
        ("mean = [0.5, 0.5]", "preprocess.mean needs 3 values (one per RGB channel), not 2 values"),
        ("std = [0.2, 0.2, 0.2, 0.2]", "preprocess.std needs 3 values"),
        ("std = [0.2, 0.0, 0.2]", "preprocess.std values must be greater than 0"),
        (
            "std = [1e-320, 0.2, 0.2]",
            "preprocess.std value 1e-320 is too small: below 1.2e-38 it makes the model's input "
            "infinite or NaN",
        ),
        ('mean = [0.5, "a", 0.5]', "preprocess.mean must be a number"),
        ('grayscale = "average"', "preprocess.grayscale 'average' is unknown; use replicate"),
    ],
)
def test_preprocess_errors(tmp_path: Path, preprocess: str, expected: str) -> None:
    message = error_of(tmp_path, f'architecture = "resnet18"\n[preprocess]\n{preprocess}\n')
    assert message.startswith("profile 'p.toml': preprocess.")
    assert expected in message


@pytest.mark.parametrize(
    ("cam", "expected"),
    [
        (
            'method = "gradcam2"',
            "cam.method 'gradcam2' is unknown; use " + ", ".join(method_names()),
        ),
        ('colormap = "rainbow"', "cam.colormap 'rainbow' is unknown; use jet, viridis"),
        ("alpha = 1.5", "cam.alpha must be between 0 and 1, not 1.5"),
        ("alpha = -0.1", "cam.alpha must be between 0 and 1, not -0.1"),
        ("alpha = true", "cam.alpha must be a number"),
        ('layer = ""', "cam.layer must be a non-empty string"),
    ],
)
def test_cam_errors(tmp_path: Path, cam: str, expected: str) -> None:
    message = error_of(tmp_path, f'architecture = "resnet18"\n[cam]\n{cam}\n')
    assert message.startswith("profile 'p.toml': ")
    assert expected in message


@pytest.mark.parametrize("method", method_names())
def test_every_method_is_accepted(tmp_path: Path, method: str) -> None:
    profile = load_profile(
        write(tmp_path, f'architecture = "resnet18"\n[cam]\nmethod = "{method}"\n')
    )
    assert profile.cam.method == method


@pytest.mark.parametrize("colormap", list(Colormap))
def test_every_colormap_is_accepted(tmp_path: Path, colormap: str) -> None:
    text = f'architecture = "resnet18"\n[cam]\ncolormap = "{colormap}"\nalpha = 0\n'
    assert load_profile(write(tmp_path, text)).cam.colormap == colormap


def test_parse_profile_without_source_says_profile(tmp_path: Path) -> None:
    with pytest.raises(InspectorError, match=r"^profile: cam.alpha must be between 0 and 1"):
        parse_profile({"architecture": "resnet18", "cam": {"alpha": 2}}, tmp_path, None)


def test_profile_from_checkpoint(tmp_path: Path) -> None:
    profile = profile_from_checkpoint(tmp_path / "run7.pth", "resnet50", NEU, (256, 320))
    assert profile.name == "run7"
    assert profile.architecture == "resnet50"
    assert profile.weights == (tmp_path / "run7.pth").resolve()
    assert profile.classes == tuple(NEU)
    assert profile.preprocess.size == (256, 320)
    assert profile.preprocess.mean == IMAGENET_MEAN
    assert profile.cam == CamDefaults(None, "gradcam", "jet", 0.5)
    assert profile.source is None
    assert profile_from_checkpoint(tmp_path / "w.pth", "resnet18").classes == ()
    with pytest.raises(InspectorError, match="'resnet500' is not a torchvision classifier"):
        profile_from_checkpoint(tmp_path / "w.pth", "resnet500")


def test_save_profile_round_trips(tmp_path: Path) -> None:
    profile = ModelProfile(
        name='Tricky "name" \\ with\ttab, ünïcödé and \x7f',
        architecture="efficientnet_b0",
        weights=(tmp_path / "models" / "best weights.pth").resolve(),
        classes=('quote"d', "back\\slash", "new\nline", "plain"),
        preprocess=PreprocessSpec((200, 300), (0.1, 0.2, 1e-05), (0.3, 1.0, 2.5), "replicate"),
        cam=CamDefaults("features.8.0", "gradcam++", "viridis", 0.35),
        trust_pickle=True,
        source=None,
    )
    target = tmp_path / "saved.toml"
    save_profile(profile, target)
    loaded = load_profile(target)
    assert loaded == dataclasses.replace(profile, source=target.resolve())
    # Weights beside the profile are written relative so the pair can move together.
    assert tomllib.loads(target.read_text(encoding="utf-8"))["weights"] == "models/best weights.pth"
    assert not (tmp_path / "saved.toml.tmp").exists()


def test_save_profile_minimal_and_outside_weights(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    outside = (tmp_path / "weights" / "w.safetensors").resolve()
    profile = profile_from_checkpoint(outside, "resnet18")
    target = tmp_path / "profiles" / "new.toml"
    save_profile(profile, target)
    data = tomllib.loads(target.read_text(encoding="utf-8"))
    assert data["weights"] == str(outside)
    assert "classes" not in data
    assert "layer" not in data["cam"]
    assert load_profile(target) == dataclasses.replace(profile, source=target.resolve())


def test_save_then_load_the_demo_text(tmp_path: Path) -> None:
    first = load_profile(write(tmp_path, DEMO_TOML, "demo.toml"))
    save_profile(first, tmp_path / "copy.toml")
    again = load_profile(tmp_path / "copy.toml")
    assert dataclasses.replace(again, source=None) == dataclasses.replace(first, source=None)


def test_save_into_missing_folder_is_an_inspector_error(tmp_path: Path) -> None:
    profile = profile_from_checkpoint(tmp_path / "w.pth", "resnet18")
    with pytest.raises(InspectorError, match="cannot write profile"):
        save_profile(profile, tmp_path / "no" / "such" / "p.toml")


def test_demo_profile_path_points_into_resources() -> None:
    assert demo_profile_path() == resource_path("profiles", "demo.toml")


@pytest.mark.parametrize(
    ("file", "architecture", "classes", "colormap", "mean"),
    [
        (
            "cifar10_resnet18.toml",
            "resnet18",
            (
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),
            "jet",
            (0.4914, 0.4822, 0.4465),
        ),
        ("neu_resnet50.toml", "resnet50", tuple(NEU), "viridis", IMAGENET_MEAN),
    ],
)
def test_example_profiles(
    tmp_path: Path,
    file: str,
    architecture: str,
    classes: tuple[str, ...],
    colormap: str,
    mean: tuple[float, ...],
) -> None:
    copy = tmp_path / file
    shutil.copy(resource_path("profiles", file), copy)
    profile = load_profile(copy)
    assert profile.architecture == architecture
    assert profile.classes == classes
    assert profile.cam.colormap == colormap
    assert profile.preprocess.mean == mean
    assert profile.preprocess.size == (224, 224)
    assert profile.weights == (tmp_path / file.replace(".toml", ".pth")).resolve()


def test_new_fields_default_so_old_profiles_load_unchanged(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, DEMO_TOML))
    assert profile.preprocess.layout == "nchw"
    assert (profile.cam.normalize, profile.cam.blend, profile.cam.reshape) == (
        "minmax",
        "weighted",
        "auto",
    )
    assert profile.output == OutputSpec("auto", "softmax")


def test_new_fields_parse(tmp_path: Path) -> None:
    text = (
        'architecture = "resnet18"\n[preprocess]\nlayout = "nhwc"\n'
        '[cam]\nnormalize = "max"\nblend = "additive"\nreshape = "tokens"\n'
        '[output]\nlogits = "logits"\nactivation = "sigmoid"\n'
    )
    profile = load_profile(write(tmp_path, text))
    assert profile.preprocess.layout == "nhwc"
    assert profile.cam == CamDefaults(None, "gradcam", "jet", 0.5, "max", "additive", "tokens")
    assert profile.output == OutputSpec("logits", "sigmoid")


@pytest.mark.parametrize(
    ("logits", "expected"),
    [("1", 1), ('"1"', 1), ('" 2 "', 2), ('"auto"', "auto"), ('"out"', "out"), ("0", 0)],
)
def test_output_logits_index_or_key(tmp_path: Path, logits: str, expected: object) -> None:
    text = f'architecture = "resnet18"\n[output]\nlogits = {logits}\n'
    assert load_profile(write(tmp_path, text)).output.logits == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[preprocess]\nlayout = "chw"', "preprocess.layout 'chw' is unknown; use nchw, nhwc"),
        ('[cam]\nnormalize = "l2"', "cam.normalize 'l2' is unknown; use minmax, max"),
        ('[cam]\nblend = "screen"', "cam.blend 'screen' is unknown; use weighted, additive"),
        ('[cam]\nreshape = "grid"', "cam.reshape 'grid' is unknown; use auto, none, tokens, nhwc"),
        ('[output]\nactivation = "relu"', "output.activation 'relu' is unknown; use softmax"),
        ("[output]\nlogits = -1", "output.logits index must be 0 or more, not -1"),
        ("[output]\nlogits = true", 'output.logits must be "auto", an index or a key name'),
        ("[output]\nlogits = 1.5", "output.logits must be"),
        ('[output]\nlogits = ""', "output.logits must be"),
        ('[output]\nlogit = "auto"', "'output.logit' is not a profile field (did you mean"),
        ("output = 3", "output must be a [output] table"),
    ],
)
def test_new_field_errors(tmp_path: Path, body: str, expected: str) -> None:
    message = error_of(tmp_path, f'architecture = "resnet18"\n{body}\n')
    assert message.startswith("profile 'p.toml': ")
    assert expected in message


@pytest.mark.parametrize("logits", [0, 3, "auto", "logits", "out put"])
def test_save_profile_round_trips_new_fields(tmp_path: Path, logits: int | str) -> None:
    profile = ModelProfile(
        name="keras",
        architecture="resnet18",
        weights=None,
        classes=("ok", "defect"),
        preprocess=PreprocessSpec((64, 96), IMAGENET_MEAN, IMAGENET_STD, "replicate", "nhwc"),
        cam=CamDefaults(None, "gradcam", "jet", 0.4, "max", "additive", "nhwc"),
        trust_pickle=False,
        source=None,
        output=OutputSpec(logits, "sigmoid"),
    )
    target = tmp_path / "saved.toml"
    save_profile(profile, target)
    assert load_profile(target) == dataclasses.replace(profile, source=target.resolve())


def test_peek_classes_reads_names_without_validating(tmp_path: Path) -> None:
    """The window's first look at ground truth, while the model loads: no torchvision check."""
    profile = tmp_path / "p.toml"
    profile.write_text('architecture = "no_such_net"\nclasses = ["cat", 3, "dog"]\n')
    assert peek_classes(profile) == ("cat", "dog")  # a non-string entry is skipped
    assert peek_classes(tmp_path / "missing.toml") == ()
    profile.write_text("classes = [")
    assert peek_classes(profile) == ()
    assert peek_classes(demo_profile_path()) == load_profile(demo_profile_path()).classes


def test_new_keys_round_trip(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text("def build(num_classes):\n    pass\n", encoding="utf-8")
    data = {
        "architecture": "python:net.py:build",
        "classes": ["a", "b"],
        "code": "net.py",
        "trust_code": True,
        "preprocess": {"size": [48, 192], "resize": "shortest", "crop": 0.875},
    }
    profile = parse_profile(data, tmp_path, None)
    assert profile.architecture == f"python:{tmp_path / 'net.py'}:build"
    assert profile.code == tmp_path / "net.py" and profile.trust_code
    assert (profile.preprocess.resize, profile.preprocess.crop) == ("shortest", 0.875)
    text = profile_to_toml(profile, tmp_path)
    assert 'architecture = "python:net.py:build"' in text and 'code = "net.py"' in text
    save_profile(profile, tmp_path / "p.toml")
    again = load_profile(tmp_path / "p.toml")
    assert dataclasses.replace(again, source=None, name=profile.name) == profile


def test_code_must_name_an_existing_python_file(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'architecture = "resnet18"\ncode = "missing.py"\n')
    assert message == "profile 'p.toml': code must name an existing .py file, not 'missing.py'"
