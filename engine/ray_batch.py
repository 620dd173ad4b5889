"""The batch export on a Ray cluster: the local batch's per-image steps as a Ray Data pipeline."""

from __future__ import annotations

import json
import logging
import math
import pickle
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import ray
import ray.data
from ray.data import ActorPoolStrategy

import engine
from engine.batch import (
    BatchProgress,
    BatchRunner,
    BatchWriter,
    _load,
    _Loaded,
    completed_rows,
)
from engine.batch_options import BatchOptions, BatchSummary
from engine.batch_outputs import output_stems
from engine.dataset import ImageRecord
from engine.errors import InspectorError, first_line
from engine.export import CsvAppender
from engine.file_lock import lock_output_folder
from engine.images import DecodeLimits, decode_image
from engine.profile import ModelProfile
from engine.uri_folders import UriFolder

# Decode and write tasks take half a logical CPU so they still fit beside actors that hold the
# rest; the OS shares the real cores (the local batch's helper thread does the same).
_TASK_CPUS = 0.5
# A block per chunk lets small runs spread at once; past this many, blocks hold several chunks
# so a million-image listing does not become a million tiny objects.
_MAX_BLOCKS = 4096


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray batch runs."""

    actors: int | None = None  # model actors; None: one per GPU, else one per node
    resume: bool = False  # skip images whose row is ok and whose files exist
    source: UriFolder | None = None  # the input when it is a URI (records' paths are inside it)
    target: UriFolder | None = None  # the output when it is a URI (options.output is inside it)


@dataclass(frozen=True)
class ModelShipment:
    """What an actor needs to build its engine, sent through the object store (no shared disk)."""

    profile: ModelProfile
    weights: bytes | None  # the profile's weights file, read once on the driver
    device: str
    trust_pickle: bool
    threads: int | None  # torch threads per actor on CPU; None: torch's default


@dataclass(frozen=True)
class _Layout:
    """The actor pool: how many, what each holds, what each asks of the scheduler."""

    actors: int
    num_gpus: float
    num_cpus: float
    threads: int | None


def ship_model(profile: ModelProfile, device: str, trust_pickle: bool) -> ModelShipment:
    """Read the weights on the driver so workers need no access to the driver's disk."""
    weights = None
    if profile.weights is not None:
        try:
            weights = profile.weights.read_bytes()
        except OSError as exc:
            raise InspectorError(
                f"cannot read weights '{profile.weights}': {exc.strerror or exc}"
            ) from exc
    return ModelShipment(profile, weights, device, trust_pickle, None)


def _cluster_layout(requested: int | None, device: str) -> _Layout:
    """One actor per GPU; on CPUs one per node, its torch threads filling the node's cores."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return _Layout(requested or gpus, 1.0, 1.0, None)
    nodes = max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
    node_cpus = max(1.0, resources.get("CPU", 1.0) / nodes)
    actors = requested or nodes
    per_node = math.ceil(actors / nodes)
    # Each actor asks for its share of a node less room for the decode and write tasks: so Ray
    # places them node by node, and the tasks can always be scheduled beside them.
    reserve = max(0.1, (node_cpus - 2 * _TASK_CPUS) / per_node)
    return _Layout(actors, 0.0, reserve, max(1, int(node_cpus // per_node)))


def _chunk_rows(
    todo: Sequence[int], records: Sequence[ImageRecord], stems: Sequence[Path], size: int
) -> list[dict[str, bytes]]:
    """The listing, one row per chunk of the local batch (names only, nothing decoded): the
    model sees the same batches as in a local run, so the maps are the same to the last bit."""
    rows = []
    for first in range(0, len(todo), size):
        indices = list(todo[first : first + size])
        chunk = [(i, records[i], str(stems[i])) for i in indices]
        rows.append({"chunk": pickle.dumps(chunk)})
    return rows


def _load_from(source: UriFolder, limits: DecodeLimits, record: ImageRecord) -> _Loaded:
    """The local loader's result for an image on a URI folder (no annotations there)."""
    try:
        data = source.read_bytes(record.path, limits.max_file_bytes)
        image = decode_image(data, source.uri_of(record.path), limits.max_pixels)
    except InspectorError as exc:
        return _Loaded(record, None, (), str(exc))
    return _Loaded(record, image, (), "")


def decode_batch(
    batch: dict[str, np.ndarray], source: UriFolder | None, limits: DecodeLimits
) -> dict[str, np.ndarray]:
    """Read and decode images (a task): the local batch's own loader, errors kept per image."""
    decoded = []
    load = partial(_load, limits=limits) if source is None else partial(_load_from, source, limits)
    for raw in batch["chunk"]:
        chunk = pickle.loads(raw)
        decoded.append(pickle.dumps([(i, load(record), stem) for i, record, stem in chunk]))
    return {"chunk": np.array(decoded, dtype=object)}


