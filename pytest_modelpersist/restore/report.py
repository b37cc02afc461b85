"""What a restore filled, in words: :class:`RestoreReport` (no numpy, no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RestoreReport:
    """What a restore filled: restored, skipped on purpose, missing from file, unused in file.

    Names are the target's variable names (``layers/dense/vars/0``, ``w``, ``v1``) except
    `unused`, which names entries of the file. `notes` explain entries (closest names, why a
    variable was skipped). `strict=False` (the user's explicit choice) makes a restore with
    missing or mismatched variables acceptable; they are still listed.
    """

    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    strict: bool = True

    @property
    def everything_restored(self) -> bool:
        """True when no variable is missing and none mismatched, whatever `strict` says."""
        return not (self.missing or self.mismatched)

    @property
    def complete(self) -> bool:
        """True when the restore is acceptable: nothing missing or mismatched, or not strict."""
        return self.everything_restored or not self.strict

    def summary(self) -> str:
        parts = [f"restored {len(self.restored)}"]
        for label, names in (
            ("skipped", self.skipped),
            ("missing from the file", self.missing),
            ("in the file but unused", self.unused),
            ("shape/dtype mismatch", self.mismatched),
        ):
            if names:
                shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
                parts.append(f"{label} {len(names)}: {shown}")
        text = "; ".join(parts)
        if self.notes:
            shown_notes = self.notes[:8] + ([f"... {len(self.notes) - 8} more"]
                                             if len(self.notes) > 8 else [])
            text += "\n" + "\n".join(f"  {n}" for n in shown_notes)
        return text
