"""Qt-free Grad-CAM engine: models, images, class activation maps, rendering and export."""

__version__ = "0.1.0"
