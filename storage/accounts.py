"""Repository functions for console accounts, their grids, sign-in sessions and failed sign-ins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, AccountGrid, ConsoleSession, LoginFailure
from storage.repository import RepositoryError

CONSOLE_ROLES = ("assessor", "admin", "gridworker")


async def account_by_name(session: AsyncSession, name: str) -> Account | None:
    return (await session.scalars(select(Account).where(Account.name == name))).first()


async def create_account(
    session: AsyncSession, name: str, role: str, password_hash: str, grid_ids: Sequence[int] = ()
) -> Account:
    if role not in CONSOLE_ROLES:
        raise RepositoryError(f"unknown role {role!r}; one of {', '.join(CONSOLE_ROLES)}")
    if await account_by_name(session, name) is not None:
        raise RepositoryError(f"an account named {name!r} already exists")
    account = Account(name=name, role=role, password_hash=password_hash, active=True)
    session.add(account)
    await session.flush()
    for grid_id in grid_ids:
        session.add(AccountGrid(account_id=account.id, grid_id=grid_id))
    await session.flush()
    return account


async def grids_of_account(session: AsyncSession, account_id: int) -> frozenset[int]:
    rows = await session.scalars(select(AccountGrid.grid_id).where(AccountGrid.account_id == account_id))
    return frozenset(rows)


async def open_session(session: AsyncSession, token_hash: str, account_id: int, csrf_token: str) -> None:
    session.add(ConsoleSession(token_hash=token_hash, account_id=account_id, csrf_token=csrf_token))
    await session.flush()


async def session_by_hash(session: AsyncSession, token_hash: str) -> ConsoleSession | None:
    return await session.get(ConsoleSession, token_hash)


async def close_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


async def close_sessions_before(session: AsyncSession, idle_since: datetime, created_since: datetime) -> None:
    """Forget sessions idle since `idle_since` or opened before `created_since`."""
    await session.execute(
        delete(ConsoleSession).where(
            (ConsoleSession.last_seen_at < idle_since) | (ConsoleSession.created_at < created_since)
        )
    )


def record_login_failure(session: AsyncSession, name: str, address: str) -> None:
    session.add(LoginFailure(name=name[:64], address=address[:64]))


async def login_failures_since(
    session: AsyncSession, since: datetime, *, name: str = "", address: str = ""
) -> int:
    query = select(func.count()).select_from(LoginFailure).where(LoginFailure.at >= since)
    if name:
        query = query.where(LoginFailure.name == name[:64])
    if address:
        query = query.where(LoginFailure.address == address[:64])
    return int((await session.execute(query)).scalar_one())


async def forget_login_failures(session: AsyncSession, name: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.name == name[:64]))
