"""The matrix as one self-contained HTML page: no network, inline CSS, SVG and a little JS.

Cells are coloured by outcome and expand (``<details>``) to the reason, each output's
differences against its tolerance (with a histogram of the differences for a mismatch),
sizes, times and versions. The script fills the format/loader/outcome filters and applies
them; the initial filter can be given in the URL's fragment (``report.html#outcome=fail``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from .writers import Matrix, difference, seconds, size

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
thead th{background:#f4f4f4;font-weight:600}tbody th{text-align:left;font:12px monospace}
td.cell{min-width:4.5em}td.pass{background:#d8f5d8}td.fail{background:#f9c9c9}
td.error{background:#f3a6a6}td.skip{background:#eee;color:#666}td.xfail{background:#fbeec8}
td.xpass{background:#f9dca8}details>div{font-size:12px;max-width:44em;white-space:normal}
pre{white-space:pre-wrap;margin:.3em 0}.hidden{display:none}#filters label{margin-right:1em}
svg text{font:9px sans-serif}
"""

SCRIPT = """
(function(){
  var table=document.getElementById('matrix'), keys=['format','loader','outcome'];
  function values(key){var seen={};table.querySelectorAll('td.cell').forEach(function(td){
    seen[td.dataset[key]]=1;});return Object.keys(seen).sort();}
  var want={};location.hash.replace(/^#/,'').split('&').forEach(function(kv){
    var p=kv.split('=');if(p[0])want[p[0]]=decodeURIComponent(p[1]||'');});
  keys.forEach(function(key){var sel=document.getElementById('f-'+key);
    values(key).forEach(function(v){var o=document.createElement('option');o.value=v;
      o.textContent=v;sel.appendChild(o);});
    sel.value=want[key]||'';sel.addEventListener('change',apply);});
  function apply(){
    var f={};keys.forEach(function(k){f[k]=document.getElementById('f-'+k).value;});
    var shown=0,total=0;
    table.querySelectorAll('[data-format]').forEach(function(c){
      var off=(f.format&&c.dataset.format!==f.format)||(f.loader&&c.dataset.loader!==f.loader);
      c.classList.toggle('hidden',off);
      if(c.tagName==='TD'&&c.dataset.outcome){total++;
        var hit=!off&&(!f.outcome||c.dataset.outcome===f.outcome);
        c.classList.toggle('dim',!hit);c.style.opacity=hit?'':'0.15';if(hit)shown++;}});
    table.querySelectorAll('tbody tr').forEach(function(tr){
      var any=tr.querySelector('td.cell:not(.hidden)[data-outcome]:not(.dim)');
      tr.classList.toggle('hidden',!any);});
    var parts=keys.filter(function(k){return f[k];}).map(function(k){return k+'='+f[k];});
    try{history.replaceState(null,'',parts.length?'#'+parts.join('&'):location.pathname);}
    catch(e){}
    document.getElementById('shown').textContent=shown+' of '+total+' cells shown';
  }
  apply();document.body.dataset.rendered='1';
})();
"""


def histogram_svg(hist: Mapping[str, Sequence[float]], atol: float | None) -> str:
    """An inline bar chart of |difference| counts, with the absolute tolerance marked."""
    counts, edges = list(hist["counts"]), list(hist["edges"])
    width, height, top = 260, 70, max(max(counts), 1)
    bar = width / len(counts)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - n / top * height:.1f}" width="{bar - 1:.1f}" '
        f'height="{n / top * height:.1f}" fill="#c0392b"><title>{edges[i]:.3g} to '
        f'{edges[i + 1]:.3g}: {n}</title></rect>' for i, n in enumerate(counts))
    span = edges[-1] - edges[0]
    mark = ""
    if atol is not None and span > 0 and edges[0] <= atol <= edges[-1]:
        x = (atol - edges[0]) / span * width
        mark = (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#333" '
                f'stroke-dasharray="3,2"><title>atol {atol:g}</title></line>')
    return (f'<svg class="hist" width="{width}" height="{height + 14}" role="img" '
            f'aria-label="histogram of absolute differences">{bars}{mark}'
            f'<text x="0" y="{height + 11}">{edges[0]:.3g}</text>'
            f'<text x="{width}" y="{height + 11}" text-anchor="end">|difference| '
            f'{edges[-1]:.3g}</text></svg>')


def _details(row: Any, versions: str) -> str:
    esc = html.escape
    parts = [f"<div><b>{esc(row.nodeid)}</b>"]
    if row.message:
        parts.append(f"<pre>{esc(row.message)}</pre>")
    for o in row.outputs:
        parts.append(f"<div>{esc(difference(o))}</div>")
        if o.get("histogram"):
            parts.append(histogram_svg(o["histogram"], o.get("atol")))
    figures = [("model", row.model_kind), ("artifact", size(row.artifact_bytes)),
               ("save", seconds(row.save_seconds)), ("restore", seconds(row.restore_seconds)),
               ("run", seconds(row.run_seconds)), ("test", seconds(row.duration_seconds))]
    parts.append("<div>" + ", ".join(f"{k} {esc(v)}" for k, v in figures if v) + "</div>")
    if row.details:
        parts.append(f"<details><summary>details</summary><pre>{esc(row.details)}</pre>"
                     "</details>")
    parts.append(f"<div><small>{esc(versions)}</small></div></div>")
    return "".join(parts)


def html_report(matrix: Matrix, versions: Mapping[str, str]) -> str:
    """The whole page for `matrix`."""
    esc = html.escape
    line = ", ".join(f"{k} {v}" for k, v in versions.items())
    head = "".join(f'<th data-format="{esc(f)}" data-loader="{esc(ld)}">{esc(f)}<br>'
                   f"<small>{esc(ld)}</small></th>" for f, ld in matrix.columns)
    body = []
    for test in matrix.tests:
        cells = []
        for f, ld in matrix.columns:
            row = matrix.cells.get((test, (f, ld)))
            attrs = f'data-format="{esc(f)}" data-loader="{esc(ld)}"'
            if row is None:
                cells.append(f'<td class="cell" {attrs}></td>')
                continue
            label = row.outcome + (f" {row.max_abs_diff:.2g}" if row.max_abs_diff else "")
            cells.append(f'<td class="cell {row.outcome}" {attrs} '
                         f'data-outcome="{row.outcome}" title="{esc(row.reason)}"><details>'
                         f"<summary>{esc(label)}</summary>{_details(row, line)}</details></td>")
        body.append(f"<tr><th>{esc(test)}</th>{''.join(cells)}</tr>")
    counts = ", ".join(f"{n} {o}" for o, n in matrix.counts().items()) or "no persist items ran"
    selects = "".join(f'<label>{k} <select id="f-{k}"><option value="">all</option></select>'
                      "</label>" for k in ("format", "loader", "outcome"))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Model persistence report</title><style>{STYLE}</style></head>"
        '<body data-rendered="0"><h1>Model persistence</h1>'
        f'<p id="counts">{esc(counts)}</p><form id="filters">{selects}</form>'
        f'<p id="shown"></p><table id="matrix"><thead><tr><th>test</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table><p><small>{esc(line)}</small></p>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
