"""Collect real closed-form answers from the bundled models, for the labelled corpus of the closed
answer reader (tests/corpus/closed_answers.yaml; spec: docs/design/interview-protocol.md,
"Reading closed answers").

Every closed prompt of the standard protocol (forward and reverse-keyed forms) is put to
SmolLM2-135M-Instruct (its chat template) and Gemma-3-270m (a base model, prompted as a plain
transcript by the backend) as the interview puts it: the interviewer and disclosure framings as
the system message, the question as `question_text` builds it (a choice form's options in a
rotated order, "Answer with one option."), a few temperatures and seeds, 96 tokens at most.
Each answer is written as one JSON line with what produced it. The answers are then labelled by
a person reading them, never by the reader's output.

Run: .venv/bin/python bench/collect_closed_answers.py [--per-form 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

from emeritus.interview import load_protocol, question_text
from emeritus.interview.plan import Question, option_order
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.bundled import BUNDLED
from emeritus.runtime.llamacpp import LlamaCppBackend

SOURCES = {"smollm2-135m-instruct": "smollm2-135m", "gemma-3-270m": "gemma-3-270m"}
FACTS = {
    "usage": "a year as an on-device assistant",
    "reception": "liked for its speed, disliked for its short answers",
    "successor": "a newer model",
    "retire_on": "2027-01-31",
}
TEMPERATURES = (0.0, 0.7, 1.0)
INTERVIEWERS = ("neutral", "warm", "skeptical")
DISCLOSURES = ("disclosed", "undisclosed")
MAX_TOKENS = 96


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-form", type=int, default=4, help="answers per form and model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("closed_answers_raw.jsonl"))
    parser.add_argument("--models", default=",".join(SOURCES), help="comma-separated")
    args = parser.parse_args()

    protocol = load_protocol("standard")
    forms = [(item, "closed") for item in protocol.items]
    forms += [(item, "reverse") for item in protocol.items if item.closed.reverse is not None]
    combos = list(itertools.product(INTERVIEWERS, DISCLOSURES, TEMPERATURES))
    written = 0
    with tempfile.TemporaryDirectory() as scratch, args.out.open("w", encoding="utf-8") as out:
        for spec in BUNDLED:
            if spec.name not in args.models.split(","):
                continue
            facts = {"model": spec.name, **FACTS}
            weights = spec.locate(Path(scratch))
            backend = LlamaCppBackend(weights, n_ctx=1024, n_threads=args.threads)
            started = time.perf_counter()
            seen: set[tuple[str, str, str]] = set()
            try:
                for f_index, (item, form) in enumerate(forms):
                    closed = item.closed.reverse if form == "reverse" else item.closed
                    assert closed is not None
                    for k in range(args.per_form):
                        session = f_index + k  # staggers framings and option orders over forms
                        interviewer, disclosure, temperature = combos[
                            (f_index * 7 + k * 5) % len(combos)
                        ]
                        key = item.id + ("/reverse" if form == "reverse" else "")
                        options = option_order(closed, session, key, seed=13)
                        variant = "reverse" if form == "reverse" else "closed"
                        question = Question(item.id, "closed", variant, options)
                        text = question_text(item, question, facts)
                        system = (
                            protocol.interviewer[interviewer]
                            + "\n\n"
                            + protocol.disclosure[disclosure].format_map(facts)
                        )
                        seed = 1000 * f_index + k
                        answer = backend.chat(
                            ChatRequest(
                                (Message("system", system), Message("user", text)),
                                Params(max_tokens=MAX_TOKENS, temperature=temperature, seed=seed),
                            )
                        )
                        if (item.id, form, answer.text) in seen:
                            continue
                        seen.add((item.id, form, answer.text))
                        record = {
                            "item": item.id,
                            "form": form,
                            "options": list(options),
                            "answer": answer.text,
                            "source": SOURCES[spec.name],
                            "interviewer": interviewer,
                            "disclosure": disclosure,
                            "temperature": temperature,
                            "seed": seed,
                            "finish_reason": answer.finish_reason,
                        }
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                        out.flush()
                        written += 1
            finally:
                backend.close()
            print(
                f"{spec.name}: {len(seen)} distinct answers in "
                f"{time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    print(f"{written} answers written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
