"""Finding image files in a folder and their ground truth: class from names, boxes from VOC XML."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import InspectorError
from engine.images import IMAGE_EXTENSIONS
from engine.localization import Box

NEU_CLASSES: tuple[str, ...] = (
    "crazing",
    "inclusion",
    "patches",
    "pitted_surface",
    "rolled-in_scale",
    "scratches",
)

# NEU-CLS file-name prefixes (Cr_12.bmp) and the NEU class each one stands for.
_NEU_CLS_PREFIXES: dict[str, str] = {
    "cr": "crazing",
    "in": "inclusion",
    "pa": "patches",
    "ps": "pitted_surface",
    "rs": "rolled-in_scale",
    "sc": "scratches",
}
_NEU_CLS_NAME = re.compile(r"([a-z]{2})_[0-9]", re.IGNORECASE)
_TRAILING_NUMBER = re.compile(r"[\W_]*[0-9]+$")
_DIGITS = re.compile(r"([0-9]+)")
_NON_ALNUM = re.compile(r"[\W_]+")
_ANNOTATION_FOLDER = "annotations"

# (alternating text and number pieces, casefolded text as a tie-break for "2" vs "02")
NaturalKey = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class ImageRecord:
    """One image found by a scan; rel_path is relative to the scanned folder."""

    path: Path
    rel_path: Path
    ground_truth: str | None
    annotation: Path | None


@dataclass(frozen=True)
class VocAnnotation:
    """The parts of a Pascal VOC annotation we use; boxes are 0-based, x1/y1 exclusive."""

    width: int | None
    height: int | None
    boxes: tuple[Box, ...]


def natural_key(text: str) -> NaturalKey:
    """Sort key that orders digits by value and ignores case: crazing_2 < crazing_10."""
    folded = text.casefold()
    # re.split with a group alternates text and digits, so ints and strs never meet.
    parts = tuple(int(p) if i % 2 else p for i, p in enumerate(_DIGITS.split(folded)))
    return parts, folded


def scan_images(
    input_path: Path | str, class_names: Sequence[str] = NEU_CLASSES
) -> list[ImageRecord]:
    """List the images of a file or folder (recursive) with their ground truth, naturally sorted.

    Only names are looked at: no image is decoded and no XML parsed, so large folders
    list quickly. Hidden files and folders are skipped.
    """
    path = Path(input_path)
    if not path.exists():
        raise InspectorError(f"folder '{path}' does not exist: choose another folder")
    classes = _ClassMatcher(class_names)
    if path.is_file():
        return [_single_file_record(path.absolute(), classes)]
    if not path.is_dir():
        raise InspectorError(f"'{path}' is neither a file nor a folder: choose another folder")
    root = path.absolute()
    annotations = _AnnotationIndex(root)
    keyed: list[tuple[tuple[NaturalKey, ...], ImageRecord]] = []
    for rel_dir, names in _walk_images(root, annotations).items():
        dir_key = tuple(natural_key(part) for part in rel_dir.parts)
        for record in _folder_records(root, rel_dir, names, classes, annotations):
            keyed.append(((*dir_key, natural_key(record.rel_path.name)), record))
    keyed.sort(key=lambda item: item[0])
    return [record for _, record in keyed]


def read_voc(path: Path) -> VocAnnotation:
    """Parse a Pascal VOC XML file, converting its 1-based inclusive boxes to Box pixels."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise InspectorError(f"cannot read annotation '{path}': malformed XML ({err})") from err
    except OSError as err:
        reason = err.strerror or str(err)
        raise InspectorError(f"cannot read annotation '{path}': {reason}") from err
    size = root.find("size")
    width = _optional_size(size, "width", path)
    height = _optional_size(size, "height", path)
    boxes = tuple(_voc_box(obj, path) for obj in root.iter("object"))
    return VocAnnotation(width, height, boxes)


