"""The `persist` fixture's object: save, restore, check one model in the current format."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from . import compat, golden_check, loaders, outputs, steps
from ._session_run import run_timeout, with_run_timeout
from ._tf import import_tensorflow
from .decision import Judgement
from .errors import RestoreOptionError
from .formats import shards
from .formats.base import Artifact, Format, Restored
from .formats.containment import check_tree
from .formats.conversion import declared_tolerances, lossy_hint
from .golden_check import GoldenTarget
from .models import Inputs, ModelInfo, describe, run
from .nest import present, structure_of
from .outputs import CheckResult, foreign_artifact, judge_by_path, missing_tables, named_leaves
from .reporting import record, record_comparisons, timed
from .restore.options import RestoreOptions, parse_restore_options
from .settings import CheckOptions
from .steps import model_info, or_fail, remember_failure, replay_failure, step
from .tables import fingerprints as table_fingerprints

T = TypeVar("T")


class Persist:
    """One model-persistence format, bound to one test (the `persist` fixture's value).

    ``persist.format`` is the format's name. ``persist.check(model, inputs, build=...)`` saves,
    restores from the files alone and compares outputs; ``save`` and ``restore`` are its steps.
    """

    def __init__(self, fmt: Format, *, tmp_path: Path, options: CheckOptions,
                 nodeid: str = "", golden: GoldenTarget | None = None,
                 loader: str = "inprocess", cache: Any = None, node: Any = None,
                 archive: Any = None) -> None:
        self._fmt = fmt
        self._node = node  # the test item: figures for --persist-report and JUnit XML
        self._loader = loader
        self._cache = cache if cache is not None and cache.enabled else None
        self._tmp_path = tmp_path
        self._options = options
        self._nodeid = nodeid
        self._golden = golden
        self._saves = 0
        self._archive = archive  # archive.item.ArchiveItem: record checks, or replay one

    @property
    def format(self) -> str:
        """The current format's name (the test id's ``[<format>]``)."""
        return self._fmt.name

    @property
    def loader(self) -> str:
        """How this item brings artifacts back: inprocess, subprocess or capi."""
        return self._loader

    @property
    def adapter(self) -> Format:
        """The format object doing the work (built-in or registered by a plugin)."""
        return self._fmt

    def __repr__(self) -> str:
        return f"<persist format={self.format!r} test={self._nodeid!r}>"

    def applies_to(self, model: Any) -> str | None:
        """Why the current format cannot hold `model`, or None when it can."""
        import_tensorflow()
        return self._fmt.unsupported(model, describe(model))

    def save(self, model: Any, *, inputs: Inputs = None, **options: Any) -> Artifact:
        """Save `model` in the current format; returns the artifact.

        Within a session the same model (architecture and weights) is saved once per format
        and the artifact reused (``--persist-no-cache`` turns this off); do not edit the files
        of a returned artifact in place (a copy is yours to damage; an edited artifact is
        detected and saved again).

        `inputs` (example inputs) fix the input signature for formats that trace the model
        (savedmodel, pb, ckpt of a Keras model). The test is skipped, with the reason, when the
        format cannot hold this kind of model.
        """
        __tracebackhide__ = True
        info = self._model_info(model)
        self._refuse(model, inputs, info)
        options, whole = or_fail(f"[{self.format}] ", lambda: shards.save_options_of(
            self._fmt, self._options, options))
        # asked to shard but wrote whole files: a warning says why
        return shards.warn_whole(self._save_cached(model, inputs, options, info), whole)

    def _save_cached(self, model: Any, inputs: Inputs, options: dict[str, Any],
                     info: ModelInfo) -> Artifact:
        """The artifact cache's artifact of this model, format and options, saved if new."""
        __tracebackhide__ = True
        if self._cache is None or info.kind not in ("keras", "keras2", "tf.Module", "tf1-graph"):
            return self._save_into(self.scratch(), model, inputs, options, info)
        from .cache import cache_key

        with self._step("fingerprint the model for the artifact cache", None, info):
            # the workers of an xdist run trust each other's artifacts by a SHA-256 key; a
            # model known only by its identity is not shared (cache_key says None)
            shared = None if self._cache.shared is None else cache_key(
                model, inputs, options, strong=True)
            key = shared or cache_key(model, inputs, options) or ""
        with self._cache.claim(self.format, key, shared_key=shared) as claim:
            if claim.artifact is not None:
                record(self._node, "artifact_bytes", claim.artifact.bytes)
                return claim.artifact
            replay_failure(claim)
            with remember_failure(claim):
                artifact = self._save_into(claim.directory(), model, inputs, options, info)
            claim.publish(artifact)
            return artifact

    def _save_into(self, directory: Path, model: Any, inputs: Inputs, options: dict[str, Any],
                   info: ModelInfo) -> Artifact:
        """The format's save into `directory`, with what a restore needs in the manifest."""
        __tracebackhide__ = True
        with self._step("save", directory, info), timed(self._node, "save"):
            artifact = self._fmt.save(model, directory, inputs=inputs, **options)
            artifact.meta.update(compat.artifact_meta(model))  # Keras 2: its package, positions
            if inputs is not None:  # how to rebuild the input nest from its leaves
                artifact.meta.setdefault("input_structure", structure_of(inputs))
            held = table_fingerprints(model)
            if held:  # lookup tables are state too: a restore must bring them back
                artifact.meta.setdefault("tables", held)
            artifact.write_manifest()
        record(self._node, "artifact_bytes", artifact.bytes)
        return artifact

    def restore(self, artifact: Artifact | str | Path, *, build: Callable[[], Any] | None = None,
                loader: str | None = None, **options: Any) -> Restored:
        """Restore an artifact (or its directory) from its files; returns a callable model.

        Weights-only formats need `build=`, a zero-argument callable returning a fresh model of
        the same architecture; its variables are perturbed before the restore, and a variable
        the files did not fill fails the test, named. `loader` (default: this item's) picks
        where: ``inprocess``, ``subprocess`` (a fresh interpreter without the test's code) or
        ``capi`` (TensorFlow's C API, no tensorflow package).

        Files the plugin did not write (a training run's Saver directory, a frozen graph)
        have no manifest: name the format and the graph's tensors instead,
        ``persist.restore(dir, format="ckpt", inputs=["x:0"], outputs=["add:0"])``.
        """
        __tracebackhide__ = True
        foreign = {k: options.pop(k) for k in ("format", "inputs", "outputs") if k in options}
        if foreign:
            artifact = or_fail(f"[{self.format}] ",  # files without a manifest
                               lambda: foreign_artifact(artifact, self.format, **foreign))
        elif not isinstance(artifact, Artifact):
            with self._step("read artifact", Path(artifact), None):
                artifact = Artifact.from_directory(Path(artifact))
            self.check_manifest(artifact)
        return self.restore_parsed(artifact, self._parse({**options, "build": build}), loader)

    def _parse(self, raw: dict[str, Any]) -> RestoreOptions:
        """The user's restore keywords, checked against the format's (one error for all)."""
        __tracebackhide__ = True
        try:
            return parse_restore_options(self.format, self._fmt.restore_options, raw,
                                         safe_mode=self._options.safe_mode)
        except RestoreOptionError as exc:
            pytest.fail(str(exc), pytrace=False)

    def restore_parsed(self, artifact: Artifact, options: RestoreOptions,
                       loader: str | None = None) -> Restored:
        """`restore` with options already parsed (a RestoreOptions): what `restore` and
        `check` run, and what the archive's replay runs; fails the test on an incomplete
        restore."""
        __tracebackhide__ = True
        loader = loader or self._loader
        import_tensorflow()
        with self._step("restore", artifact.path, None, artifact=artifact):  # any loader
            check_tree(artifact.directory, fmt=self.format, allow=not options.safe_mode)
        if loader != "inprocess":  # a Restored whose every call runs in another process
            problem = loaders.remote_problem(self._fmt, loader, options, self._options.runtimes)
            if problem:
                pytest.fail(f"[{self.format}] {problem}", pytrace=False)
            return loaders.restored_elsewhere(self._fmt, artifact, loader, options,
                                              self._options)
        timeout = self._options.timeout  # Session.run deadline of in-process graph runs
        with (self._step("restore", artifact.path, None, artifact=artifact),
              self._fmt.safe_mode_scope(options.safe_mode), timed(self._node, "restore"),
              run_timeout(timeout)):
            restored = self._fmt.restore(artifact, options)
        restored.runner = with_run_timeout(restored.runner, timeout)
        self._account_tables(artifact, restored)
        if restored.report is not None and not restored.report.complete:
            pytest.fail(
                f"[{self.format}] restore of {artifact.path} ({restored.how}) was incomplete: "
                f"{restored.report.summary()}",
                pytrace=False,
            )
        return restored

    def check(self, model: Any, inputs: Inputs = None, *, build: Callable[[], Any] | None = None,
              rtol: float | Mapping[str, float] | None = None,
              atol: float | Mapping[str, float] | None = None, exact: bool | None = None,
              golden: bool | None = None, name: str | None = None, agreement: Any = None,
              min_agreement: Any = None, top_k: Any = None, max_mismatch_fraction: Any = None,
              **restore_options: Any) -> CheckResult:
        """Save `model`, restore it from the files, run both on `inputs`, compare the outputs.

        Fails the test with a per-output mismatch report when a restored output differs from
        the original model's beyond tolerance (per-dtype defaults, overridden by ini, the
        `persist` marker and these arguments), or from the test's stored golden (unless
        `golden=False`, for a model whose outputs are not reproducible). `name` names the
        golden when a test checks more than one model. Returns a CheckResult.

        `rtol`/`atol` may be per output (``{"logits": 1e-4}``); `agreement`, `min_agreement`,
        `top_k`, `max_mismatch_fraction` judge decisions instead (README, Tolerances).
        """
        # Over 60 lines on purpose: check's order (refuse, run, save, golden, each restore) is its
        # contract and reads top to bottom; each step is a call.
        __tracebackhide__ = True
        info = self._model_info(model)
        options = self._parse(restore_options)
        if self._fmt.needs_build and build is None and options.into is None:
            reason = self.applies_to(model)
            if reason:
                pytest.skip(f"[{self.format}] does not apply to {info.detail}: {reason}")
            pytest.fail(
                f"[{self.format}] stores only variables, so persist.check() needs build=<a "
                f"zero-argument callable returning a fresh {info.detail} of the same "
                f"architecture>; or leave the format out with "
                f"@pytest.mark.persist(exclude=[{self.format!r}])",
                pytrace=False,
            )
        attempts = self._attempts(options, build)
        settings = self._options.merged(rtol=rtol, atol=atol, exact=exact, golden=golden)
        settings = or_fail(f"[{self.format}] persist.check: ", lambda: settings.with_decision(
            agreement=agreement, min_agreement=min_agreement, top_k=top_k,
            max_mismatch_fraction=max_mismatch_fraction))
        if self._archive is not None and self._archive.replaying:  # a [<format>@<LABEL>] item
            return self._archive.replay(self, inputs, attempts, settings, kind=info.kind)
        self._refuse(model, inputs, info)
        with self._step("run the original model on the inputs", None, info):
            expected = run(model, inputs)
        artifact = self.save(model, inputs=inputs)
        golden_sidecar = None
        if self._golden is not None and settings.golden:
            if not self._golden.update:  # a changed interface explains changed outputs: first
                self._check_interface(artifact, name)
            # The golden is the original model's output; every format item shares it.
            golden_sidecar = self._assert_golden(expected, name, inputs, settings,
                                                 what="the original model's outputs",
                                                 seen="original outputs")
            if self._golden.update:  # after: the sidecar exists now
                self._check_interface(artifact, name)
        result = CheckResult(self.format, artifact, [], present(expected), [], [])
        # A conversion declares its own default tolerances in its artifact (a quantized model
        # is not float-exact): they apply to its restored outputs, over the ini table and
        # under the explicit rtol/atol of the call or marker.
        settings = settings.merged(table={**settings.table, **declared_tolerances(artifact)})
        for attempt in attempts:
            restored = self.restore_parsed(artifact, attempt)
            with self._step("run the restored model", artifact.path, info), timed(self._node,
                                                                                  "run"):
                actual = restored.outputs(inputs)
            # Outputs are paired by path (``logits``, ``heads/1/score``), never by position.
            exp_named, act_named = named_leaves(expected), named_leaves(actual)
            judged = self.judge(exp_named, act_named, settings)
            comparisons = judged.comparisons
            record_comparisons(self._node, [exp_named.get(c.name) for c in comparisons],
                               [act_named.get(c.name) for c in comparisons], comparisons)
            text = judged.report(
                f"[{self.format}] restored outputs differ from the original model's "
                f"({info.detail}; restored via {restored.how}; artifact {artifact.path}):",
                footer=[lossy_hint(artifact, settings)])
            if text:
                from .divergence import divergence_line

                pytest.fail(text + divergence_line(model, restored, inputs, settings),
                            pytrace=False)
            if golden_sidecar is not None:
                self._assert_golden(actual, name, inputs, settings, reuse=True,
                                    what=f"the outputs restored via {restored.how} "
                                         f"from {artifact.path}")
            result.restored.append(restored)
            result.actual.append(present(actual))
            result.comparisons.append(comparisons)
        if self._archive is not None:  # --archive-record: only artifacts that checked
            self._archive.record(self, artifact, inputs, expected)
        return result

    def _attempts(self, options: RestoreOptions,
                  build: Callable[[], Any] | None) -> list[RestoreOptions]:
        """The restores `check` runs: into `build()` for a weights-only format; else from the
        files alone, and also into `build()` when the format restores both ways (ckpt)."""
        __tracebackhide__ = True
        if self._fmt.needs_build:
            return [dataclasses.replace(options, build=build)]
        if options.into is not None:
            return [options]
        attempts = [options.without_target()]
        if build is not None and self._fmt.rebuild_optional and self._loader == "inprocess":
            attempts.append(dataclasses.replace(options, build=build))
        elif options.by_name:  # no restore would honour them: refuse rather than ignore
            pytest.fail(f"[{self.format}] var_map/only/strict/skip_mismatched in check() need "
                        "into=<model>" + (" or build=<callable>" if self._fmt.rebuild_optional
                                          else ""), pytrace=False)
        return attempts

    def freeze(self, model: Any, inputs: Inputs = None, *, keep: Sequence[str] | None = None,
               exclude: Sequence[str] = (), outputs: Sequence[str] | None = None) -> Any:
        """Freeze `model` (variables -> constants) and check the result's structure.

        TF1 graph models go through ``convert_variables_to_constants`` on their session
        (`outputs` default to the GraphModel's); Keras models and tf.Modules through the v2
        conversion of their concrete function (input signature from `inputs`, or the module's
        own). `keep` (whitelist) and `exclude` (blacklist) choose the variables to convert.
        Returns a FrozenGraph (`.inputs`, `.outputs` tensor names, `.write(path, as_text=)`);
        fails the test if variable ops remain besides the excluded ones.
        """
        __tracebackhide__ = True
        from .formats import pb as freezing

        info = self._model_info(model)
        with self._step("freeze", None, info):
            frozen = freezing.freeze_model(model, inputs, keep=keep, exclude=exclude,
                                           outputs=outputs)
        left = freezing.unexpected_variable_ops(frozen.graph_def, frozen.kept_variables)
        if left:
            pytest.fail(f"[{self.format}] the frozen graph of the {info.detail} still holds "
                        f"variable ops: {', '.join(left[:10])}", pytrace=False)
        return frozen

    def assert_golden(self, outputs: Any, name: str | None = None, *, inputs: Inputs = None,
                      rtol: float | None = None, atol: float | None = None,
                      exact: bool | None = None) -> Path:
        """Compare `outputs` with this test's stored golden `name`; returns the sidecar path.

        `name=None` is the test's own golden (the one `check` uses); a test wanting more
        goldens names them. Missing or different goldens fail, naming the file and the command
        that records them; with ``--update-golden`` they are (re)recorded instead. Give
        `inputs` so a failure can tell changed inputs from a changed model.
        """
        __tracebackhide__ = True
        options = self._options.merged(rtol=rtol, atol=atol, exact=exact)
        return self._assert_golden(outputs, name, inputs, options, what="the outputs")

    def _assert_golden(self, outputs: Any, name: str | None, inputs: Inputs,
                       options: CheckOptions, *, what: str, reuse: bool = False,
                       seen: str = "outputs") -> Path:
        __tracebackhide__ = True
        if self._golden is None:
            pytest.fail("goldens are not available here (no test item)", pytrace=False)
        named = named_leaves(outputs)  # goldens go by output path, never by position
        return golden_check.check_named(
            self._golden, named, name=name, inputs=inputs, what=what, seen=seen, reuse=reuse,
            judge=lambda stored: self.judge(stored, named, options),
            guard=lambda action, path: self._step(action, path, None))

    def _check_interface(self, artifact: Artifact, name: str | None) -> None:
        """The artifact's interface against the one its golden records (interface_golden)."""
        __tracebackhide__ = True
        from .interface_golden import check_artifact

        if self._golden is not None:
            check_artifact(self._golden, self._golden.sidecar(name), artifact, label=self.format)

    def check_training(self, model: Any, data: Any, *, build: Callable[[], Any] | None = None,
                       steps: int = 2, **options: Any) -> Any:
        """Train `model` `steps` steps, save it in the current format, restore it, train both
        `steps` more and fail unless they agree exactly: weights, optimizer slots and
        iterations, preprocessing state, compile configuration, losses and metrics.

        `data`: ``(x, y)`` or a batched tf.data.Dataset. Options: `batch_size`, `rtol`, `atol`,
        `max_shard_mb` (as `save`), `save=`/`load=` to check your own checkpoint code. Skipped
        for formats that cannot hold training state. Returns the TrainingReport."""
        __tracebackhide__ = True
        from .training import check_in_test
        import_tensorflow()
        options.setdefault(shards.OPTION, self._options.max_shard_mb)
        directory = self.scratch("training")
        return check_in_test(self.format, model, data, directory=directory, build=build,
                             steps=steps, safe_mode=self._options.safe_mode, **options)

    def scratch(self, name: str = "") -> Path:
        """A new empty directory of this test (under its tmp_path) for files to restore."""
        self._saves += 1
        directory = (self._tmp_path / "persist" / self.format
                     / (f"{name}-{self._saves}" if name else str(self._saves)))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def check_manifest(self, artifact: Artifact) -> None:
        """A directory's manifest must name this format and a path inside the directory.

        Keras loads a .keras archive whatever format asked for it, so an `h5` test restoring
        a `keras` artifact would pass without testing h5; a crafted manifest could point the
        loader at any file on the machine.
        """
        __tracebackhide__ = True
        problem = outputs.manifest_problem(artifact, self.format)
        if problem:
            pytest.fail(f"[{self.format}] {problem}", pytrace=False)

    def _account_tables(self, artifact: Artifact, restored: Restored) -> None:
        """Lookup tables that did not come back: in the report, or a failure of their own."""
        __tracebackhide__ = True
        with self._step("compare the restored lookup tables", artifact.path, None):
            problems = missing_tables(artifact.meta.get("tables"), restored.model)
        if not problems:
            return
        if restored.report is not None:
            restored.report.missing.extend(f"{p} (not restored)" for p in problems)
            return
        pytest.fail(f"[{self.format}] restore of {artifact.path} ({restored.how}) did not "
                    f"bring back: {'; '.join(problems)}", pytrace=False)

    def judge(self, expected: Mapping[str, Any], actual: Mapping[str, Any],
              options: CheckOptions) -> Judgement:
        """Outputs by path (``logits``, ``heads/1/score``) judged under `options`: the
        tolerances and decision checks (outputs.judge_by_path); a per-output option naming
        no output fails the test."""
        __tracebackhide__ = True
        return or_fail(f"[{self.format}] per-output option: ",
                       lambda: judge_by_path(expected, actual, options))

    def _refuse(self, model: Any, inputs: Inputs, info: ModelInfo) -> None:
        """Skip when the format cannot hold `model`; fail once, clearly, on inputs the plugin
        cannot feed, store and fingerprint (steps.refuse_composite_inputs)."""
        __tracebackhide__ = True
        reason = self.applies_to(model)
        if reason:
            pytest.skip(f"[{self.format}] does not apply to {info.detail}: {reason}")
        steps.refuse_composite_inputs(self.format, inputs)

    def _model_info(self, model: Any) -> ModelInfo:
        """What `model` is (every call given a model starts here: TensorFlow is imported,
        quietly, on the first)."""
        __tracebackhide__ = True
        import_tensorflow()
        return model_info(self.format, self._node, model)

    def _step(self, action: str, path: Path | None, info: ModelInfo | None, *,
              artifact: Artifact | None = None) -> contextlib.AbstractContextManager[None]:
        """steps.step for this format and item."""
        return step(self._fmt, self._node, action, path, info, artifact=artifact)
