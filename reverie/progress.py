"""One progress event for every long step: reading, dreaming, training, quizzing, the night.

    from reverie.progress import Event
    rv.sleep(progress=lambda e: print(e.phase, e.done, e.total, e.detail))

A step reports `Event(phase, done, total, detail)` as it goes: `done` of `total` units (files,
work items, texts, steps), or None for both when it only says what it is doing ("quiz", with
the model and measurement in `detail`). `figures` carries numbers a caller may want (a training
step's loss and tokens/s). The CLI draws one bar per phase on a terminal and writes a line every
few seconds otherwise (reverie.cli.app.live_progress).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    phase: str  # "read", "dream", "baseline", "replay", "teacher answers", "teacher targets", "train", ...
    done: int | None = None
    total: int | None = None
    detail: str = ""
    figures: dict = field(default_factory=dict)


Progress = Callable[[Event], None]


def counter(progress: Progress | None, phase: str, total: int) -> Callable[[int], None] | None:
    """A backend's "k more texts finished" callback, reported as `phase` events."""
    if progress is None:
        return None
    done = [0]

    def say(k: int) -> None:
        done[0] += k
        progress(Event(phase, done[0], total))

    return say
