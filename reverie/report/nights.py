"""What the report reads from the store: the nights, each night's dreams, saved probe runs.

    from reverie.report.nights import load_nights, night_dream_set
    nights = load_nights(store)           # [Night], oldest first, every JSON field parsed safely
    night_dream_set(store, nights[-1])    # {generator: Counter(part)}, drop reasons by kind

Nights are read as they were stored, by any version: an old night, a running one, a diverged one
whose candidate has only a label, a field added later (`retained`); a missing figure is None.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from reverie.config import SleepConfig
from reverie.dream.run import reason_kind  # the kinds `reverie dream` counts its drops by

# The gate's bounds for what was stored without its settings: the defaults.
RISE = SleepConfig.model_fields["max_perplexity_rise"].default
DROP = SleepConfig.model_fields["max_vendi_drop"].default


def _json(text) -> dict | list:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, (dict, list)) else {}


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def numeric(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass
class Night:
    id: int
    status: str
    started_at: str
    finished_at: str | None
    seed: int
    config: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_row(cls, row) -> Night:
        return cls(row["id"], row["status"], row["started_at"], row["finished_at"], row["seed"],
                   _dict(_json(row["config"])), _dict(_json(row["timings"])), _dict(_json(row["metrics"])))

    def figures(self, which: str) -> dict:
        """'base', 'reference' (the adapter in use before) or 'candidate'; {} when not stored."""
        return _dict(_dict(self.metrics.get("figures")).get(which))

    def figure(self, which: str, key: str) -> float | None:
        value = self.figures(which).get(key)
        if isinstance(value, dict):  # a figure stored with its details: its accuracy
            value = value.get("accuracy")
        if isinstance(value, list):  # per question (the gold answers' log-probs): their mean
            values = [numeric(v) for v in value]
            value = sum(values) / len(values) if values and None not in values else None
        return numeric(value)

    @property
    def forgetting_text(self) -> str | None:
        """The name of the text the night's perplexity was measured on, when it recorded one."""
        text = _dict(self.metrics.get("figures")).get("forgetting_text")
        return Path(text).name if isinstance(text, str) and text else None

    @property
    def sleep_settings(self) -> dict:
        return _dict(_dict(self.config.get("settings")).get("sleep"))

    def bound(self, key: str, default: float) -> float | None:
        """The gate's limit from the night's own settings: the perplexity ceiling
        (base x (1 + max_perplexity_rise)) or the Vendi floor (base x (1 - max_vendi_drop))."""
        if key == "perplexity":
            base, rise = self.figure("base", "perplexity"), numeric(self.sleep_settings.get("max_perplexity_rise"))
            return None if base is None else base * (1 + (default if rise is None else rise))
        base, drop = self.figure("base", "vendi"), numeric(self.sleep_settings.get("max_vendi_drop"))
        return None if base is None else base * (1 - (default if drop is None else drop))

    @property
    def strength(self) -> float | None:
        return numeric(_dict(_dict(self.metrics.get("figures")).get("strength")).get("chosen"))

    @property
    def checks(self) -> list[dict]:
        checks = self.metrics.get("checks")
        return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []

    @property
    def reasons(self) -> list[str]:
        """The failed checks' details, or why the night has no verdict."""
        failed = [f"{c.get('name', '?')}: {c.get('detail', '')}" for c in self.checks if not c.get("passed", True)]
        if failed or self.status in ("kept", "rejected"):
            return failed
        return {"running": ["still running (or killed: the next `reverie sleep` resumes it)"],
                "interrupted": ["interrupted: the next `reverie sleep` resumes it"],
                "failed": ["failed before its verdict"]}.get(self.status, [])

    @property
    def seconds(self) -> float | None:
        total = numeric(self.timings.get("total"))
        if total is not None:
            return float(total)
        try:
            return (datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)).total_seconds()
        except (TypeError, ValueError):
            return None

    @property
    def date(self) -> str:
        return (self.started_at or "").replace("T", " ")[:16]

    @property
    def dream_run(self) -> int | None:
        return _dict(self.config.get("dream")).get("run_id")


def load_nights(store) -> list[Night]:
    return [Night.from_row(r) for r in store.nights()]


# The parts of a night's dream set, in the order the bars show them.
PARTS = ("trained", "replayed", "quiz", "dropped")
_PART_OF_ROLE = {"train": "trained", "replay": "replayed", "quiz": "quiz"}


@dataclass
class DreamSet:
    by_generator: dict[str, Counter]  # generator -> Counter of PARTS
    reasons: Counter  # drop reason kind -> count
    examples: dict[str, str]  # drop reason kind -> one full reason

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_generator.values())


def night_dream_set(store, night: Night) -> DreamSet:
    """The dreams the night trained on, replayed or held out, and those its dream run dropped."""
    rows = store.conn.execute(
        "SELECT d.generator, d.status, d.drop_reason, n.role FROM dreams d "
        "LEFT JOIN night_dreams n ON n.dream_id = d.id AND n.night_id = ? "
        "WHERE n.night_id IS NOT NULL OR (d.run_id IS NOT NULL AND d.run_id = ?) ORDER BY d.id",
        (night.id, night.dream_run),
    ).fetchall()
    by_generator: dict[str, Counter] = {}
    reasons: Counter = Counter()
    examples: dict[str, str] = {}
    for r in rows:
        dropped = r["status"] == "dropped"
        part = "dropped" if dropped else _PART_OF_ROLE.get(r["role"])
        if part is None:  # kept by its run but not planned into this night
            continue
        by_generator.setdefault(r["generator"], Counter())[part] += 1
        if dropped:
            reason = r["drop_reason"] or "no reason recorded"
            kind = reason_kind(reason) or reason
            reasons[kind] += 1
            examples.setdefault(kind, reason)
    return DreamSet(by_generator, reasons, examples)


@dataclass
class ProbeRun:
    id: int
    label: str
    night_id: int | None
    created_at: str
    examples: dict[str, list[str]]  # prompt -> one answer per distinct cluster, largest first


def probe_runs(store) -> list[ProbeRun]:
    """Probe runs saved with `reverie probe --save LABEL` (their examples, not every answer)."""
    out = []
    for r in store.meter_runs("probe"):
        prompts = _dict(_json(r["metrics"])).get("prompts") or []
        examples = {p["prompt"]: [str(e) for e in p.get("examples") or []]
                    for p in prompts if isinstance(p, dict) and "prompt" in p}
        out.append(ProbeRun(r["id"], r["label"], r["night_id"], r["created_at"], examples))
    return out
