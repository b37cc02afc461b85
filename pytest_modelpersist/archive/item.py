"""What one test item does with the archive: record its checks, or replay an archived one.

An item records when the run has ``--archive-record=LABEL``: each successful `persist.check`
stores its artifact's files, inputs and original outputs as an entry. An item
``[<format>@<LABEL>]`` replays: each `persist.check` restores the archived files with today's
code (into today's `build=` for weights-only formats), runs them on the archived inputs and
compares with the archived outputs; a failure names the label, the versions that recorded
it, the file and what differs.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import ArchiveSettings, describe_versions
from .store import ArchiveError, entry_objects

if TYPE_CHECKING:
    from ..formats.base import Artifact
    from ..persist import CheckResult, Persist
    from ..restore.options import RestoreOptions
    from ..settings import CheckOptions

#: Inputs up to this size are copied into the archive; larger ones are kept by checksum only
#: (a replay then runs on the test's own inputs, once they match the checksum).
MAX_INPUT_BYTES = 4 * 1024 * 1024


# (format, model kind at recording, model kind today) -> why no restore can work: a library
# limit, not a regression of the code under test, so such an item skips saying so.
UNREPLAYABLE = {
    ("tf_checkpoint", "keras2", "keras"): (
        "Keras 3's load_weights reads only .weights.h5 and .keras files, not the TF-format "
        "checkpoint Keras 2's save_weights wrote (its object graph names differ too); replay "
        "it into a tf_keras model, or archive weights_h5 / keras instead"),
}


def versions() -> dict[str, Any]:
    """The versions an entry records: TF, Keras (and tf_keras), numpy, Python, the plugin."""
    from .. import __version__
    from ..golden import environment

    env = environment()
    found = {k: env.get(k) for k in ("tensorflow", "keras", "numpy", "python")}
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None:
        found["tf_keras"] = getattr(tf_keras, "__version__", None)
    found["plugin"] = __version__
    return found


def _size(n: float) -> str:
    """``812 B``, ``10.5 kB``, ``3.2 MB`` (powers of 1024, as the budget is)."""
    for unit in ("B", "kB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} MB"


def _npz(arrays: list[Any]) -> bytes:
    import numpy as np

    from ..byte_strings import pack

    buf = io.BytesIO()
    np.savez(buf, **pack({f"arr_{i}": np.asarray(a) for i, a in enumerate(arrays)}))
    return buf.getvalue()


def _unnpz(data: bytes) -> list[Any]:
    import numpy as np

    from ..byte_strings import unpack

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        members = unpack(npz)
    return [members[f"arr_{i}"] for i in range(len(members))]


def _inputs_doc(store: Any, inputs: Any) -> dict[str, Any]:
    """The inputs as an entry keeps them: a copy when small and plain, always a checksum."""
    from ..golden import inputs_checksum
    from ..models import as_input_list
    from ..nest import structure_of

    leaves = as_input_list(inputs)
    doc: dict[str, Any] = {"checksum": inputs_checksum(leaves),
                           "structure": structure_of(inputs), "object": None}
    size = sum(getattr(x, "nbytes", 0) for x in leaves)
    if size <= MAX_INPUT_BYTES and all(x.dtype != object for x in leaves):
        doc["object"] = store.put_bytes(_npz(leaves))
    else:
        doc["why_not_copied"] = (f"{size} bytes, over {MAX_INPUT_BYTES}" if size > MAX_INPUT_BYTES
                                 else "object arrays cannot be stored without pickle")
    return doc


class ArchiveItem:
    """One test item's side of the archive: recording into a label, or replaying one."""

    def __init__(self, settings: ArchiveSettings, owner: str, *, replay: str | None) -> None:
        self.settings, self.owner, self.replay_label = settings, owner, replay
        self._checks = 0

    @property
    def replaying(self) -> bool:
        return self.replay_label is not None

    # ---- record ----------------------------------------------------------------------------

    def record(self, persist: Persist, artifact: Artifact, inputs: Any, expected: Any) -> None:
        """Store a checked artifact as an entry of the recorded label (see the module doc)."""
        __tracebackhide__ = True
        from ..outputs import named_leaves

        self._checks += 1
        label, store = self.settings.record, self.settings.store
        if label is None:
            return
        directory = store.entry_dir(label, self.owner, persist.format, self._checks)
        try:
            files = {p.relative_to(artifact.directory).as_posix(): store.put_file(p)
                     for p in artifact.files}
            named = named_leaves(expected)
            doc = {
                "label": label, "test": self.owner, "format": persist.format,
                "check": self._checks, "model_kind": artifact.model_kind,
                "versions": versions(), "files": files,
                "inputs": _inputs_doc(store, inputs),
                "outputs": {"names": list(named), "object": store.put_bytes(
                    _npz(list(named.values())))},
            }
            self._within_budget(directory, doc)
            store.write_entry(directory, doc)
        except (OSError, ArchiveError) as exc:
            pytest.fail(f"[{persist.format}] archive record into label {label!r} "
                        f"({directory}) failed: {exc}", pytrace=False)

    def _within_budget(self, directory: Path, doc: Mapping[str, Any]) -> None:
        """Fail, writing nothing, when the entry would take its label past the budget."""
        __tracebackhide__ = True
        store, label = self.settings.store, str(self.settings.record)
        before = store.referenced(label)
        old = store.read_entry(directory)
        if old is not None:  # an overwritten entry's objects no longer count (unless shared)
            for digest in entry_objects(old):
                before.pop(digest, None)
        added = {d: store.object_path(d).stat().st_size for d in entry_objects(doc)}
        total = sum({**before, **added}.values())
        if total <= self.settings.max_bytes:
            return
        new = sum(v for d, v in added.items() if d not in before)
        pytest.fail(f"[{doc['format']}] archive label {label!r} would hold {_size(total)} "
                    f"with this entry ({_size(sum(added.values()))}, of which {_size(new)} "
                    f"new), over persist_archive_max_mb = "
                    f"{self.settings.max_bytes / 1024 / 1024:.3g} "
                    f"({_size(self.settings.max_bytes)}); not recorded. Raise the budget (and "
                    f"keep the archive in Git LFS, README 'Upgrading TensorFlow') or record "
                    f"fewer formats", pytrace=False)

    # ---- replay ----------------------------------------------------------------------------

    def replay(self, persist: Persist, inputs: Any, attempts: list[RestoreOptions],
               settings: CheckOptions, *, kind: str) -> CheckResult:
        """Restore the archived artifact of this check (into today's `kind` of model), run it,
        compare with the archive."""
        __tracebackhide__ = True
        self._checks += 1
        label, store = str(self.replay_label), self.settings.store
        directory = store.entry_dir(label, self.owner, persist.format, self._checks)
        try:
            doc = store.read_entry(directory)
        except ArchiveError as exc:
            pytest.fail(f"[{persist.format}@{label}] {exc}", pytrace=False)
        if doc is None:
            pytest.skip(f"[{persist.format}@{label}] label {label!r} archived no artifact for "
                        f"check {self._checks} of this test ({directory})")
        gap = UNREPLAYABLE.get((persist.format, doc.get("model_kind"), kind))
        if gap:
            pytest.skip(f"[{persist.format}@{label}] recorded from a {doc.get('model_kind')} "
                        f"model ({describe_versions(dict(doc))}), restored into a {kind} model "
                        f"today: {gap}")
        with self._blame(persist.format, label, doc, directory):
            return self._replay(persist, doc, inputs, attempts, settings)

    def _replay(self, persist: Persist, doc: dict[str, Any], inputs: Any,
                attempts: list[RestoreOptions], settings: CheckOptions) -> CheckResult:
        __tracebackhide__ = True
        from ..formats.base import Artifact
        from ..formats.conversion import declared_tolerances
        from ..nest import pack, present
        from ..outputs import named_leaves
        from ..persist import CheckResult

        store = self.settings.store
        where = persist.scratch(f"archive-{self.replay_label}-{self._checks}")
        try:
            store.materialize(doc["files"], where)
            artifact = Artifact.from_directory(where)
        except (KeyError, TypeError, ValueError) as exc:  # a hand-edited entry
            raise ArchiveError(f"the entry does not describe an artifact: {exc}") from None
        persist.check_manifest(artifact)
        archived_inputs = self._inputs(doc["inputs"], inputs)
        names = doc["outputs"]["names"]
        expected = dict(zip(names, _unnpz(store.get_bytes(doc["outputs"]["object"],
                                                          "outputs.npz")), strict=True))
        if archived_inputs is not None:
            inputs = pack(doc["inputs"]["structure"], archived_inputs)
        settings = settings.merged(table={**settings.table, **declared_tolerances(artifact)})
        result = CheckResult(persist.format, artifact, [], expected, [], [])
        for attempt in attempts:
            restored = persist.restore_parsed(artifact, attempt)
            actual = restored.outputs(inputs)
            judged = persist.judge(expected, named_leaves(actual), settings)
            text = judged.report(f"restored outputs differ from the outputs archived at "
                                 f"recording (restored via {restored.how}):")
            if text:
                pytest.fail(text, pytrace=False)
            result.restored.append(restored)
            result.actual.append(present(actual))
            result.comparisons.append(judged.comparisons)
        return result

    def _inputs(self, doc: Mapping[str, Any], given: Any) -> list[Any] | None:
        """The archived input leaves, or None to use the test's own (checksum-checked)."""
        __tracebackhide__ = True
        if doc.get("object"):
            return _unnpz(self.settings.store.get_bytes(doc["object"], "inputs.npz"))
        from ..golden import inputs_checksum
        from ..models import as_input_list

        if inputs_checksum(as_input_list(given)) != doc.get("checksum"):
            pytest.fail(f"the archive keeps only a checksum of the inputs "
                        f"({doc.get('why_not_copied')}) and the test's inputs no longer match "
                        f"it ({doc.get('checksum')}): the archived outputs do not apply",
                        pytrace=False)
        return None

    @contextmanager
    def _blame(self, fmt: str, label: str, doc: Mapping[str, Any],
               directory: Path) -> Iterator[None]:
        """Prefix a failure with the label, the versions that recorded it and the entry; end
        it with what to do."""
        __tracebackhide__ = True
        try:
            yield
        except (pytest.fail.Exception, ArchiveError) as exc:
            message = getattr(exc, "msg", None) or str(exc)
            head = (f"[{fmt}@{label}] the artifact archived under label {label!r} (recorded "
                    f"with {describe_versions(dict(doc))}; {directory / 'archive.json'}) "
                    f"no longer checks with today's code (plugin and libraries: "
                    f"{describe_versions({'versions': versions()})}):")
            advice = (f"fix the code, or retire the label when the break is intended: "
                      f"--archive-retire={label} --archive-reason='...'")
            raise pytest.fail.Exception(f"{head}\n{message}\n{advice}", pytrace=False) from None
