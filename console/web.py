"""Request helpers shared by the console's pages: configuration, templates, roles, CSRF, projects."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from console import levels, texts
from console.auth import Limits, SignedIn, tokens_equal
from console.stats import category_name
from nlp import taxonomy
from storage import repository as repo
from storage.database import Database
from storage.models import Project

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_COOKIE = "minyi_session"
LOGIN_COOKIE = "minyi_login"  # double-submit token of the sign-in form, before there is a session
# Keys of the shortcut that toggles each risk category in the review queue, in taxonomy order.
CATEGORY_KEYS = "1234567890qwer"
# Messages shown after a change are chosen by key, so nothing a visitor typed is echoed back.
NOTICES = {
    "saved": "已保存。",
    "reviewed": "已保存复核结果。",
    "signed": "已签署风险等级。",
    "rules": "已发布新版规则。",
    "texts": "已保存报告文字。",
    "notified": "状态已更新，并已通知相关群众。",
    "detached": "已移出该条意见。",
}


@dataclass(frozen=True)
class ConsoleConfig:
    limits: Limits = field(default_factory=Limits)
    # Set when the console is served over https (behind a reverse proxy): cookies then never travel in clear.
    secure_cookies: bool = False
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


DB_KEY = web.AppKey("db", Database)
CONFIG_KEY = web.AppKey("config", ConsoleConfig)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)
WHO_KEY = web.RequestKey("who", SignedIn)


def _local(value: datetime | None, request_zone: tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(request_zone).strftime(fmt) if value else ""


def make_templates(zone: tzinfo) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("console", "templates"),
        autoescape=True,  # every resident's word is text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["local"] = lambda value, fmt="%Y-%m-%d %H:%M": _local(value, zone, fmt)
    environment.filters["pct"] = lambda value: "—" if value is None else f"{value:.1%}"
    environment.filters["category"] = category_name
    environment.filters["level"] = levels.level_name
    environment.globals.update(
        STAGES=texts.STAGES,
        ITEM_STATUSES=texts.ITEM_STATUSES,
        REVIEW_STATUSES=texts.REVIEW_STATUSES,
        ROLES=texts.ROLES,
        CHANNELS=texts.CHANNELS,
        signal_name=texts.signal_name,
        CATEGORIES=[(code, category_name(code)) for code in taxonomy.codes()],
        CATEGORY_KEYS=CATEGORY_KEYS,
        LEVELS=levels.LEVELS,
        query=lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")}),
    )
    return environment


def signed_in(request: web.Request) -> SignedIn:
    who = request.get(WHO_KEY)
    if not isinstance(who, SignedIn):
        raise web.HTTPFound("/login")
    return who


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Only accounts with one of these roles reach the handler; others get 403, strangers a sign-in."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            who = signed_in(request)
            if who.role not in roles:
                raise forbidden(request)
            return await handler(request)

        checked.roles = roles  # type: ignore[attr-defined]
        return checked

    return wrap


ALL_ROLES = ("assessor", "admin", "gridworker")
ASSESSORS = ("assessor", "admin")
ADMINS = ("admin",)


def forbidden(request: web.Request) -> web.HTTPForbidden:
    return web.HTTPForbidden(
        text=render_text(request, "error.html", status=403, message="您的账号没有权限查看这一页。"),
        content_type="text/html",
    )


def not_found(request: web.Request) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=render_text(request, "error.html", status=404, message="没有这一页。"), content_type="text/html"
    )


def render_text(request: web.Request, template: str, **context: Any) -> str:
    environment = request.app[TEMPLATES_KEY]
    who = request.get(WHO_KEY)
    notice_key = request.query.get("notice", "")
    return environment.get_template(template).render(
        who=who if isinstance(who, SignedIn) else None,
        csrf=who.csrf_token if isinstance(who, SignedIn) else "",
        notice=NOTICES.get(notice_key, ""),
        path=request.path,
        **{"status": 200, **context},
    )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return web.Response(
        text=render_text(request, template, status=status, **context), status=status, content_type="text/html"
    )


async def check_csrf(request: web.Request, form: Any) -> None:
    who = signed_in(request)
    if not tokens_equal(str(form.get("csrf", "")), who.csrf_token):
        raise web.HTTPBadRequest(
            text=render_text(request, "error.html", status=400, message="表单已过期，请返回刷新后重试。"),
            content_type="text/html",
        )


async def load_project(request: web.Request, session: AsyncSession) -> Project:
    project = await repo.project_by_code(session, request.match_info["code"])
    if project is None:
        raise not_found(request)
    return project


def local_path(target: str, prefix: str) -> str:
    """A redirect target only within the console and under `prefix`: never another site."""
    if target.startswith(prefix) and not target.startswith("//") and "\\" not in target:
        return target
    return prefix


def audit_view(session: AsyncSession, request: web.Request, what: str, target: str, **detail: Any) -> None:
    """Views of personal data are logged like changes."""
    who = signed_in(request)
    repo.audit(session, who.actor, f"view.{what}", target, path=request.path_qs[:200], **detail)


@contextlib.asynccontextmanager
async def changing(request: web.Request) -> AsyncIterator[AsyncSession]:
    """A write transaction that commits when the handler answers with a redirect from inside it."""
    redirect: web.HTTPRedirection | None = None
    async with request.app[DB_KEY].transaction() as session:
        try:
            yield session
        except web.HTTPRedirection as answer:
            redirect = answer
    if redirect is not None:
        raise redirect
