"""Format name -> format. A format is checked against the `Format` protocol when registered;
unknown names give an error listing the known ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._names import ALL, split_names
from .errors import FormatContractError, UnknownFormatError

if TYPE_CHECKING:
    from .formats.base import Format


class FormatRegistry:
    """The formats known to this pytest session, in registration order."""

    def __init__(self) -> None:
        self._formats: dict[str, Format] = {}
        self._opt_in: set[str] = set()

    def register(self, fmt: Format, *, replace: bool = False, in_all: bool = True) -> None:
        """Add `fmt` under `fmt.name`; a second format of the same name needs `replace=True`.

        Raises FormatContractError (a TypeError) naming every member of `Format` it lacks.
        `in_all=False` leaves it out of 'all': it runs only when named (the conversions,
        tflite and onnx, which are slow and lossy by design).
        """
        from .formats.base import check_format

        check_format(fmt)
        name = fmt.name
        if name in self._formats and not replace and self._formats[name] is not fmt:
            raise FormatContractError(
                f"persist format {name!r} is already registered (pass replace=True)")
        self._formats[name] = fmt
        if not in_all:
            self._opt_in.add(name)

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def __len__(self) -> int:
        return len(self._formats)

    def names(self) -> list[str]:
        """Registered format names, in registration order."""
        return list(self._formats)

    def get(self, name: str) -> Format:
        """The format called `name`; UnknownFormatError lists the known names."""
        try:
            return self._formats[name]
        except KeyError:
            raise UnknownFormatError(name, self.names()) from None

    def save_options(self) -> dict[str, tuple[type, list[str]]]:
        """Every converter option a registered format declares (`Format.save_options`):
        name -> (type, the formats taking it). The first declaration's type wins."""
        found: dict[str, tuple[type, list[str]]] = {}
        for name, fmt in self._formats.items():
            for option, kind in fmt.save_options.items():
                found.setdefault(option, (kind, []))[1].append(name)
        return found

    def parse(self, spec: str | Iterable[str]) -> list[str]:
        """Turn 'ckpt,h5' / 'all' / a list of names into known names, in registry order.

        'all' is every format registered with in_all (not the opt-in conversions); 'all,onnx'
        adds one.
        """
        names = split_names(spec)
        for name in names:
            if name != ALL:
                self.get(name)
        wanted = set(names)
        if ALL in wanted:
            wanted |= {n for n in self.names() if n not in self._opt_in}
        return [n for n in self.names() if n in wanted]
