"""Publishing a survey file: its parsed questionnaire becomes a version of a project (the command line,
the demo, the terminal preview, load runs and tests all publish through here)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.questionnaire import Questionnaire
from bot.survey_file import survey_hash
from storage import repository as repo
from storage.models import Project, QuestionnaireVersion


async def publish(
    session: AsyncSession, project: Project, questionnaire: Questionnaire, source: str
) -> tuple[QuestionnaireVersion, bool]:
    """The version of `project` that `source` (already parsed as `questionnaire`) is, and whether it was
    created now; RepositoryError if its id and version were published before with other content."""
    return await repo.publish_version(
        session,
        project,
        survey_id=questionnaire.id,
        version=questionnaire.version,
        title=questionnaire.title,
        source=source,
        content_hash=survey_hash(source),
    )