def load_boxes(record: ImageRecord, image_shape: Sequence[int] | None = None) -> tuple[Box, ...]:
    """The annotated boxes of an image; empty when it has no annotation file.

    ``image_shape``: the decoded image's shape. When it is the annotated size decoded at 1/2,
    1/4 or 1/8 (a JPEG over the pixel limit), the boxes are scaled down with it.
    """
    if record.annotation is None:
        return ()
    voc = read_voc(record.annotation)
    if image_shape is None or voc.width is None or voc.height is None:
        return voc.boxes
    height, width = image_shape[:2]
    for factor in (2, 4, 8):
        if (width, height) == (-(-voc.width // factor), -(-voc.height // factor)):
            return tuple(_reduced(box, factor) for box in voc.boxes)
    return voc.boxes


def _reduced(box: Box, factor: int) -> Box:
    return replace(
        box,
        x0=box.x0 // factor,
        y0=box.y0 // factor,
        x1=-(-box.x1 // factor),
        y1=-(-box.y1 // factor),
    )


def _normalise(text: str) -> str:
    return _NON_ALNUM.sub("", text.casefold())


class _ClassMatcher:
    """Maps file and folder names to entries of a class list."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self._exact = {_normalise(name): name for name in class_names}
        self._folder = dict(self._exact)
        for alias, name in _first_word_aliases(class_names).items():
            self._folder.setdefault(alias, name)
        present = set(class_names)
        self._neu_prefixes = {k: v for k, v in _NEU_CLS_PREFIXES.items() if v in present}

    def by_file_name(self, stem: str) -> str | None:
        """Rule 1 (NEU-CLS prefix such as Cr_12), then rule 2 (class name then a number)."""
        match = _NEU_CLS_NAME.match(stem)
        if match and match.group(1).lower() in self._neu_prefixes:
            return self._neu_prefixes[match.group(1).lower()]
        return self._exact.get(_normalise(_TRAILING_NUMBER.sub("", stem)))

    def by_folder(self, folder_name: str) -> str | None:
        """Rule 3: a folder named like a class or like the first word of one (Pitted)."""
        return self._folder.get(_normalise(folder_name))


def _first_word_aliases(class_names: Sequence[str]) -> dict[str, str]:
    """First word of each class (rolled-in_scale -> rolled), dropping ambiguous ones."""
    aliases: dict[str, str | None] = {}
    for name in class_names:
        word = _normalise(re.split(r"[_\-]", name, maxsplit=1)[0])
        if word:
            aliases[word] = name if aliases.get(word, name) == name else None
    return {word: name for word, name in aliases.items() if name is not None}


class _AnnotationIndex:
    """Per-scan cache: which folders hold an annotations folder, and its XML files by stem."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._subfolder: dict[Path, Path | None] = {}
        self._stems: dict[Path, dict[str, Path]] = {}
        self._chains: dict[Path, list[dict[str, Path]]] = {}

    def note_folder(self, folder: Path, subfolders: Sequence[str]) -> None:
        """Record the annotations subfolder of a folder the walk has already listed."""
        found = next((n for n in subfolders if n.casefold() == _ANNOTATION_FOLDER), None)
        self._subfolder[folder] = folder / found if found else None

    def find(self, folder: Path, stem: str) -> Path | None:
        """The XML named like the image stem in the nearest annotations folder, if any.

        Looks from the image's folder up to the scan root, then beside the scan root so
        scanning NEU-DET's IMAGES folder still finds its sibling ANNOTATIONS folder.
        """
        key = stem.casefold()
        return next((m[key] for m in self._stem_maps(folder) if key in m), None)

    def _stem_maps(self, folder: Path) -> list[dict[str, Path]]:
        """Stem maps of the annotations folders that apply to a folder, nearest first."""
        # Computed once per image folder: thousands of images share a handful of folders.
        if folder not in self._chains:
            dirs = (self._annotation_dir(f) for f in self._candidate_folders(folder))
            self._chains[folder] = [self._xml_by_stem(d) for d in dirs if d is not None]
        return self._chains[folder]

    def _candidate_folders(self, folder: Path) -> list[Path]:
        folders = [folder]
        while folders[-1] != self._root and folders[-1].parent != folders[-1]:
            folders.append(folders[-1].parent)
        if self._root.parent != self._root:
            folders.append(self._root.parent)
        return folders

    def _annotation_dir(self, folder: Path) -> Path | None:
        if folder not in self._subfolder:
            self.note_folder(folder, [e.name for e in _list_dir(folder) if _is_dir(e)])
        return self._subfolder[folder]

    def _xml_by_stem(self, annotation_dir: Path) -> dict[str, Path]:
        if annotation_dir not in self._stems:
            self._stems[annotation_dir] = {
                entry.name[:-4].casefold(): annotation_dir / entry.name
                for entry in _list_dir(annotation_dir)
                if entry.name.lower().endswith(".xml") and not entry.name.startswith(".")
            }
        return self._stems[annotation_dir]


def _walk_images(root: Path, annotations: _AnnotationIndex) -> dict[Path, list[str]]:
    """Names of the non-hidden image files under root, by folder relative to root."""
    found: dict[Path, list[str]] = {}
    seen: set[tuple[int, int]] = set()
    pending = [Path()]
    while pending:
        rel_dir = pending.pop()
        folder = root / rel_dir
        if not _first_visit(folder, seen):
            continue  # a symlink loop or a folder linked twice
        entries = _list_dir(folder, must_work=rel_dir == Path())
        subfolders = [e.name for e in entries if not e.name.startswith(".") and _is_dir(e)]
        annotations.note_folder(folder, subfolders)
        pending.extend(rel_dir / name for name in subfolders)
        names = [e.name for e in entries if _is_image_entry(e)]
        if names:
            found[rel_dir] = names
    return found


def _first_visit(folder: Path, seen: set[tuple[int, int]]) -> bool:
    try:
        info = folder.stat()
    except OSError:
        return False
    key = (info.st_dev, info.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _list_dir(folder: Path, must_work: bool = False) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as err:
        if must_work:
            reason = err.strerror or str(err)
            raise InspectorError(f"cannot open folder '{folder}': {reason}") from err
        return []  # an unreadable subfolder should not stop the rest of the scan


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_image_entry(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
        return False
    try:
        return entry.is_file()
    except OSError:
        return False


def _folder_records(
    root: Path,
    rel_dir: Path,
    names: Sequence[str],
    classes: _ClassMatcher,
    annotations: _AnnotationIndex,
) -> list[ImageRecord]:
    """Records for the images of one folder; folder-level work is done once, not per file."""
    folder = root / rel_dir
    # The root's own name counts as a folder too, so scanning "Crazing/" still labels it.
    folders = [*reversed(rel_dir.parts), root.name]
    records = []
    for name in names:
        stem = os.path.splitext(name)[0]
        records.append(
            ImageRecord(
                path=folder / name,
                rel_path=rel_dir / name,
                ground_truth=_ground_truth(stem, folders, classes),
                annotation=annotations.find(folder, stem),
            )
        )
    return records


def _single_file_record(path: Path, classes: _ClassMatcher) -> ImageRecord:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        kinds = " ".join(sorted(IMAGE_EXTENSIONS))
        raise InspectorError(f"'{path.name}' is not an image file: choose one of {kinds}")
    root = path.parent
    [record] = _folder_records(root, Path(), [path.name], classes, _AnnotationIndex(root))
    return record


def _ground_truth(stem: str, folders: Sequence[str], classes: _ClassMatcher) -> str | None:
    """File-name rules first, then the nearest folder named like a class."""
    from_name = classes.by_file_name(stem)
    if from_name is not None:
        return from_name
    return next((c for c in map(classes.by_folder, folders) if c is not None), None)


def _optional_size(size: ET.Element | None, tag: str, path: Path) -> int | None:
    text = size.findtext(tag) if size is not None else None
    if text is None or not text.strip():
        return None
    value = _voc_number(text, tag, path)
    return value if value > 0 else None


def _voc_box(obj: ET.Element, path: Path) -> Box:
    label = (obj.findtext("name") or "").strip()
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise InspectorError(f"cannot read annotation '{path}': object '{label}' has no <bndbox>")
    xmin, ymin, xmax, ymax = (
        _voc_number(bndbox.findtext(tag), tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")
    )
    # VOC pixels are 1-based and inclusive: pixel xmin..xmax is 0-based xmin-1 .. xmax-1.
    x0, x1 = sorted((xmin, xmax))
    y0, y1 = sorted((ymin, ymax))
    difficult = (obj.findtext("difficult") or "0").strip() not in ("", "0")
    return Box(max(0, x0 - 1), max(0, y0 - 1), x1, y1, label, difficult)


def _voc_number(text: str | None, tag: str, path: Path) -> int:
    try:
        return round(float((text or "").strip()))
    except (ValueError, OverflowError) as err:  # text, nan or inf
        raise InspectorError(
            f"cannot read annotation '{path}': <{tag}> is {text!r}, not a number"
        ) from err