class ExplainActor:
    """Holds one CamEngine; explains each chunk as the local batch does."""

    def __init__(self, shipment_ref: ray.ObjectRef, options: BatchOptions) -> None:
        from engine.cam import CamEngine

        shipment: ModelShipment = ray.get(shipment_ref)
        if shipment.threads is not None:
            import torch

            torch.set_num_threads(shipment.threads)
        with tempfile.TemporaryDirectory(prefix="gradcam-weights-") as folder:
            profile = shipment.profile
            if shipment.weights is not None and profile.weights is not None:
                local = Path(folder) / profile.weights.name  # the suffix picks the loader
                local.write_bytes(shipment.weights)
                profile = replace(profile, weights=local)
            engine = CamEngine.from_profile(profile, shipment.device, shipment.trust_pickle)
        self.runner = BatchRunner(engine, options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        explained = []
        for raw in batch["chunk"]:
            indices, loaded, stems = zip(*pickle.loads(raw), strict=True)
            outcomes = self.runner._explain_chunk(loaded, None)
            explained.append(pickle.dumps(list(zip(indices, outcomes, stems, strict=True))))
        return {"chunk": np.array(explained, dtype=object)}


def _write_to(
    target: UriFolder, writer: BatchWriter, outcomes: Sequence, stems: Sequence[Path], rows: list
) -> None:
    """The local writer into a scratch folder, each file then uploaded beside its stem."""
    base = writer.options.output
    with tempfile.TemporaryDirectory(prefix="gradcam-out-") as scratch:
        local = [Path(scratch) / stem.relative_to(base) for stem in stems]
        writer._write_chunk(outcomes, local, rows)  # a list can append()
        for path in sorted(Path(scratch).rglob("*")):
            if path.is_file():
                target.upload(path, base / path.relative_to(scratch))


def write_batch(
    batch: dict[str, np.ndarray], writer: BatchWriter, target: UriFolder | None
) -> dict[str, np.ndarray]:
    """Render and write each image's files (a task); one results row (JSON) per image."""
    indices: list[int] = []
    rows: list[dict[str, str]] = []
    notes: list[str] = []
    for raw in batch["chunk"]:
        chunk_indices, outcomes, stems = zip(*pickle.loads(raw), strict=True)
        paths = [Path(s) for s in stems]
        if target is None:
            writer._write_chunk(outcomes, paths, rows)  # a list can append()
        else:
            _write_to(target, writer, outcomes, paths, rows)
        indices += chunk_indices
        notes += [result.output_note if result else "" for _, result, *_ in outcomes]
    return {
        "index": np.array(indices, dtype=np.int64),
        "row": np.array([json.dumps(row) for row in rows], dtype=object),
        "note": np.array(notes, dtype=object),
    }


class _OrderedRows:
    """Writes rows to results.csv in the local batch's order as they arrive in any order;
    a row that comes twice (a retried task) is written once."""

    def __init__(self, csv_out: CsvAppender, kept: dict[int, dict[str, str]], total: int) -> None:
        self.csv = csv_out
        self.pending: dict[int, dict[str, str]] = dict(kept)
        self.seen: set[int] = set(kept)
        self.next = 0
        self.total = total
        self.failed = 0

    def add(self, index: int, row: dict[str, str]) -> None:
        if index in self.seen:
            return
        self.seen.add(index)
        self.failed += row["status"] != "ok"
        self.pending[index] = row
        self.flush()

    def flush(self) -> None:
        while self.next in self.pending:
            self.csv.append(self.pending.pop(self.next))
            self.next += 1

    def missing(self) -> list[int]:
        return [i for i in range(self.total) if i not in self.seen]


def _dataset(
    todo: Sequence[int],
    records: Sequence[ImageRecord],
    stems: Sequence[Path],
    options: BatchOptions,
    layer: str,
    shipment_ref: ray.ObjectRef,
    layout: _Layout,
    ray_options: RayOptions,
) -> ray.data.Dataset:
    """List -> decode (tasks) -> explain (actor pool) -> render and write (tasks), streamed;
    one dataset row is one chunk of options.batch_size images."""
    chunks = _chunk_rows(todo, records, stems, max(1, options.batch_size))
    return (
        ray.data.from_items(chunks, override_num_blocks=min(len(chunks), _MAX_BLOCKS))
        .map_batches(
            decode_batch,
            batch_size=1,
            fn_kwargs={"source": ray_options.source, "limits": DecodeLimits(options.max_pixels)},
            num_cpus=_TASK_CPUS,
        )
        .map_batches(
            ExplainActor,
            batch_size=1,
            compute=ActorPoolStrategy(size=layout.actors),
            fn_constructor_args=(shipment_ref, options),
            num_gpus=layout.num_gpus or None,
            num_cpus=layout.num_cpus,
        )
        .map_batches(
            write_batch,
            batch_size=1,
            fn_kwargs={"writer": BatchWriter(options, layer), "target": ray_options.target},
            num_cpus=_TASK_CPUS,
        )
    )


@contextmanager
def ray_session(address: str) -> Iterator[str]:
    """Start a local Ray ('local') or join a cluster ('auto', 'ray://host:10001') for the block;
    yields the dashboard URL or ''. A Ray already started in this process is used as it is."""
    if ray.is_initialized():
        yield ""
        return
    try:
        context = ray.init(
            address=address,
            logging_level="WARNING",
            # The project's code travels with the job: workers need no checkout of it.
            runtime_env={"py_modules": [engine]},
            # Workers' logs go to Ray's session folder; the terminal keeps our progress line.
            log_to_driver=False,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InspectorError(f"cannot start or join Ray at '{address}': {first_line(exc)}") from exc
    try:
        url = context.dashboard_url or ""
        yield url if not url or url.startswith("http") else f"http://{url}"
    finally:
        ray.shutdown()


class RayBatch:
    """Runs one batch export on Ray with the local batch's files, rows and order."""

    def __init__(
        self,
        shipment: ModelShipment,
        options: BatchOptions,
        layer: str,
        ray_options: RayOptions = RayOptions(),
    ) -> None:
        self.shipment = shipment
        self.options = options
        self.layer = layer
        self.ray_options = ray_options
        self.output_note = ""
        self.skipped = 0

    def run(
        self, records: Sequence[ImageRecord], progress: BatchProgress | None = None
    ) -> BatchSummary:
        """Process every record on the cluster Ray is connected to (ray.init first)."""
        start = time.perf_counter()
        stems = output_stems(records, self.options.output)
        with self._output_lock(), self._results_folder() as folder:
            csv_path = folder / "results.csv"
            kept = {}
            if self.ray_options.resume:
                target = self.ray_options.target
                exists = Path.is_file if target is None else target.is_file
                kept = completed_rows(csv_path, records, stems, self.options, self.layer, exists)
            self.skipped = len(kept)
            todo = [i for i in range(len(records)) if i not in kept]
            # An interrupt or error leaves the rows finished so far (see CsvAppender).
            with CsvAppender(csv_path, BatchWriter(self.options, self.layer).columns) as csv_out:
                ordered = _OrderedRows(csv_out, kept, len(records))
                ordered.flush()
                if todo:
                    self._stream(todo, records, stems, ordered, progress)
                if ordered.missing():
                    raise InspectorError(
                        f"the Ray run lost {len(ordered.missing())} images; run again with --resume"
                    )
        return BatchSummary(
            len(records),
            len(records) - ordered.failed,
            ordered.failed,
            False,
            self.options.output / "results.csv",
            time.perf_counter() - start,
        )

    @contextmanager
    def _output_lock(self) -> Iterator[None]:
        """A local output folder is locked for the run, as for the local batch (a second run
        into it is refused); a URI output has no lock to take."""
        if self.ray_options.target is not None:
            yield
            return
        self.options.output.mkdir(parents=True, exist_ok=True)
        lock = lock_output_folder(self.options.output)
        try:
            yield
        finally:
            lock.close()

    @contextmanager
    def _results_folder(self) -> Iterator[Path]:
        """Where results.csv is written: the output folder, or for a URI output a scratch
        folder holding a copy of the earlier file, uploaded back however the run ends."""
        target = self.ray_options.target
        if target is None:
            self.options.output.mkdir(parents=True, exist_ok=True)
            yield self.options.output
            return
        root = self.options.output
        with tempfile.TemporaryDirectory(prefix="gradcam-results-") as scratch:
            folder = Path(scratch)
            target.download(root / "results.csv", folder / "results.csv")
            try:
                yield folder
            finally:
                for name in ("results.csv.partial", "results.csv"):
                    if (folder / name).is_file():
                        target.upload(folder / name, root / name)

    def cluster_text(self) -> str:
        """What the run will use, for the first line the command prints."""
        layout = _cluster_layout(self.ray_options.actors, self.shipment.device)
        resources = ray.cluster_resources()
        gpus = f", {int(resources['GPU'])} GPUs" if resources.get("GPU") else ""
        return f"{int(resources.get('CPU', 0))} CPUs{gpus}, {layout.actors} model actors"

    def _stream(
        self,
        todo: Sequence[int],
        records: Sequence[ImageRecord],
        stems: Sequence[Path],
        ordered: _OrderedRows,
        progress: BatchProgress | None,
    ) -> None:
        layout = _cluster_layout(self.ray_options.actors, self.shipment.device)
        shipment = replace(self.shipment, threads=layout.threads)
        # Our progress line replaces Ray Data's bars and its per-run INFO lines.
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        shipment_ref = ray.put(shipment)
        dataset = _dataset(
            todo, records, stems, self.options, self.layer, shipment_ref, layout, self.ray_options
        )
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for index, row, note in zip(
                    batch["index"], batch["row"], batch["note"], strict=True
                ):
                    ordered.add(int(index), json.loads(row))
                    self.output_note = self.output_note or note
                if progress is not None:  # counts this run's images: the rate and ETA stay true
                    progress(len(ordered.seen) - self.skipped, len(todo), ordered.failed)
        except ray.exceptions.RayError as exc:
            # A task's error names the Ray task first; the cause is the line a user can act on.
            cause = getattr(exc, "cause", None) or exc
            raise InspectorError(f"the Ray run failed: {first_line(cause)}") from exc
