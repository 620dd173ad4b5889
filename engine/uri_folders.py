"""Folders given as URIs (s3://, gs://, hdfs://, file://) for the Ray batch, through pyarrow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from pyarrow import fs

from engine.dataset import ImageRecord, _ClassMatcher, _ground_truth, natural_key
from engine.errors import InspectorError, first_line
from engine.images import IMAGE_EXTENSIONS, MAX_FILE_BYTES

# Object stores publish an object whole when its upload ends: no temp name is needed there,
# and their "move" is a copy plus a delete.
_OBJECT_STORES = ("s3", "gcs", "abfs")


@cache
def _filesystem(uri: str) -> tuple[fs.FileSystem, str]:
    """One file system object per URI and process (a task reuses it for every image)."""
    try:
        return fs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise InspectorError(f"cannot open '{uri}': {first_line(exc)}") from exc


@dataclass(frozen=True)
class UriFolder:
    """A folder on a pyarrow file system; paths inside it are PurePosixPath-like strings."""

    uri: str

    @property
    def filesystem(self) -> fs.FileSystem:
        return _filesystem(self.uri)[0]

    @property
    def root(self) -> Path:
        """The folder's path inside its file system (a bucket and key prefix for S3)."""
        return Path(_filesystem(self.uri)[1])

    def read_bytes(self, path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's bytes; one over max_bytes is refused before it is read (as locally)."""
        try:
            size = self.filesystem.get_file_info(path.as_posix()).size
            if size is not None and size > max_bytes:
                raise InspectorError(
                    f"cannot read '{self.uri_of(path)}': {size:,} bytes is over the "
                    f"{max_bytes:,}-byte limit for an image file"
                )
            with self.filesystem.open_input_stream(path.as_posix()) as stream:
                return stream.read()
        except OSError as exc:
            raise InspectorError(f"cannot read '{self.uri_of(path)}': {first_line(exc)}") from exc

    def is_file(self, path: Path) -> bool:
        return self.filesystem.get_file_info(path.as_posix()).type == fs.FileType.File

    def upload(self, local: Path, path: Path) -> None:
        """Copy a local file to path, all or nothing (temp name and move, where that is atomic)."""
        filesystem = self.filesystem
        final = path.as_posix()
        direct = filesystem.type_name in _OBJECT_STORES
        temp = final if direct else f"{path.parent.as_posix()}/.{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            filesystem.create_dir(path.parent.as_posix(), recursive=True)
            with local.open("rb") as source, filesystem.open_output_stream(temp) as sink:
                while block := source.read(1 << 20):
                    sink.write(block)
            if not direct:
                filesystem.move(temp, final)
        except OSError as exc:
            raise InspectorError(f"cannot write '{self.uri_of(path)}': {first_line(exc)}") from exc

    def download(self, path: Path, local: Path) -> bool:
        """Copy path to a local file; False when there is no such file."""
        if not self.is_file(path):
            return False
        local.write_bytes(self.read_bytes(path))
        return True

    def uri_of(self, path: Path) -> str:
        """The URI of a path inside this folder's file system, for messages."""
        scheme = self.uri.split("://", 1)[0]
        return f"{scheme}://{path.as_posix().lstrip('/')}" if scheme != "file" else path.as_posix()


def scan_uri_images(folder: UriFolder, class_names: tuple[str, ...]) -> list[ImageRecord]:
    """The images under a URI folder in the local scan's order, with ground truth from names.

    As scan_images: names only (nothing is read), hidden files and folders skipped, natural
    order by folder then name. Annotation XML files are not looked up on URIs.
    """
    root = folder.root
    try:
        infos = folder.filesystem.get_file_info(fs.FileSelector(root.as_posix(), recursive=True))
    except OSError as exc:
        raise InspectorError(f"cannot list '{folder.uri}': {first_line(exc)}") from exc
    classes = _ClassMatcher(class_names)
    keyed = []
    for info in infos:
        rel = PurePosixPath(info.path).relative_to(root.as_posix())
        if info.type != fs.FileType.File or any(p.startswith(".") for p in rel.parts):
            continue
        if rel.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        folders = [*reversed(rel.parent.parts), root.name]
        truth = _ground_truth(rel.stem, folders, classes)
        record = ImageRecord(Path(info.path), Path(rel), truth, None)
        keyed.append((tuple(natural_key(part) for part in rel.parts), record))
    keyed.sort(key=lambda item: item[0])
    return [record for _, record in keyed]
