"""Console fixtures: a seeded project, one account per role, and signed-in HTTP clients per account."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from console.app import create_app
from console.auth import Limits, hash_password
from console.web import ConsoleConfig
from storage import accounts
from storage.database import Database
from tests.conftest import _truncate as truncate
from tests.console.seeding import Seeded, seed

PASSWORDS = {"zhang": "assess-pass-2026", "root": "admin-pass-2026", "wang": "grid-pass-2026"}
ROLES = {"zhang": "assessor", "root": "admin", "wang": "gridworker"}
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> 补偿太低 电话13812345678'


@cache
def password_hash(name: str) -> str:
    # scrypt is slow on purpose; a cheaper cost (it travels with the hash) keeps the many sign-ins fast.
    return hash_password(PASSWORDS[name], n=2**12)


@dataclass
class Client:
    """One browser: its own cookies, the CSRF token of the last page it saw."""

    server: TestServer
    http: aiohttp.ClientSession
    csrf: str = ""

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(self.url(path), allow_redirects=False, **kw) as response:
            text = (await response.read()).decode("utf-8", errors="replace")
            found = re.search(r'name="csrf" value="([^"]+)"', text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(self, path: str, data: Any, *, csrf: bool = True) -> tuple[int, str, str]:
        """(status, body, Location) of a form post; the CSRF token is added unless `csrf` is False."""
        if csrf:
            data = [*(data.items() if isinstance(data, dict) else data), ("csrf", self.csrf)]
        async with self.http.post(self.url(path), data=data, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def login(self, name: str, password: str | None = None) -> int:
        async with self.http.get(self.url("/login")) as response:
            token = re.search(r'name="login_token" value="([^"]+)"', await response.text())
        assert token is not None
        form = {"login_token": token.group(1), "name": name, "password": password or PASSWORDS[name]}
        async with self.http.post(self.url("/login"), data=form, allow_redirects=False) as response:
            return response.status


@dataclass
class Console:
    db: Database
    server: TestServer
    seeded: Seeded
    clients: list[Client] = field(default_factory=list)

    async def client(self, name: str | None = None) -> Client:
        client = Client(self.server, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
        self.clients.append(client)
        if name is not None:
            assert await client.login(name) == 302
            await client.get("/p/RW")
        return client


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite for most console tests; a test that names PostgreSQL too parametrizes this indirectly."""
    if request.param == "sqlite":
        path = tmp_path / "minyi.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(truncate(url))
    return url


BOTH_DATABASES = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def console(db: Database) -> AsyncIterator[Console]:
    seeded = await seed(db, 24, evil_text=EVIL)
    async with db.transaction() as session:
        for name, role in ROLES.items():
            grids = [seeded.project.grid_ids["G01"]] if role == "gridworker" else []
            await accounts.create_account(session, name, role, password_hash(name), grids)
    server = TestServer(create_app(db, ConsoleConfig(limits=Limits())))
    await server.start_server()
    state = Console(db, server, seeded)
    yield state
    for client in state.clients:
        await client.http.close()
    await server.close()
