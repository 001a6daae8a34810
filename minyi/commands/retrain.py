"""Retrain the risk model on the seed corpus plus the categories assessors confirmed in the console.

`minyi nlp train --from-db --out DIR` calls `from_db_command`; the training part of the seed corpus is
kept, so the seed's held-out part still measures the new model fairly.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from minyi.commands import CommandError
from minyi.commands.common import database, run, settings
from storage.models import Answer, AnswerTag, Review, ReviewStatus, Submission, SubmissionStatus


async def confirmed_examples() -> list[tuple[str, tuple[str, ...]]]:
    """(redacted text, confirmed categories) of every grievance a person decided on; "not a grievance"
    becomes a text with no category. Redacted text only: names and numbers never enter a model file."""
    config = settings()
    async with database(config) as db, db.reading() as session:
        rows = await session.execute(
            select(AnswerTag.redacted, Review.status, Review.categories)
            .join(Review, Review.answer_id == AnswerTag.answer_id)
            .join(Answer, Answer.id == AnswerTag.answer_id)
            .join(Submission, Submission.id == Answer.submission_id)
            .where(
                Review.status.in_([ReviewStatus.CONFIRMED, ReviewStatus.NOT_GRIEVANCE]),
                Review.answer_seq == Answer.seq,  # the decision is about the text as it stands
                Submission.status != SubmissionStatus.WITHDRAWN,
            )
            .order_by(AnswerTag.answer_id)
        )
        return [
            (text, tuple(categories or ()) if status == ReviewStatus.CONFIRMED else ())
            for text, status, categories in rows.all()
            if text.strip()
        ]


def from_db_command(args: argparse.Namespace) -> int:
    from nlp import artifacts, taxonomy
    from nlp.classifier import fit_multilabel
    from nlp.corpus import data_hash, load_seed, seed_split
    from nlp.train import RISK_CONFIG

    confirmed = run(confirmed_examples())
    if not confirmed:
        raise CommandError(
            "no confirmed categories in the database yet; review grievances in the console first"
        )
    train, _ = seed_split(load_seed())
    texts = [*train.texts, *(text for text, _ in confirmed)]
    labels = [*train.labels, *(codes for _, codes in confirmed)]
    print(
        f"training on {len(train.texts)} seed texts and {len(confirmed)} confirmed grievances",
        file=sys.stderr,
    )
    model, report = fit_multilabel(texts, labels, taxonomy.codes(), RISK_CONFIG, args.folds)
    saved = artifacts.save(
        model,
        args.out,
        data_hash=data_hash(texts, labels),
        report=report,
        extra={"data_source": "seed+confirmed", "confirmed": len(confirmed)},
    )
    print(f"cross-validated micro F1 {report.micro_f1:.3f}, macro F1 {report.macro_f1:.3f}")
    print(f"saved the model to {saved}")
    return 0
