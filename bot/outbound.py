"""Sending outside an update: the one call a transport offers to campaigns and alerts, and its failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.messages import Reply


@dataclass(frozen=True, slots=True)
class Failure:
    """How a transport classifies an exception from its framework when sending."""

    retry: bool
    delay: float = 0.0  # a flood wait (429 retry_after), in seconds; 0 for other failures
    blocked: bool = False  # 403: the user blocked the bot; never retry
    # No answer came back (a timeout, a dropped connection): the message may have been delivered, so a
    # sender that must not send twice does not retry it.
    ambiguous: bool = False

    @property
    def flood(self) -> bool:
        return self.retry and self.delay > 0


class SendFailed(Exception):
    """One Bot API call failed; `failure` says whether and when it may be tried again."""

    def __init__(self, failure: Failure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


class Outbound(Protocol):
    """One Bot API call for one Reply, outside any update: what background senders need from a transport."""

    async def send(self, reply: Reply) -> int | None:
        """Make the call; returns the new message's id for "send" and "photo". Raises SendFailed."""
        ...
