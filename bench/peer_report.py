"""The table and the chart of bench.peers: one row per ratio, each with its goal, so the
reader sees at a glance which goals hold on this machine."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One figure: `value` over `baseline` (both in `unit`), or why it was not run."""

    figure: str
    value: float | None = None
    baseline: float | None = None
    unit: str = ""
    goal: str = ""  # ">= 0.97", "<= 1.0" or "" (reported, no goal)
    note: str = ""
    section: str = ""  # which part of the run measured it

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.ratio is None or not self.goal:
            return None
        op, bound = self.goal.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    @classmethod
    def from_dict(cls, fields: dict) -> "Row":
        return cls(**{k: fields[k] for k in cls.__dataclass_fields__ if k in fields})

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    """A markdown table (it prints readably and pastes into the README as it is)."""
    lines = ["| figure | value | baseline | unit | ratio | goal | met |", "|---|---:|---:|---|---:|---|---|"]
    for r in rows:
        if r.ratio is None:
            lines.append(f"| {r.figure} | - | - | {r.unit} | not run: {r.note} | {r.goal or '-'} | - |")
            continue
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        lines.append(f"| {r.figure} | {_num(r.value)} | {_num(r.baseline)} | {r.unit} | {r.ratio:.3f} | "
                     f"{r.goal or '-'} | {met} |")
    return "\n".join(lines)


def chart(rows: list[Row], title: str, path: Path) -> None:
    """Horizontal bars of the ratios, the goal of each row as a black tick; green when the
    goal holds, red when not, grey with no goal; rows not run are labelled so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 0.55 * len(rows) + 2.2))
    ys = list(range(len(rows)))[::-1]
    colours = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}
    top = max([r.ratio for r in rows if r.ratio is not None] + [1.3])
    for y, r in zip(ys, rows):
        if r.ratio is None:
            ax.text(0.02, y, f"not run: {r.note}", va="center", fontsize=9, style="italic")
            continue
        ax.barh(y, r.ratio, color=colours[r.met], height=0.6)
        ax.text(r.ratio + top * 0.01, y, f"{r.ratio:.2f}", va="center", fontsize=9)
        if r.goal:
            bound = float(r.goal.split()[1])
            ax.plot([bound, bound], [y - 0.4, y + 0.4], color="black", linewidth=2)
    ax.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
    ax.set_yticks(ys, [r.figure for r in rows], fontsize=9)
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel("ratio (black tick: goal; dotted: 1.0)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
