"""The format contract: the registry checks formats, restore options are parsed once for all.

Unit tests (no TensorFlow work) of `formats.base.check_format`, `registry.FormatRegistry` and
`restore.options`, plus pytester runs of third-party formats: one missing a member, one whose
restore has a bug.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_modelpersist import BaseFormat, Format, FormatRegistry
from pytest_modelpersist.errors import FormatContractError, RestoreOptionError, is_expected
from pytest_modelpersist.formats import BUILTIN, LazyFormat
from pytest_modelpersist.formats.base import MEMBERS, WrappedFormat
from pytest_modelpersist.restore.options import (
    INTO_MODEL,
    RestoreOptions,
    parse_restore_options,
)

from toy_format import TOY_CONFTEST

BUILTIN_OPTIONS = {
    "ckpt": INTO_MODEL | {"checkpoint"},
    "tf_checkpoint": INTO_MODEL,
    "h5": INTO_MODEL,
    "weights_h5": INTO_MODEL,
    "keras": INTO_MODEL,
    "savedmodel": INTO_MODEL,
    "pb": frozenset({"grappler"}),
    # The conversions: the file is the whole (converted) model, nothing restores by name.
    "tflite": frozenset(),
    "tflite_float16": frozenset(),
    "tflite_dynamic": frozenset(),
    "onnx": frozenset(),
}


class Minimal(BaseFormat):
    name = "minimal"

    def save(self, model: Any, directory: Path, *, inputs: Any) -> Any:
        raise NotImplementedError

    def restore(self, artifact: Any, options: RestoreOptions) -> Any:
        raise NotImplementedError


# ---- the registry checks the contract ----------------------------------------------------


def test_protocol_declares_every_member_the_plugin_uses():
    assert set(MEMBERS) == {
        "name", "description", "kinds", "needs_build", "rebuild_optional", "loaders", "capi",
        "restore_options", "save_options", "unsupported", "save", "restore", "saved_names",
        "diagnose", "safe_mode_scope"}


def test_a_base_format_subclass_with_name_save_restore_registers():
    registry = FormatRegistry()
    registry.register(Minimal())
    assert registry.names() == ["minimal"]
    assert isinstance(registry.get("minimal"), Format)


def test_a_plain_class_is_refused_naming_every_missing_member():
    class Partial:
        name = "partial"
        kinds = frozenset({"other"})

        def save(self, model: Any, directory: Path, *, inputs: Any) -> Any: ...

    with pytest.raises(FormatContractError) as info:
        FormatRegistry().register(Partial())  # type: ignore[arg-type]
    message = str(info.value)
    for member in ("description", "needs_build", "rebuild_optional", "loaders", "capi",
                   "restore_options", "save_options", "unsupported", "restore", "saved_names",
                   "diagnose", "safe_mode_scope"):
        assert member in message
    assert "is missing" in message and "kinds" not in message.split("is missing")[1]
    assert isinstance(info.value, TypeError)


def test_a_member_that_cannot_be_called_is_named():
    class NotCallable(Minimal):
        restore = "nope"  # type: ignore[assignment]

    with pytest.raises(FormatContractError, match="has restore that cannot be called"):
        FormatRegistry().register(NotCallable())


@pytest.mark.parametrize("name", ["", "a-b", "has space", 3])
def test_bad_names_are_refused(name):
    fmt = Minimal()
    fmt.name = name  # type: ignore[misc]
    with pytest.raises(FormatContractError, match="letters, digits and '_'"):
        FormatRegistry().register(fmt)


def test_a_second_format_of_the_same_name_needs_replace():
    registry = FormatRegistry()
    first, second = Minimal(), Minimal()
    registry.register(first)
    registry.register(first)  # the same object again: harmless
    with pytest.raises(FormatContractError, match="already registered"):
        registry.register(second)
    registry.register(second, replace=True)
    assert registry.get("minimal") is second


def test_registry_parse_and_unknown_names():
    registry = FormatRegistry()
    for name in BUILTIN:
        registry.register(LazyFormat(name))
    assert registry.parse("pb, ckpt") == ["ckpt", "pb"]
    assert registry.parse(["all"]) == list(BUILTIN)
    with pytest.raises(KeyError, match="unknown persist format 'nope'; known formats: ckpt"):
        registry.parse("ckpt,nope")


def test_lazy_builtins_register_without_importing_their_modules():
    code = textwrap.dedent(
        """
        import sys
        from pytest_modelpersist.formats import BUILTIN, LazyFormat
        from pytest_modelpersist.registry import FormatRegistry
        registry = FormatRegistry()
        for name in BUILTIN:
            registry.register(LazyFormat(name))
        heavy = [m for m in sys.modules if m in ("numpy", "tensorflow", "keras")
                 or m.startswith("pytest_modelpersist.formats.")
                 and m != "pytest_modelpersist.formats.base"]
        print("HEAVY", sorted(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_formats_declare_their_options_and_wrappers_forward_them(name):
    lazy = LazyFormat(name)
    assert lazy.restore_options == BUILTIN_OPTIONS[name]
    wrapped = WrappedFormat(lazy)
    for member in ("description", "kinds", "needs_build", "rebuild_optional", "loaders", "capi",
                   "restore_options", "save_options"):
        assert getattr(wrapped, member) == getattr(lazy.inner, member), member
    assert lazy.description


# ---- restore options: one parser, one error ------------------------------------------------


@pytest.mark.parametrize("name", list(BUILTIN))
@pytest.mark.parametrize("option", ["into", "var_map", "only", "strict", "skip_mismatched",
                                    "checkpoint", "grappler", "varmap"])
def test_every_format_refuses_what_it_does_not_take_with_the_same_error(name, option):
    accepted = BUILTIN_OPTIONS[name]
    values = {"var_map": {"a": "b"}, "only": ["a"], "strict": False, "skip_mismatched": True}
    raw = {option: values.get(option, 1)}
    if option in accepted:
        parsed = parse_restore_options(name, accepted, raw)
        assert option in parsed.given()
        return
    with pytest.raises(RestoreOptionError) as info:
        parse_restore_options(name, accepted, raw)
    assert str(info.value).startswith(f"[{name}] unsupported restore option(s) {option!r}")
    assert f"the {name} format takes build" in str(info.value)


def test_build_and_safe_mode_are_taken_by_every_format():
    parsed = parse_restore_options("pb", {"grappler"}, {"build": list, "safe_mode": False},
                                   safe_mode=True)
    assert parsed.build is list and parsed.safe_mode is False
    assert parse_restore_options("pb", (), {}, safe_mode=False).safe_mode is False


def test_none_counts_as_not_given_and_extras_are_kept_apart():
    parsed = parse_restore_options("ckpt", BUILTIN_OPTIONS["ckpt"],
                                   {"into": None, "checkpoint": 2, "only": None})
    assert parsed.into is None and parsed.only is None
    assert parsed.get("checkpoint") == 2 and parsed.extra == {"checkpoint": 2}
    assert not parsed.by_name and not parsed.into_model


def test_misspelling_gets_a_suggestion_among_what_the_format_takes():
    with pytest.raises(RestoreOptionError, match=r"'grapler' \(did you mean 'grappler'\?\)"):
        parse_restore_options("pb", {"grappler"}, {"grapler": True})
    with pytest.raises(RestoreOptionError, match=r"'varmap' \(did you mean 'var_map'\?\)"):
        parse_restore_options("h5", INTO_MODEL, {"varmap": {}})


@pytest.mark.parametrize("raw, match", [
    ({"var_map": ["a"]}, "var_map must be a dict"),
    ({"only": "enc/"}, "only must be a list of names"),
    ({"build": 3}, "build= must be a zero-argument callable"),
])
def test_bad_option_values_are_option_errors(raw, match):
    with pytest.raises(RestoreOptionError, match=match):
        parse_restore_options("h5", INTO_MODEL, raw)


def test_option_properties_and_without_target():
    opts = RestoreOptions(into=object(), var_map={"a/": "b/"}, strict=False, extra={"k": 1})
    assert opts.by_name and opts.maps and opts.into_model
    bare = opts.without_target()
    assert not bare.by_name and not bare.into_model and bare.extra == {"k": 1}
    assert RestoreOptions(skip_mismatched=True).by_name
    assert not RestoreOptions(skip_mismatched=True).maps


# ---- which errors are expected --------------------------------------------------------------


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - handing it back with its traceback
        return caught


def test_own_errors_and_os_errors_are_expected_anywhere():
    assert is_expected(_raise(RestoreOptionError("x")))
    assert is_expected(_raise(FileNotFoundError("x")))


def test_a_bug_raised_outside_libraries_is_not_expected():
    assert not is_expected(_raise(AttributeError("x")))
    assert not is_expected(_raise(ValueError("raised by a test or a third-party format")))


def test_data_errors_raised_by_a_library_are_expected():
    import json

    try:
        json.loads("{")
    except ValueError as exc:
        assert is_expected(exc)
    try:
        import io

        import numpy as np

        np.load(io.BytesIO(b"not an npy file"))
    except ValueError as exc:
        assert is_expected(exc)
    else:
        raise AssertionError("np.load accepted garbage")


# ---- third-party formats through pytest -----------------------------------------------------

TOY = TOY_CONFTEST  # defines Doubler and JsonFormat (name 'toy_json')


def test_third_party_format_missing_restore_fails_at_registration_naming_it(pytester):
    pytester.makeconftest(textwrap.dedent(
        """
        class NoRestore:
            name = "norestore"
            description = ""
            kinds = frozenset({"other"})
            needs_build = rebuild_optional = False
            loaders = ("inprocess",)
            capi = None
            restore_options = frozenset()
            save_options = {}

            def unsupported(self, model, info): return None
            def save(self, model, directory, *, inputs): ...
            def saved_names(self, artifact, options): return None
            def diagnose(self, artifact, exc): return []
            def safe_mode_scope(self, on): ...

        def pytest_modelpersist_register_formats(registry):
            registry.register(NoRestore())
        """
    ))
    pytester.makepyfile("def test_a(persist):\n    pass\n")
    result = pytester.runpytest()
    assert result.ret != pytest.ExitCode.OK
    output = result.stdout.str() + result.stderr.str()
    assert "persist format conftest.NoRestore is missing restore:" in output
    assert "INTERNALERROR" not in output


def test_third_party_restore_bug_keeps_its_traceback(pytester):
    pytester.makeconftest(TOY + textwrap.dedent(
        """
        class Buggy(JsonFormat):
            name = "buggy"

            def restore(self, artifact, options):
                config = None
                return config.k  # the bug

        def pytest_modelpersist_register_formats(registry):
            registry.register(JsonFormat())
            registry.register(Buggy())
        """
    ))
    pytester.makepyfile(
        "import numpy as np\nfrom conftest import Doubler\n\n"
        "def test_toy(persist):\n    persist.check(Doubler(3), np.arange(4.0), golden=False)\n"
    )
    result = pytester.runpytest("--persist-formats=toy_json,buggy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*return config.k  # the bug*",
        "E*AttributeError: 'NoneType' object has no attribute 'k'",
        "*(raised during the [[]buggy[]] restore of *model.json)",
        "conftest.py:*: AttributeError",
    ])


def test_third_party_persist_failure_is_a_clean_failure(pytester):
    pytester.makeconftest(TOY + textwrap.dedent(
        """
        from pytest_modelpersist import PersistFailure

        class Refusing(JsonFormat):
            name = "refusing"

            def restore(self, artifact, options):
                raise PersistFailure(f"{artifact.path} is not a toy I can read")

        def pytest_modelpersist_register_formats(registry):
            registry.register(Refusing())
        """
    ))
    pytester.makepyfile(
        "import numpy as np\nfrom conftest import Doubler\n\n"
        "def test_toy(persist):\n    persist.check(Doubler(3), np.arange(4.0), golden=False)\n"
    )
    result = pytester.runpytest("--persist-formats=refusing")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]refusing[]] restore */model.json failed: PersistFailure: "
                                 "*model.json is not a toy I can read"])
    assert "conftest.py:" not in result.stdout.str()


@pytest.mark.heavy
def test_pb_refuses_into_and_by_name_options_instead_of_ignoring_them(pytester):
    """Before the options were parsed in one place, pb took into=/var_map=/only= silently."""
    pytester.makepyfile(textwrap.dedent(
        """
        import numpy as np
        import pytest
        from pytest_modelpersist._tf import import_keras

        def model():
            keras = import_keras()
            inp = keras.Input((3,))
            return keras.Model(inp, keras.layers.Dense(2)(inp))

        @pytest.mark.persist(formats=["pb", "h5"], golden=False)
        @pytest.mark.parametrize("option", ["into", "var_map", "only", "varmap"])
        def test_option(persist, option):
            x = np.ones((2, 3), np.float32)
            artifact = persist.save(model(), inputs=x)
            value = {"into": model(), "var_map": {"a": "b"}, "only": ["a"], "varmap": {}}
            persist.restore(artifact, **{option: value[option]})
        """
    ))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    out = result.stdout.str()
    for option in ("into", "var_map", "only", "varmap"):
        assert f"[pb] unsupported restore option(s) '{option}'" in out, out[-3000:]
    assert "[h5] unsupported restore option(s) 'varmap' (did you mean 'var_map'?)" in out
