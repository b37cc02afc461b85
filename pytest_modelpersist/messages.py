"""Failure text cleanup: what a TensorFlow/Keras error says, without what hides it.

TensorFlow's errors arrive with terminal escape codes (Keras wraps a layer's error in
``\\x1b[1m...\\x1b[0m``), TensorFlow's C++ start-up log lines in front of them (a child
process's stderr), and Keras' deserialization errors with the whole object config appended
(2 KB of ``{'module': ..., 'config': ...}``). `clean_message` keeps the sentence a user acts
on; `config_dump` returns the config it removed, for the report's details. Pure text: no
TensorFlow, no pytest.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|(?<![\w\]\[])\[[0-9]{1,2}(?:;[0-9]{1,2})*m")
# absl's log prefix: severity, MMDD, time, thread id, file:line]
_ABSL = re.compile(r"^\s*([IWEF])\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\]\s?(.*)$")
# Start-up lines TensorFlow prints whatever the model does: no CUDA driver on a CPU machine
# (as absl WARNING/ERROR lines), oneDNN and CPU-instruction notices, absl's pre-init notice.
_NOISE_LOG = re.compile(r"cuInit|cuda|CUDA|cuDNN|cuFFT|cuBLAS|TF-TRT|oneDNN|cpu_feature_guard"
                        r"|Cannot dlopen some GPU libraries")
_NOISE_PLAIN = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|^To enable the following instructions:.*rebuild TensorFlow"
)
# Keras appends the config of the object it could not rebuild (kilobytes), after a preamble
# naming the enclosing model and its whole config: the cause follows "Exception encountered:".
_PREAMBLE = re.compile(r"(?:<class '[^']*'>|\S+) could not be deserialized properly\..*?"
                       r"Exception encountered:\s*", re.DOTALL)
_CONFIG = re.compile(r"\s*Full object config:\s*(\{.*\})\.?", re.DOTALL)
_WHOLE_CONFIG = re.compile(r"\bconfig=(\{.*\})\.?", re.DOTALL)
_LOCATE = re.compile(r"Could not locate (class|function) '([\w.]+)'\..*", re.DOTALL)
_KERAS_CALL = re.compile(
    r"Exception encountered when calling (?P<where>[^\n]*?)\.?\s*\n\s*\x1b\[1m(?P<msg>.*?)\x1b\[0m"
    r"(?:\s*Arguments received by .*)?", re.DOTALL)
_MISSING_CLASS = re.compile(
    r"Could not locate (?:class|function) '(?P<name>[\w.]+)'"
    r"|Unknown (?:layer|object|class)(?: name)?: '?(?P<name2>[\w.>]+)'?"
    r"|Cannot deserialize object of type `(?P<name3>[\w.]+)`")  # the last: Keras 2
_MISSING_MODULE = re.compile(r"No module named '(?P<module>[\w.]+)'")
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception|Exit)\b:?")


def is_noise(line: str) -> bool:
    """True for one of TensorFlow's start-up log lines, or any absl INFO line."""
    found = _ABSL.match(line)
    if found:
        return found.group(1) == "I" or bool(_NOISE_LOG.search(found.group(2)))
    return bool(_NOISE_PLAIN.search(line.strip()))


def clean_message(text: str) -> str:
    """`text` without escape codes, TensorFlow start-up lines and Keras config dumps.

    A Keras layer-call error ("Exception encountered when calling Dense.call(). <message>
    Arguments received by ...") becomes "<message> (in Dense.call())".
    """
    call = _KERAS_CALL.search(text)
    if call:
        where = call.group("where").strip().rstrip(".")
        text = (text[:call.start()] + f"{call.group('msg').strip()} (in {where})"
                + text[call.end():])
    text = _ANSI.sub("", text)
    text = _PREAMBLE.sub("", text)
    config = _CONFIG.search(text)
    if config:
        text = text[:config.start()] + text[config.end():]
    located = _LOCATE.search(text)
    if located:  # the advice after it is generic; where the class came from is not
        kind, name = located.groups()
        saved = _saved_as(config.group(1), name) if config else ""
        text = (text[:located.start()] + f"Could not locate {kind} '{name}'{saved}: it must be "
                "imported (registered) before the model is loaded")
    lines = [ln.rstrip() for ln in text.splitlines() if not is_noise(ln)]
    return "\n".join(lines).strip()


