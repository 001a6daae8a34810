"""Turn: what a flow function gets for one update — the transaction, the update, the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Incoming

if TYPE_CHECKING:
    from bot.engine import DialogEngine


@dataclass(slots=True)
class Turn:
    session: AsyncSession
    incoming: Incoming
    engine: DialogEngine

    @property
    def chat_id(self) -> int:
        return self.incoming.chat_id
