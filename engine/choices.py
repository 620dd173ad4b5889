"""The fixed choices (colormaps, blends, layouts...) as StrEnums, validated in this one place.

Each member is a ``str``, so profiles, settings and CSV cells keep plain text; ``parse`` is the
only check, and its message lists the choices. Torch-free and Qt-free: the window imports it.
"""

from __future__ import annotations

from enum import StrEnum, nonmember
from typing import Self

from engine.errors import InspectorError


class Choice(StrEnum):
    """Base of the fixed choices; ``what`` names the kind in messages."""

    what = nonmember("choice")

    def __repr__(self) -> str:
        # argparse lists the choices with repr(): 'jet', not <Colormap.JET: 'jet'>.
        return repr(self.value)

    @classmethod
    def parse(cls, value: object, field: str | None = None) -> Self:
        """The member for ``value``; an InspectorError listing the choices otherwise.

        ``field`` names where the value came from (e.g. "profile 'x.toml': cam.blend"); without
        it the message says "unknown <what> '<value>'".
        """
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(cls)
        if field is not None:
            raise InspectorError(f"{field} {value!r} is unknown; use {names}")
        raise InspectorError(f"unknown {cls.what} '{value}': use {names}")


class Colormap(Choice):
    """Heatmap colour maps, in menu order (all are OpenCV colormaps but gray)."""

    what = nonmember("colormap")
    JET = "jet"
    VIRIDIS = "viridis"
    TURBO = "turbo"
    INFERNO = "inferno"
    MAGMA = "magma"
    PLASMA = "plasma"
    CIVIDIS = "cividis"
    PARULA = "parula"
    HOT = "hot"
    BONE = "bone"
    GRAY = "gray"


class Blend(Choice):
    """How the heatmap meets the image: weighted mean, or added on top (the Keras example)."""

    what = nonmember("blend")
    WEIGHTED = "weighted"
    ADDITIVE = "additive"


class Normalize(Choice):
    """How a raw map becomes [0, 1]: min-max, or ReLU then divide by the maximum (Keras)."""

    what = nonmember("normalisation")
    MINMAX = "minmax"
    MAX = "max"


class Layout(Choice):
    """The model input's axis order: channels first, or channels last (Keras/TF exports)."""

    what = nonmember("input layout")
    NCHW = "nchw"
    NHWC = "nhwc"


class Reshape(Choice):
    """How a layer's output becomes (C, h, w) maps (see engine/tokens.py)."""

    what = nonmember("reshape")
    AUTO = "auto"
    NONE = "none"
    TOKENS = "tokens"
    NHWC = "nhwc"


class Activation(Choice):
    """How logits become probabilities (see engine/heads.py)."""

    what = nonmember("output activation")
    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


class Grayscale(Choice):
    """What a gray image becomes for a three-channel model."""

    what = nonmember("grayscale mode")
    REPLICATE = "replicate"


class Resize(Choice):
    """How an image is brought to the input size before any centre crop."""

    what = nonmember("resize")
    STRETCH = "stretch"  # to the input size (divided by crop), aspect ratio not kept
    SHORTEST = "shortest"  # shortest edge to the size (divided by crop), aspect ratio kept


class Compare(Choice):
    """What a comparison grid lays side by side for one image."""

    what = nonmember("comparison")
    METHODS = "methods"  # every method drawn from one capture (no model pass per method)
    LAYERS = "layers"  # one method at several layers, from one pass


class TrustTool(Choice):
    """The window's Tools for one image: is its map to be trusted?"""

    what = nonmember("trust tool")
    SANITY = "sanity"  # cascading randomisation of the weights
    METHODS = "methods"  # every method drawn from one capture
    ALL_METHODS = "all_methods"  # the same, plus the methods that run the model again
    LAYERS = "layers"  # the method at several layers
    METRICS = "metrics"  # the faithfulness metrics
