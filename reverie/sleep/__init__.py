"""Sleep: distil a night's dreams into a LoRA adapter, verify it, keep it or roll it back.

    from reverie.app import Reverie
    rv = Reverie.from_settings()
    result = rv.sleep(budget=20000, quiz_file="quiz.jsonl")   # dream + train + quiz + gate
    result.status                                             # 'kept' or 'rejected'

Modules, in the order a night runs them: night (one night, one function per step), records
(the night's dreams in the store), distill (queries, the teacher's answers and targets), data
(chat examples, loss masks, batches), self_replay (the base model's own general text), train (the
loop), regularisers (KL terms, entropy floor), checkpoint (resumable training state), verdict
(keep or roll back). LoRA files, strengths and merging are reverie.models.lora.
From the command line: `reverie sleep`, `reverie quiz`, `reverie adapters`, `reverie use`,
`reverie merge`.
"""

from reverie.sleep.night import NightContext, NightResult, run_night

__all__ = ["NightContext", "NightResult", "run_night"]
