"""The console's aiohttp application: security headers, sessions, CSRF, sign-in and the routes."""

from __future__ import annotations

import logging
import secrets
from importlib import resources

from aiohttp import web

from console import assessment, auth, views
from console.web import (
    CONFIG_KEY,
    DB_KEY,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    TEMPLATES_KEY,
    WHO_KEY,
    ConsoleConfig,
    Handler,
    make_templates,
    render,
    signed_in,
)
from storage import accounts
from storage import repository as repo
from storage.database import Database
from storage.models import utcnow

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # Scripts and styles only from the console itself: no inline code, no CDN, nothing framed.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        response = error
        _headers(request, response)
        raise
    _headers(request, response)
    return response


def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.app[CONFIG_KEY].secure_cookies:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/"):
        # Pages show personal data: never keep them in a shared cache or the browser's history cache.
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        config = request.app[CONFIG_KEY]
        db = request.app[DB_KEY]
        async with db.reading() as session:
            who, action = await auth.read_session(session, token, config.limits)
        if action:
            async with db.transaction() as session:
                await auth.write_session(session, token, action)
        if who is not None:
            request[WHO_KEY] = who
    if request.path.startswith("/static/") or request.path in ("/login", "/healthz", "/favicon.ico"):
        return await handler(request)
    if WHO_KEY not in request:
        if request.method == "GET":
            raise web.HTTPFound("/login")
        raise web.HTTPUnauthorized(text="请先登录。")
    return await handler(request)


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=request.app[CONFIG_KEY].secure_cookies,
        path="/",
    )


async def login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    # Reuse the token of an earlier visit: a second tab, or the browser fetching /favicon.ico through the
    # sign-in redirect, must not invalidate the form already on screen.
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
        token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, login_token=token, message=message)
    _cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if WHO_KEY in request:
        raise web.HTTPFound("/")
    return await login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not auth.tokens_equal(str(form.get("login_token", "")), request.cookies.get(LOGIN_COOKIE, "")):
        return await login_page(request, "登录页已过期，请重新输入。", 400)
    name = str(form.get("name", "")).strip()[:64]
    password = str(form.get("password", ""))
    address = request.remote or ""
    config = request.app[CONFIG_KEY]
    db = request.app[DB_KEY]
    async with db.reading() as session:
        if await auth.throttled(session, name, address, config.limits):
            locked = True
        else:
            locked = False
            account = await accounts.account_by_name(session, name)
    if locked:
        async with db.transaction() as session:
            repo.audit(session, "anonymous", "login.throttled", f"name:{name}", address=address)
        minutes = int(config.limits.window.total_seconds() // 60)
        return await login_page(request, f"登录失败次数过多，请 {minutes} 分钟后再试。", 429)
    ok = await auth.check_password(account, password)
    async with db.transaction() as session:
        if not ok or account is None:
            accounts.record_login_failure(session, name, address)
            repo.audit(session, "anonymous", "login.failed", f"name:{name}", address=address)
            failed = True
        else:
            failed = False
            await accounts.forget_login_failures(session, name)
            idle, created = auth.expired_before(config.limits, utcnow())
            await accounts.close_sessions_before(session, idle, created)
            token = await auth.start_session(session, account)
            repo.audit(session, f"account:{account.id}", "login", f"account:{account.id}", address=address)
    if failed:
        return await login_page(request, "账号或密码不对。", 401)
    response = web.HTTPFound("/")
    _cookie(response, request, SESSION_COOKIE, token, int(config.limits.absolute.total_seconds()))
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    who = signed_in(request)
    form = await request.post()
    if not auth.tokens_equal(str(form.get("csrf", "")), who.csrf_token):
        raise web.HTTPBadRequest(text="表单已过期。")
    async with request.app[DB_KEY].transaction() as session:
        await accounts.close_session(session, who.token_hash)
        repo.audit(session, who.actor, "logout", who.actor)
    response = web.HTTPFound("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def favicon(_request: web.Request) -> web.Response:
    return web.Response(status=204)


async def prepare_rules(app: web.Application) -> None:
    # Pages read the level rules inside read-only transactions; the first version is written here, once.
    async with app[DB_KEY].transaction() as session:
        await assessment.current_rules(session)


def create_app(db: Database, config: ConsoleConfig | None = None) -> web.Application:
    config = config or ConsoleConfig()
    app = web.Application(middlewares=[security_headers, sessions], client_max_size=2 * 1024 * 1024)
    app[DB_KEY] = db
    app[CONFIG_KEY] = config
    app[TEMPLATES_KEY] = make_templates(config.zone)
    static = resources.files("console").joinpath("static")
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", str(static), name="static")
    views.add_routes(app)
    app.on_startup.append(prepare_rules)
    return app
