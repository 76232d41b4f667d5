"""Tables for notebooks without pulling in pandas: a list of dicts (or a dict of dicts) as HTML."""
from __future__ import annotations

import html


class Table:
    def __init__(self, rows: list[dict], index: list[str] | None = None):
        self.rows, self.index = rows, index
        self.columns = list(dict.fromkeys(k for r in rows for k in r))

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ([""] if self.index else []) + self.columns)
        body = []
        for i, row in enumerate(self.rows):
            cells = [f"<th>{html.escape(self.index[i])}</th>"] if self.index else []
            cells += [f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in self.columns]
            body.append("<tr>" + "".join(cells) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def __repr__(self) -> str:
        lines = ["\t".join(([""] if self.index else []) + self.columns)]
        for i, row in enumerate(self.rows):
            lines.append("\t".join(([self.index[i]] if self.index else []) + [_fmt(row.get(c, "")) for c in self.columns]))
        return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(data) -> Table:
    if isinstance(data, dict):
        return Table([{k: (v if not isinstance(v, dict) else v) for k, v in row.items()} for row in data.values()], list(data))
    return Table(list(data))


def crosstab(pairs: list[tuple[str, str]]) -> Table:
    """Counts of (row, column) pairs with totals."""
    rows = sorted({r for r, _ in pairs})
    cols = sorted({c for _, c in pairs})
    counts = {r: {c: 0 for c in cols} for r in rows}
    for r, c in pairs:
        counts[r][c] += 1
    for r in rows:
        counts[r]["all"] = sum(counts[r][c] for c in cols)
    counts["all"] = {c: sum(counts[r][c] for r in rows) for c in cols + ["all"]}
    return table(counts)
