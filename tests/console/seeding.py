"""Submissions, grievances and tags written straight into the database, as the bot would leave them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot.publishing import publish
from bot.survey_file import parse_survey
from nlp.redact import redact
from storage import repository as repo
from storage.database import Database
from storage.models import Alert, Answer, AnswerTag, Person, Submission, SubmissionStatus

EXAMPLE_SURVEY = Path(__file__).resolve().parents[2] / "examples" / "road-widening.yaml"


@dataclass
class Project:
    id: int
    code: str
    version_id: int
    grid_ids: dict[str, int]


async def create_project(db: Database, survey: Path, code: str) -> Project:
    source = survey.read_text(encoding="utf-8")
    questionnaire = parse_survey(source)
    async with db.transaction() as session:
        project = await repo.create_project(session, code, "人民路拓宽工程")
        version, _ = await publish(session, project, questionnaire, source)
        grids = {
            grid: (await repo.upsert_grid(session, project.id, grid, name, "东风社区", 100)).id
            for grid, name in (("G01", "东风一网格"), ("G02", "人民二网格"))
        }
    return Project(project.id, code, version.id, grids)


START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
GRIEVANCES = [
    ("补偿标准太低了，我家房子评估价比周边二手房低一半，过渡费也不够租房。", ["compensation"]),
    ("晚上施工噪音太大，老人孩子睡不着觉，灰尘也大。", ["environment"]),
    ("封路以后绕路太远，公交站也取消了，出行很不方便。", ["traffic"]),
    ("我的店在路边，修路两年生意肯定没了，靠什么生活？", ["livelihood"]),
    ("征收公告都没看到，没人通知我们开会。", ["disclosure", "procedure"]),
    ("如果补偿不合理，我们就集体去市政府上访。", ["compensation", "collective_action"]),
    ("路修宽了是好事，希望早点开工。", []),
    ("村里的补偿款分配账目不公开，村干部说了算。", ["collective_assets", "trust"]),
]
URGENT_TEXTS = {5: ["collective_petition"]}


@dataclass
class Seeded:
    project: Project
    submitted: int
    proxy: int
    attitudes: dict[str, int] = field(default_factory=dict)
    grievance_ids: list[int] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)


ATTITUDES = ["support", "conditional", "oppose", "indifferent"]


def _answers(rng: random.Random, attitude: str) -> dict[str, object]:
    return {
        "relation": rng.choice(["owner", "tenant", "business", "nearby"]),
        "community": rng.choice(["dongfeng", "renmin"]),
        "distance": rng.choice(["inside", "within50", "within200"]),
        "awareness": rng.choice(["well", "heard", "unaware"]),
        "necessity": rng.randint(1, 4),
        "effect": rng.choice(["better", "little", "worse"]),
        "attitude": attitude,
        "construction_concerns": rng.sample(["noise", "dust", "detour", "cracks", "business"], 2),
        "operation_concerns": rng.sample(["traffic_noise", "crossing", "parking"], 1),
        "disturbance": rng.choice(["accept", "if_managed", "reject"]),
        "instability": rng.choice(["unlikely", "possible", "likely"]),
    }


async def seed(
    db: Database,
    submissions: int = 40,
    *,
    code: str = "RW",
    seed_value: int = 7,
    grievance_every: int = 2,
    evil_text: str | None = None,
) -> Seeded:
    """`submissions` submitted questionnaires over two grids, a quarter by grid workers at the door, every
    `grievance_every`-th with a tagged grievance; `evil_text` (if given) is the first grievance's text."""
    rng = random.Random(seed_value)
    project = await create_project(db, EXAMPLE_SURVEY, code=code)
    result = Seeded(project, 0, 0)
    grids = list(project.grid_ids.values())
    async with db.transaction() as session:
        people = [
            {
                "telegram_id": 10_000_000 + seed_value * 1_000_000 + i,
                "role": "resident",
                "display_name": "",
                "state": "",
                "blocked_bot": False,
                "created_at": START,
            }
            for i in range(submissions)
        ]
        ids = (await session.execute(insert(Person).returning(Person.id), people)).scalars().all()
        result.person_ids = list(ids)
        worker = (
            await session.execute(
                insert(Person).returning(Person.id),
                [
                    {
                        "telegram_id": 99_000 + seed_value,
                        "role": "gridworker",
                        "display_name": "网格员",
                        "state": "",
                        "blocked_bot": False,
                        "created_at": START,
                    }
                ],
            )
        ).scalar_one()
        rows = []
        for i in range(submissions):
            proxy = i % 4 == 3
            at = START + timedelta(hours=i * 7 % (24 * 9), minutes=i % 60)
            rows.append(
                {
                    "receipt": f"MY-{code[:2]}{i // 10000:02d}-{i % 10000:04d}",
                    "project_id": project.id,
                    "questionnaire_version_id": project.version_id,
                    "grid_id": grids[i % 2],
                    "person_id": None if proxy else ids[i],
                    "entered_by_id": worker if proxy else None,
                    "channel": "visit" if proxy else "telegram",
                    "status": SubmissionStatus.SUBMITTED,
                    "current_step": "summary",
                    "draft": {},
                    "editing": False,
                    "anonymous": False,
                    "consent_at": at,
                    "started_at": at,
                    "updated_at": at,
                    "submitted_at": at + timedelta(minutes=5),
                    "answer_count": 12,
                }
            )
            result.submitted += 1
            result.proxy += proxy
        submission_ids = (
            (await session.execute(insert(Submission).returning(Submission.id), rows)).scalars().all()
        )
        answers = []
        texts: dict[int, int] = {}
        for i, submission_id in enumerate(submission_ids):
            attitude = ATTITUDES[[0, 0, 1, 2, 0, 3, 1, 2][i % 8]]
            result.attitudes[attitude] = result.attitudes.get(attitude, 0) + 1
            for seq, (question, value) in enumerate(_answers(rng, attitude).items(), start=1):
                answers.append(
                    {
                        "submission_id": submission_id,
                        "question_code": question,
                        "value": {"v": value},
                        "raw_text": "",
                        "seq": seq,
                        "answered_at": rows[i]["started_at"],
                        "update_id": None,
                    }
                )
            if i % grievance_every == 0 or i % len(GRIEVANCES) == 5:
                texts[len(answers)] = i
                text = evil_text if evil_text and i == 0 else GRIEVANCES[i % len(GRIEVANCES)][0]
                answers.append(
                    {
                        "submission_id": submission_id,
                        "question_code": "suggestions",
                        "value": {"v": text},
                        "raw_text": text,
                        "seq": 20,
                        "answered_at": rows[i]["started_at"],
                        "update_id": None,
                    }
                )
        answer_ids = (await session.execute(insert(Answer).returning(Answer.id), answers)).scalars().all()
        tags, alerts = [], []
        for position, i in texts.items():
            answer_id = answer_ids[position]
            text, categories = GRIEVANCES[i % len(GRIEVANCES)]
            if evil_text and i == 0:
                text = evil_text
            signals = URGENT_TEXTS.get(i % len(GRIEVANCES), [])
            tags.append(
                {
                    "answer_id": answer_id,
                    "redacted": redact(text).text,
                    "urgent": bool(signals),
                    "signals": signals,
                    "categories": categories,
                    "scores": {c: 0.8 for c in categories},
                    "uncertain": i % 3 == 0,
                    "model": "risk-test",
                    "tagged_at": rows[i]["started_at"],
                }
            )
            result.grievance_ids.append(answer_id)
            if signals:
                alerts.append(
                    {
                        "answer_id": answer_id,
                        "submission_id": submission_ids[i],
                        "project_id": project.id,
                        "grid_id": rows[i]["grid_id"],
                        "signals": signals,
                        "redacted": text,
                        "status": "queued",
                        "created_at": rows[i]["started_at"],
                    }
                )
        if tags:
            await session.execute(insert(AnswerTag), tags)
        if alerts:
            await session.execute(insert(Alert), alerts)
    return result
