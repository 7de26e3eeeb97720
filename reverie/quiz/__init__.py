"""Quiz: closed-book questions scored as SQuAD scores them, plus forgetting, diversity, answer
length and drift from the base model.

    from reverie.quiz.run import quiz_models
    results = quiz_models(rv.store, rv.settings, rv.load_base, adapters=["night-3"], quiz_file="quiz.jsonl")

Modules: score (SQuAD normalisation, answer contained, token F1), questions (JSONL files and
held-out dream questions), run (measuring one model: quiz, perplexity, probe, KL from the base). From the command
line: `reverie quiz [--quiz FILE] [--adapter NAME] [--general-text FILE]`.
"""
