"""What the benchmarks share: a scratch home on the converted default model, and cloze pairs.

    from common import scratch_base, cloze_pairs     # bench/ is on the path: run as scripts
    home, settings, loaded = scratch_base(models_dir, sleep={"rank": 8})
    data = cloze_pairs(passage)                      # [(question, answer span)]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def cloze_pairs(passage: str) -> list[tuple[str, str]]:
    """(question, span) for every answer span of the passage that makes an in-place question."""
    from reverie.dream import spans

    out = []
    for sentence in spans.sentences(passage):
        for span in spans.answer_spans(sentence):
            question = spans.in_situ_question(span)
            if question:
                out.append((question, span.text))
    return out


def scratch_base(models: Path | None, sleep: dict | None = None, prefix: str = "reverie-bench-"):
    """(home, settings, loaded base model) in a fresh temporary home; `models` reuses converted models."""
    from reverie.app import Reverie
    from reverie.config import load_settings

    home = Path(tempfile.mkdtemp(prefix=prefix))
    if models:
        (home / "models").symlink_to(models.resolve())
    settings = load_settings(home=home, overrides={"sleep": sleep or {}})
    return home, settings, Reverie.from_settings(settings, log=lambda m: print(m, file=sys.stderr)).load_base()
