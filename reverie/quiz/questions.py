"""Quiz questions: from a user's JSONL file, or held out from the night's question-answer dreams.

    from reverie.quiz.questions import load_questions, holdout, held_out_questions
    load_questions("quiz.jsonl")                    # [Question(question, answer), ...]
    quiz_ids = holdout(qa_dreams, share=0.15, seed=7)   # dream ids never trained on
    held_out_questions(store)                       # every night's held-out questions

A JSONL line is {"question": "...", "answer": "..."}; `answer` may also be a list of accepted
answers; `context` (the passage that answers it) and its `title` are optional: `reverie quiz
--lookup` answers with that passage in front of the question too (the open-book ceiling). Held-out questions are question-answer dreams (qa, cloze, spar: "Q: ...\\nA: ...")
recorded in `night_dreams` with role 'quiz': no night ever trains on them, so they test whether the
facts came through the other dreams of the same chunk.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from reverie.answers import normalize
from reverie.dream.base import parse_qa
from reverie.errors import ReverieError


@dataclass(frozen=True)
class Question:
    question: str
    answer: str | list[str]
    context: str | None = None  # the gold passage, when the quiz file gives one (`reverie quiz --lookup`)
    title: str | None = None  # its title


def load_questions(path: Path | str) -> list[Question]:
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReverieError(f"cannot read the quiz file {path}: {exc.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ReverieError(f"{path}:{n}: not a JSON object") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row.get("answer"):
            raise ReverieError(f'{path}:{n}: expected {{"question": "...", "answer": "..."}}')
        answer = row["answer"]
        if not isinstance(answer, str) and not (isinstance(answer, list) and all(isinstance(a, str) for a in answer)):
            raise ReverieError(f"{path}:{n}: answer must be a string or a list of strings")
        context, title = row.get("context"), row.get("title")
        if context is not None and not isinstance(context, str) or title is not None and not isinstance(title, str):
            raise ReverieError(f"{path}:{n}: context and title must be strings")
        out.append(Question(row["question"].strip(), answer, context or None, title or None))
    if not out:
        raise ReverieError(f"the quiz file {path} has no questions")
    return out


def dream_question(text: str) -> Question | None:
    """The question-answer pair of a question-answer dream (qa, cloze, spar), or None."""
    pairs = parse_qa(text)
    return Question(*pairs[0]) if pairs else None


def holdout(qa_dreams, share: float, seed: int) -> list[int]:
    """Ids of about `share` of the `qa` dreams (at least one when any parse), drawn with `seed`."""
    usable = [r["id"] for r in qa_dreams if dream_question(r["text"]) is not None]
    if not usable or share <= 0:
        return []
    k = max(1, round(share * len(usable)))
    return sorted(random.Random(seed).sample(usable, k))


def same_question(a: Question, b: Question) -> bool:
    return normalize(a.question) == normalize(b.question)


def held_out_questions(store, night_id: int | None = None, before: int | None = None) -> list[Question]:
    """The held-out quiz questions of one night, of the nights before `before` that belong to the
    same owner or user (what its retention is measured on), or of every night."""
    sql = "SELECT d.text FROM night_dreams n JOIN dreams d ON d.id = n.dream_id WHERE n.role = 'quiz'"
    args: tuple = ()
    if night_id is not None:
        sql += " AND n.night_id = ?"
        args = (night_id,)
    if before is not None:
        sql += (" AND n.night_id < ? AND (SELECT user_id FROM nights WHERE id = n.night_id) IS "
                "(SELECT user_id FROM nights WHERE id = ?)")
        args += (before, before)
    rows = store.conn.execute(sql + " ORDER BY d.id", args).fetchall()
    questions = [dream_question(r["text"]) for r in rows]
    return [q for q in questions if q is not None]
