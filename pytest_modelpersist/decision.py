"""Decision-level checks for lossy formats and noisy devices. Pure numpy: no pytest, no TF.

Elementwise closeness (compare.py) asks every number to match. A quantized model, or a GPU run
against a CPU golden, can move every logit a little and still take the same decisions; these
checks say what must hold instead:

* ``agreement="argmax"``: the predicted class (argmax over the last axis; for a single-unit
  output, ``value > threshold``) must be the same for at least ``min_agreement`` of the rows
  (default: all of them);
* ``top_k=5``: each row's k highest-scoring classes must be the same set (order within the
  set free), for at least ``min_agreement`` of the rows;
* ``max_mismatch_fraction=0.01``: at most that share of the elements may be outside the
  elementwise tolerance (tf2onnx's ``ptol`` in its tests).

With `agreement` or `top_k`, an output is judged by its decisions (and by
`max_mismatch_fraction` only when that is given too); without them, `max_mismatch_fraction`
relaxes the elementwise check. A NaN or infinity where the other side has a finite value, or a
shape or dtype difference, fails whatever the policy: no lossy conversion explains it.

Every option may be given per output, by the output's path (``rtol={"logits": 1e-4,
"embedding": 1e-2}``): :func:`per_output` resolves such a mapping and refuses a key that names
no output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .compare import ArrayComparison

AGREEMENTS = ("argmax",)


@dataclass(frozen=True)
class DecisionPolicy:
    """What must hold for one output when elementwise closeness is not the contract."""

    agreement: str | None = None
    min_agreement: float = 1.0
    top_k: int | None = None
    max_mismatch_fraction: float | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.agreement is not None and self.agreement not in AGREEMENTS:
            raise ValueError(f"agreement={self.agreement!r}: known agreements are "
                             f"{', '.join(map(repr, AGREEMENTS))}")
        for label, value in (("min_agreement", self.min_agreement),
                             ("max_mismatch_fraction", self.max_mismatch_fraction)):
            if value is not None and (isinstance(value, bool) or not 0.0 <= value <= 1.0):
                raise ValueError(f"{label}={value!r}: a fraction between 0 and 1")
        if self.top_k is not None and (isinstance(self.top_k, bool)
                                       or not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k={self.top_k!r}: a positive int")

    @property
    def active(self) -> bool:
        """True when anything but plain elementwise closeness is asked for."""
        return (self.agreement is not None or self.top_k is not None
                or self.max_mismatch_fraction is not None)

    @property
    def by_decision(self) -> bool:
        return self.agreement is not None or self.top_k is not None


@dataclass
class DecisionResult:
    """The verdict for one output: ok, and one line per check made."""

    name: str
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def add(self, ok: bool, line: str) -> None:
        self.ok = self.ok and ok
        self.lines.append(("ok: " if ok else "FAILED: ") + line)


def decisions(scores: Any, *, threshold: float = 0.5) -> np.ndarray:
    """The decision per row: argmax over the last axis; for one score per row (a 1-D output,
    or a last axis of size 1, as a sigmoid gives), ``score > threshold``."""
    import numpy as np

    a = np.asarray(scores)
    if a.ndim <= 1:
        return (a > threshold).astype(np.int64)
    if a.shape[-1] == 1:
        return (a[..., 0] > threshold).astype(np.int64)
    return np.argmax(a, axis=-1)


def argmax_agreement(expected: Any, actual: Any, *,
                     threshold: float = 0.5) -> tuple[float, np.ndarray]:
    """(fraction of rows with the same decision, flat indices of the rows that differ)."""
    import numpy as np

    same = (decisions(expected, threshold=threshold)
            == decisions(actual, threshold=threshold)).reshape(-1)
    return (float(same.mean()) if same.size else 1.0), np.flatnonzero(~same)


def top_k_agreement(expected: Any, actual: Any, k: int) -> tuple[float, np.ndarray]:
    """(fraction of rows whose k highest classes are the same set, rows that differ).

    Ties at the k-th place are broken by index (numpy's stable sort), the same on both sides.
    """
    import numpy as np

    e, a = np.asarray(expected), np.asarray(actual)
    n = e.shape[-1] if e.ndim else 1
    if k > n:
        raise ValueError(f"top_k={k} but the output has {n} classes (last axis)")
    order_e = np.sort(np.argsort(-e, axis=-1, kind="stable")[..., :k], axis=-1)
    order_a = np.sort(np.argsort(-a, axis=-1, kind="stable")[..., :k], axis=-1)
    same = np.all(order_e == order_a, axis=-1).reshape(-1)
    return (float(same.mean()) if same.size else 1.0), np.flatnonzero(~same)


def _rows(indices: np.ndarray, show: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:show])
    return shown + (f" and {indices.size - show} more" if indices.size > show else "")


def judge(comparison: ArrayComparison, expected: Any, actual: Any,
          policy: DecisionPolicy) -> DecisionResult:
    """Judge one output by `policy`, given its elementwise `comparison`."""
    result = DecisionResult(comparison.name)
    if comparison.problem is not None:
        result.add(False, comparison.problem)
        return result
    if comparison.nan_differs or comparison.inf_differs:
        result.add(False, "NaN or infinity where the other side is finite (at "
                   f"{(comparison.nan_differs + comparison.inf_differs)[0]})")
        return result
    total = max(comparison.total, 1)
    if policy.max_mismatch_fraction is not None or not policy.by_decision:
        allowed = policy.max_mismatch_fraction or 0.0
        share = comparison.mismatched / total
        result.add(share <= allowed,
                   f"{comparison.mismatched} of {comparison.total} elements ({share:.2%}) "
                   f"outside {comparison.tolerance}; at most {allowed:.2%} allowed "
                   "(max_mismatch_fraction)")
    checks = []
    if policy.agreement == "argmax":
        checks.append(("argmax", argmax_agreement(expected, actual, threshold=policy.threshold)))
    if policy.top_k is not None:
        checks.append((f"top-{policy.top_k} set", top_k_agreement(expected, actual,
                                                                   policy.top_k)))
    for label, (fraction, differ) in checks:
        line = (f"{label} agreement {fraction:.2%} of rows; at least "
                f"{policy.min_agreement:.2%} required")
        if differ.size:
            line += f" (rows that differ: {_rows(differ)})"
        result.add(fraction >= policy.min_agreement, line)
    return result


def covers(key: str, name: str) -> bool:
    """True when the per-output key `key` names the output `name`: the same path, or a path
    prefix ending at a ``/`` (``heads`` covers ``heads/1/score``)."""
    key = key.rstrip("/")
    return name == key or name.startswith(key + "/")


def per_output(option: Any, names: Sequence[str], what: str) -> list[Any]:
    """`option` for each output: a mapping {output path: value} is looked up by the name the
    mismatch report shows (``logits``, ``output_1``, ``heads/1/score``; a key may be a path
    prefix, the longest matching key wins); outputs it does not name get None (the
    default). Anything else applies to every output.

    A key naming no output raises ValueError listing the outputs (a typo must not silently
    leave an output at the default).
    """
    if not isinstance(option, Mapping):
        return [option for _ in names]
    unknown = [k for k in option if not any(covers(k, n) for n in names)]
    if unknown:
        from .restore.naming import closest

        # a key may be a path prefix: suggest those too ("head" -> "heads")
        prefixes = {n.rsplit("/", k)[0] for n in names for k in range(1, n.count("/") + 1)}
        near = closest(unknown[0], [*names, *prefixes])
        hint = f" (closest: {', '.join(near)})" if near else ""
        raise ValueError(f"{what}={dict(option)!r} names no output {', '.join(map(repr, unknown))}"
                         f"{hint}; the outputs are {', '.join(names)}")
    found = []
    for name in names:
        keys = [k for k in option if covers(k, name)]
        found.append(option[max(keys, key=lambda k: len(k.rstrip("/")))] if keys else None)
    return found


#: The check options that make a DecisionPolicy (each may be a {output path: value} mapping).
POLICY_OPTIONS = ("agreement", "min_agreement", "top_k", "max_mismatch_fraction")


@dataclass
class Judgement:
    """Every output's elementwise comparison, and the decision verdicts where a policy applies."""

    comparisons: list[ArrayComparison]
    verdicts: list[DecisionResult | None]

    @property
    def ok(self) -> bool:
        return all(v.ok if v is not None else c.ok
                   for c, v in zip(self.comparisons, self.verdicts, strict=True))

    def failed(self) -> list[tuple[ArrayComparison, DecisionResult | None]]:
        return [(c, v) for c, v in zip(self.comparisons, self.verdicts, strict=True)
                if not (v.ok if v is not None else c.ok)]

    def decision_lines(self) -> list[str]:
        """One line per check of every failed output judged by a policy."""
        return [f"{v.name}: {line}" for _, v in self.failed() if v is not None for line in v.lines]

    def report(self, title: str, *, footer: Sequence[str] = ()) -> str:
        """The failure text ('' when every output passed): the elementwise statistics of the
        failed outputs, then each check a policy made on them, then `footer`."""
        from .report import mismatch_report

        failed = self.failed()
        if not failed:
            return ""
        body = mismatch_report(title, [c for c, _ in failed]) or title
        lines = [body, *(f"  {line}" for line in self.decision_lines()), *footer]
        return "\n".join(line for line in lines if line)


def judge_outputs(expected: Sequence[Any], actual: Sequence[Any], names: Sequence[str], *,
                  table: Mapping[str, Any] | None = None, rtol: Any = None, atol: Any = None,
                  exact: bool = False, **policy: Any) -> Judgement:
    """Compare outputs pairwise (same length, named `names`), with rtol/atol and the policy
    options (POLICY_OPTIONS) given once for all outputs or per output path."""
    import numpy as np

    from .compare import compare_array, tolerance_for

    unknown = sorted(set(policy) - set(POLICY_OPTIONS))
    if unknown:
        raise TypeError(f"unknown decision option(s) {', '.join(unknown)}; known: "
                        f"{', '.join(POLICY_OPTIONS)}")
    rtols, atols = per_output(rtol, names, "rtol"), per_output(atol, names, "atol")
    per = {k: per_output(v, names, k) for k, v in policy.items() if v is not None}
    comparisons, verdicts = [], []
    for i, name in enumerate(names):
        exp = np.asarray(expected[i])
        tol = tolerance_for(exp.dtype, table=table, rtol=rtols[i], atol=atols[i], exact=exact)
        comparison = compare_array(exp, actual[i], tol, name=name)
        chosen = {k: values[i] for k, values in per.items() if values[i] is not None}
        rule = DecisionPolicy(**chosen)
        comparisons.append(comparison)
        verdicts.append(judge(comparison, exp, actual[i], rule) if rule.active else None)
    return Judgement(comparisons, verdicts)


def judge_check(expected: Sequence[Any], actual: Sequence[Any], options: Any, *,
                names: Sequence[str] | None = None) -> Judgement:
    """Judge outputs under a check's `options` (a settings.CheckOptions: table, rtol, atol,
    exact, decision). Outputs are named `names` (default ``output_<i>``), the names the
    mismatch report shows and per-output options use. A different number of outputs is
    reported output by output, with no decision policy (there is nothing to pair)."""
    from .compare import compare_outputs

    if len(expected) != len(actual):
        rtol, atol = options.scalar_tolerance()
        found = compare_outputs(expected, actual, table=options.table, rtol=rtol, atol=atol,
                                exact=options.exact, names=names)
        return Judgement(found, [None] * len(found))
    names = list(names or [f"output_{i}" for i in range(len(expected))])[:len(expected)]
    return judge_outputs(expected, actual, names, table=options.table, rtol=options.rtol,
                         atol=options.atol, exact=options.exact, **options.decision)


def check_option(key: str, value: Any) -> str | None:
    """Why `value` is not valid for the decision option `key` (None when it is).

    A value may be given per output path: a mapping of names to values, each checked.
    """
    if isinstance(value, Mapping):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"output names must be str, not {name!r}"
            problem = check_option(key, item)
            if problem:
                return f"{name!r}: {problem}"
        return None
    try:
        DecisionPolicy(**{key: value})
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def parse_ini(lines: Sequence[str]) -> dict[str, Any]:
    """`persist_decision` ini lines (``agreement = argmax``, ``top_k = 5``,
    ``min_agreement = 0.99``, ``max_mismatch_fraction = 0.01``) -> options. ValueError names
    the line that cannot be read."""
    options: dict[str, Any] = {}
    for line in lines:
        if not line.strip():
            continue
        key, sep, raw = (part.strip() for part in line.partition("="))
        if not sep or key not in POLICY_OPTIONS:
            raise ValueError(f"cannot read {line!r}: write one 'option = value' per line, "
                             f"option one of {', '.join(POLICY_OPTIONS)}")
        try:
            value: Any = (raw if key == "agreement" else int(raw) if key == "top_k"
                          else float(raw))
        except ValueError:
            raise ValueError(f"cannot read {line!r}: {raw!r} is not a number") from None
        problem = check_option(key, value)
        if problem:
            raise ValueError(f"cannot read {line!r}: {problem}")
        options[key] = value
    return options
