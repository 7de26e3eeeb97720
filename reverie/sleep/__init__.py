"""Sleep: distil a night's dreams into a LoRA adapter, verify it, keep it or roll it back.

    from reverie.app import Reverie
    rv = Reverie.from_settings()
    result = rv.sleep(budget=20000, quiz_file="quiz.jsonl")   # dream + train + quiz + gate
    result.status                                             # 'kept' or 'rejected'

Modules: data (chat examples, loss masks, batches), regularisers (KL to base, entropy floor),
checkpoint (resumable training state), train (the loop), adapters (PEFT files, base checks,
merge), gate (keep or roll back), records (the night's dreams in the store), night (one night).
From the command line: `reverie sleep`, `reverie quiz`, `reverie adapters`, `reverie use`,
`reverie merge`.
"""

from reverie.sleep.night import NightResult, run_night

__all__ = ["NightResult", "run_night"]
