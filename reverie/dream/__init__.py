"""Dream: turn what the model read into diverse, grounded synthetic text, measured every time.

    from reverie.app import Reverie
    rv = Reverie.from_settings()
    result = rv.dream(budget=20000, generators=["qa", "facts", "dream"])
    result.comparison["sets"]["dreams"]["vendi"], result.comparison["sets"]["baseline"]["vendi"]
    # per source chunk at equal count; result.meter holds each whole set's own meter

Modules: base (work items, the generator protocol, parsing), generators/ (one module per
generator, prompts in TEMPLATES), entropy (personas, audiences, random words, distant chunks),
gate (the quality gate), select (MinHash dedup, diversity selection), baseline (the naive
prompt), run (the resumable run), export (jsonl/parquet). From the command line:
`reverie dream --budget 20000` and `reverie dreams [--dropped] [--export FILE]`.
"""

from reverie.dream.generators import GENERATORS
from reverie.dream.run import DreamContext, DreamResult, run_dream

__all__ = ["GENERATORS", "DreamContext", "DreamResult", "run_dream"]
