"""Small exception types a user can catch."""

from __future__ import annotations


class ModelPersistError(Exception):
    """Base class of every error raised by pytest-modelpersist."""


class UnknownFormatError(ModelPersistError, KeyError):
    """A format name that no plugin registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown persist format {self.name!r}; known formats: {', '.join(self.known)}"


class TensorFlowMissingError(ModelPersistError, ImportError):
    """TensorFlow is needed but cannot be imported."""


class FormatNotApplicable(ModelPersistError):
    """A format that cannot hold a model of this kind (the test is skipped with this reason)."""


class PersistFailure(ModelPersistError, AssertionError):
    """A save, restore or comparison failed; the message names format, file and cause."""


class RestoreIncompleteError(PersistFailure):
    """A restore left variables of the target untouched or the file did not provide them."""