def config_dump(text: str) -> str | None:
    """The object config a Keras deserialization error carries (for the report), or None."""
    text = _ANSI.sub("", text)
    found = _CONFIG.search(text) or _WHOLE_CONFIG.search(text)
    return found.group(1) if found else None


def _saved_as(config: str, name: str) -> str:
    """" (module 'zoo.layers', registered as 'zoo>Gated')" from a Keras object config."""
    module = re.search(r"'module': '([\w.]+)', 'class_name': '" + re.escape(name) + "'", config)
    registered = re.search(r"'registered_name': '([^']+)'", config)
    parts = ([f"module '{module.group(1)}'"] if module else []) + (
        [f"registered as '{registered.group(1)}'"] if registered else [])
    return f" ({', '.join(parts)})" if parts else ""


def error_line(stderr: str) -> str:
    """A child process's cause: its last ``SomeError: ...`` line, cleaned; else its tail."""
    lines = [ln for ln in clean_message(stderr).splitlines() if ln.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line.strip()
    return "\n".join(lines[-5:])


@dataclass(frozen=True)
class Missing:
    """A class or module an error says it could not find."""

    kind: str  # "class" or "module"
    name: str

    def hint(self, module: str | None = None) -> str:
        """What to add to the ini file so a fresh interpreter finds it."""
        if self.kind == "module":
            top = self.name.split(".")[0]
            return (f"module {self.name!r} is missing there: put the directory holding "
                    f"{top!r} in `persist_subprocess_path`")
        where = f"`persist_subprocess_imports = {module}`" if module else (
            "`persist_subprocess_imports = <the module defining it>`")
        return f"class {self.name!r} is not registered there: add {where} to the ini file"


def missing_name(text: str) -> Missing | None:
    """The class or module a restore error says it could not find, or None."""
    found = _MISSING_CLASS.search(text)
    if found:
        name = found.group("name") or found.group("name2") or found.group("name3")
        return Missing("class", name.split(">")[-1])
    found = _MISSING_MODULE.search(text)
    return Missing("module", found.group("module")) if found else None


def module_defining(class_name: str) -> str | None:
    """The module (already imported here) that defines a class named `class_name`, or None.

    Reads module dicts only (no attribute access), so lazy modules (TensorFlow's) are not
    imported by the search. Keras' own modules are skipped: a custom class lives elsewhere.
    """
    for name, module in list(sys.modules.items()):
        found = getattr(module, "__dict__", {}).get(class_name)
        if (isinstance(found, type) and found.__name__ == class_name
                and found.__module__ == name and name != "__main__"
                and not name.startswith(("keras", "tensorflow", "tf_keras"))):
            return name
    return None


_XDIST_HEADER = re.compile(r"\[gw\d+\] \S+ -- Python \S+ ")


def cause_of(message: str) -> str:
    """The part of a failure message that is the same across formats and files.

    "[h5] restore /tmp/.../m.h5 (Keras model) failed: ValueError: X" -> "ValueError: X", so
    the terminal summary can count items that failed for one reason.
    """
    # xdist heads a worker's failure text with the worker and its Python ("[gw0] linux --
    # Python 3.11.7 /venv/bin/python"): the same for every item, so never the cause.
    first = next((ln.strip() for ln in clean_message(message).splitlines()
                  if ln.strip() and not _XDIST_HEADER.match(ln.strip())), "")
    if " failed: " in first:
        first = first.split(" failed: ", 1)[1]
    first = re.sub(r"^\[[\w.\-]+\]\s*", "", first)
    first = re.sub(r"(?:/[^\s/:;,()'\"]+)+/?", "<path>", first)
    return first.replace("E   ", "").strip()


def child_failure(what: str, stderr: str, where: str = "a fresh interpreter") -> str:
    """The message for a restore that failed in a fresh interpreter (the subprocess loader;
    `where` names another one, a runtime).

    Blames the test's code not being importable only when the child could not find a class or
    a module, and then says which ini line makes it findable.
    """
    cause = error_line(stderr)
    missing = missing_name(cause)
    if missing is None:
        return f"{what}: restore failed in {where}: {cause}"
    saved = re.search(r"module '([\w.]+)'", cause)
    module = (module_defining(missing.name) or (saved.group(1) if saved else None)
              if missing.kind == "class" else None)
    return (f"{what}: restore failed in {where} (the test's code is not importable "
            f"there): {cause}\n{missing.hint(module)}")
