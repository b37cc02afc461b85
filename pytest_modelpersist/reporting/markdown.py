"""The matrix as GitHub-flavoured Markdown, for ``$GITHUB_STEP_SUMMARY`` and PR comments."""

from __future__ import annotations

from collections.abc import Mapping

from .writers import Matrix, difference, seconds, size

SYMBOL = {"pass": "✅", "fail": "❌", "error": "💥", "skip": "⏭️", "xfail": "☑️", "xpass": "⚠️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(matrix: Matrix, versions: Mapping[str, str]) -> str:
    """The page: counts, the tests x format/loader table, then one collapsed block per problem."""
    counts = ", ".join(f"{SYMBOL.get(o, '')} {n} {o}" for o, n in matrix.counts().items())
    lines = ["## Model persistence", "", counts or "no persist items ran", ""]
    header = ["test"] + [f"`{f}`<br>{loader}" for f, loader in matrix.columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for test in matrix.tests:
        cells = [f"`{_cell(test)}`"]
        for column in matrix.columns:
            row = matrix.cells.get((test, column))
            if row is None:
                cells.append("")
                continue
            figure = f" {row.max_abs_diff:.2g}" if row.max_abs_diff else ""
            cells.append(f"{SYMBOL.get(row.outcome, row.outcome)}{figure}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    problems = [r for r in matrix.cells.values() if r.outcome in ("fail", "error", "xpass")]
    if problems:
        lines += ["### Failures", ""]
    for row in problems:
        lines += [f"<details><summary>{SYMBOL[row.outcome]} <code>{row.nodeid}</code>: "
                  f"{_html(row.reason)}</summary>", "", "```text", row.message.strip()]
        lines += [difference(o) for o in row.outputs]
        figures = [f"artifact {size(row.artifact_bytes)}" if row.artifact_bytes else "",
                   f"save {seconds(row.save_seconds)}" if row.save_seconds else "",
                   f"restore {seconds(row.restore_seconds)}" if row.restore_seconds else "",
                   f"run {seconds(row.run_seconds)}" if row.run_seconds else ""]
        if any(figures):
            lines.append(", ".join(f for f in figures if f))
        lines += ["```", "", "</details>", ""]
    lines.append("<sub>" + ", ".join(f"{k} {v}" for k, v in versions.items()
                                     if k != "platform") + "</sub>")
    return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    import html

    return html.escape(text)
