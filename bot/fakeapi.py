"""A local Telegram Bot API simulator on 127.0.0.1 that aiogram and python-telegram-bot talk to unchanged."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.multipart import MultipartResponseWrapper

from bot.simusers import BotMessage, Buttons, CallbackState, ChatLog, Click, SimUser

__all__ = ["ApiCall", "ApiError", "BotMessage", "Click", "FakeTelegram", "SimUser", "WebhookAttempt"]

# Values that are strings in the Bot API even when they look like numbers or JSON.
_STRING_FIELDS = frozenset(
    {
        "text", "caption", "callback_query_id", "url", "secret_token", "parse_mode", "language_code",
        "ip_address", "inline_message_id", "photo", "action", "description", "short_description",
        "business_connection_id", "message_effect_id",
    }
)  # fmt: skip
# Values that are JSON objects or arrays; form encodings send them as JSON strings.
_JSON_FIELDS = frozenset(
    {
        "reply_markup", "allowed_updates", "commands", "scope", "entities", "caption_entities",
        "link_preview_options", "reply_parameters",
    }
)  # fmt: skip
# What getUpdates delivers when the bot names no allowed_updates (Bot API: all but these three).
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_INLINE_ACTIONS = (
    "callback_data", "url", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "web_app", "copy_text", "callback_game", "pay",
)  # fmt: skip
_HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
     "tg-spoiler", "tg-emoji", "blockquote"}
)  # fmt: skip
_HTML_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)?([^<>]*)>|<|&(lt|gt|amp|quot|#\d+|#x[0-9A-Fa-f]+);")
_MARKDOWN_RESERVED = set(">#+-=|{}.!()[]")
_MARKDOWN_LINK = re.compile(r"!?\[((?:[^\]\\]|\\.)*)\]\((?:[^)\\]|\\.)*\)")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_PATH = re.compile(r"/bot([^/]+)/([A-Za-z]+)/?")
# What Telegram's flood control counts: new messages, not edits or callback answers.
_SEND_METHODS = frozenset({"sendMessage", "sendPhoto"})
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """A Bot API error response: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One Bot API method call as the simulator saw it."""

    method: str
    params: dict[str, Any]
    status: int
    time: float  # time.monotonic() when the request arrived


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of an update to the webhook; ``status`` is None when the connection failed."""

    update_id: int
    status: int | None
    time: float


@dataclass(slots=True)
class _FailRule:
    method: str
    status: int
    count: int
    retry_after: int | None
    chat_id: int | None
    description: str


class _Bucket:
    """A token bucket holding one second's worth of sends (at least one)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def wait(self, now: float) -> float:
        """Seconds until a send may pass; refills first."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass(eq=False, slots=True)
class _Entry:
    """A queued update. ``fresh`` marks a redelivery not yet handed out: offsets already past it spare it."""

    seq: int
    update: dict[str, Any]
    fresh: bool = False
    in_flight: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def kind(self) -> str:
        return next((key for key in self.update if key != "update_id"), "")


@dataclass(eq=False)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    backlog: deque[_Entry] = field(default_factory=deque)
    active: bool = True
    last_error_date: int | None = None
    last_error_message: str | None = None


_Handler = Callable[[dict[str, Any], "web.Request | None"], Awaitable[Any]]


class FakeTelegram:
    """The Bot API as aiogram and PTB see it, plus the residents' side of every chat.

    Bot calls arrive over HTTP at ``{url}/bot{token}/{method}``; residents are ``SimUser`` objects
    made by ``user()``. Updates wait in one queue that getUpdates reads or a webhook drains::

        async with FakeTelegram() as fake:
            # aiogram: Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
            # PTB:     Bot(fake.token, base_url=f"{fake.url}/bot")
            resident = fake.user()
            [question] = await resident.send("/start")
            click = await resident.click("同意")

    The bot can only write to chats it knows: a resident's chat exists once ``user()`` made them.
    """

    # Webhook retry back-off: short, so tests see retries without waiting like real Telegram does.
    webhook_retry_delay = 0.05
    webhook_max_retry_delay = 1.0
    webhook_timeout = 10.0

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "minyi_test_bot",
        host: str = "127.0.0.1",
        port: int = 0,
        first_update_id: int = 1,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.host = host
        self.port = port
        self.url = ""
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Minyi",
            "username": bot_username,
        }
        self.calls: list[ApiCall] = []
        self.webhook_attempts: list[WebhookAttempt] = []
        self.callbacks: dict[str, CallbackState] = {}
        self._chats: dict[int, ChatLog] = {}
        self._users: dict[int, SimUser] = {}
        self._user_ids = itertools.count(10_001)
        self._serials = itertools.count(1)
        self._update_ids = itertools.count(first_update_id)
        self._seqs = itertools.count()
        self._queue: dict[int, _Entry] = {}  # seq -> entry, in arrival order
        self._archive: dict[int, dict[str, Any]] = {}  # update_id -> update, for redeliver()
        self._wakeup = asyncio.Event()
        self._poll_generation = 0
        self._waiting_polls = 0
        self._allowed_updates: frozenset[str] | None = None
        self._webhook: _Webhook | None = None
        self._fail_rules: list[_FailRule] = []
        self._delays: dict[str, float] = {}
        self._overall_bucket: _Bucket | None = None
        self._chat_rate: float | None = None
        self._chat_buckets: dict[Any, _Bucket] = {}
        self._blocked: set[int] = set()
        self._files: dict[str, bytes] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._methods: dict[str, tuple[str, _Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "editMessageText": self._edit_message_text,
                "editMessageCaption": self._edit_message_caption,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        # Photos are uploaded in the request body; Telegram accepts up to 10 MB per photo.
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://{self.host}:{self.port}"
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        self._closing = True
        if self._webhook is not None:
            self._webhook.active = False
        self._wake()  # long polls return at once instead of holding shutdown up
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- residents and chats ----------------------------------------------------------------

    def user(
        self,
        user_id: int | None = None,
        first_name: str = "居民",
        language_code: str = "zh-hans",
        username: str | None = None,
    ) -> SimUser:
        """The resident with ``user_id`` (made on first use); without an id, a new one from 10001 up."""
        if user_id is None:
            user_id = next(uid for uid in self._user_ids if uid not in self._users)
        if user_id not in self._users:
            self._users[user_id] = SimUser(self, user_id, first_name, language_code, username)
        return self._users[user_id]

    def open_chat(self, chat: dict[str, Any]) -> ChatLog:
        """The chat with ``chat["id"]``, created on first use: the bot can only write to known chats."""
        if chat["id"] not in self._chats:
            self._chats[chat["id"]] = ChatLog(chat)
        return self._chats[chat["id"]]

    def chat_log(self, chat_id: int) -> ChatLog:
        return self._chats[chat_id]

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        log = self._chats.get(chat_id)
        return log.messages if log is not None else []

    def new_callback(self, chat_id: int) -> CallbackState:
        callback = CallbackState(callback_id=str(4_000_000_000_000 + self.next_serial()), chat_id=chat_id)
        self.callbacks[callback.callback_id] = callback
        return callback

    def next_serial(self) -> int:
        return next(self._serials)

    # -- error injection ----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        count: int = 1,
        retry_after: int | None = None,
        chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """The next ``count`` calls of ``method`` (to ``chat_id``, if given) fail with ``status``."""
        if status == 429 and retry_after is None:
            retry_after = 1  # Telegram never sends a 429 without one
        text = description or _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        self._fail_rules.append(
            _FailRule(
                method.lower(), status, count, retry_after, chat_id, text.format(retry_after=retry_after)
            )
        )

    def block(self, user_id: int) -> None:
        """The resident blocks the bot: sends to them now fail with 403, and the bot gets my_chat_member."""
        self._blocked.add(user_id)
        resident = self._users.get(user_id)
        if resident is not None:
            self._enqueue(
                {
                    "my_chat_member": {
                        "chat": resident.log.chat,
                        "from": resident.user_dict,
                        "date": int(time.time()),
                        "old_chat_member": {"user": self.bot_user, "status": "member"},
                        "new_chat_member": {"user": self.bot_user, "status": "kicked", "until_date": 0},
                    }
                }
            )

    def unblock(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def set_delay(self, method: str, seconds: float) -> None:
        """Answer ``method`` ("*" for all) ``seconds`` late. The call takes effect first, as on a slow
        network, so a client that times out and retries can send twice."""
        if seconds > 0:
            self._delays[method.lower()] = seconds
        else:
            self._delays.pop(method.lower(), None)

    def rate_limit(self, overall: float | None = 30.0, per_chat: float | None = None) -> None:
        """Refuse sends beyond ``overall`` a second in all, or ``per_chat`` a second in one chat, with 429
        and a retry_after, like Telegram's flood control. A second's worth may come as a burst.
        ``rate_limit(None)`` turns it off. Off by default: most tests are about dialogs, not pace."""
        self._overall_bucket = _Bucket(overall) if overall else None
        self._chat_rate = per_chat
        self._chat_buckets.clear()

    # -- updates ------------------------------------------------------------------------

    async def push_update(self, update: dict[str, Any]) -> int:
        return self._enqueue(update)

    async def redeliver(self, update_id: int) -> None:
        """Queue the update with ``update_id`` once more, unchanged, as Telegram does after a lost reply.

        It is delivered again even to a bot whose offset already passed it."""
        if update_id not in self._archive:
            raise KeyError(f"no update {update_id} was ever queued")
        self._add_entry(self._archive[update_id], fresh=True)

    def pending_updates(self) -> int:
        return len(self._queue)

    @property
    def waiting_polls(self) -> int:
        """getUpdates requests now held open waiting for updates: a bot that is polling has one."""
        return self._waiting_polls

    @property
    def polls_started(self) -> int:
        """getUpdates requests that have arrived so far, answered or not: a bot's first one means it is
        taking updates (`calls` records a long poll only when it is answered, seconds later)."""
        return self._poll_generation

    def calls_of(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def _enqueue(self, update: dict[str, Any]) -> int:
        update = dict(update)
        if "update_id" in update:
            given = int(update["update_id"])
            # Later automatic ids continue after a given one, as Telegram's only ever grow.
            self._update_ids = itertools.count(max(given + 1, next(self._update_ids)))
        else:
            update = {"update_id": next(self._update_ids), **update}
        self._archive[update["update_id"]] = update
        self._add_entry(update, fresh=False)
        return int(update["update_id"])

    def _add_entry(self, update: dict[str, Any], *, fresh: bool) -> None:
        entry = _Entry(next(self._seqs), update, fresh=fresh)
        self._queue[entry.seq] = entry
        if self._webhook is not None:
            self._webhook.backlog.append(entry)
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _wanted(self, entry: _Entry) -> bool:
        if self._allowed_updates is None:
            return entry.kind not in _OPT_IN_UPDATES
        return entry.kind in self._allowed_updates

    # -- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        match = _PATH.fullmatch(request.path)
        if match is None:
            return _respond(ApiError(404, "Not Found").payload())
        token, name = match.groups()
        method, handler = self._methods.get(name.lower(), (name, None))
        try:
            params = await _read_params(request)
        except ApiError as error:
            params, outcome = {}, error
        else:
            outcome = await self._call(method, handler, params, request, token)
        status = outcome.status if isinstance(outcome, ApiError) else 200
        self.calls.append(ApiCall(method, params, status, arrived))
        delay = self._delays.get(method.lower(), self._delays.get("*", 0.0))
        if delay:
            await asyncio.sleep(delay)
        if isinstance(outcome, ApiError):
            return _respond(outcome.payload(), outcome.status)
        return _respond({"ok": True, "result": outcome})

    async def _call(
        self,
        method: str,
        handler: _Handler | None,
        params: dict[str, Any],
        request: web.Request | None,
        token: str,
    ) -> Any:
        """The method's result, or the ApiError it ended with."""
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise ApiError(404, "Not Found")
            self._injected_failure(method, params)
            if method in _SEND_METHODS:
                self._flood_control(params.get("chat_id"))
            return await handler(params, request)
        except ApiError as error:
            return error

    def _flood_control(self, chat_id: Any) -> None:
        buckets = [self._overall_bucket] if self._overall_bucket else []
        if self._chat_rate:
            buckets.append(self._chat_buckets.setdefault(chat_id, _Bucket(self._chat_rate)))
        now = time.monotonic()
        wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        for bucket in buckets:
            bucket.take()

    def _injected_failure(self, method: str, params: Mapping[str, Any]) -> None:
        for rule in self._fail_rules:
            if rule.method == method.lower() and rule.chat_id in (None, params.get("chat_id")):
                rule.count -= 1
                if rule.count <= 0:
                    self._fail_rules.remove(rule)
                raise ApiError(rule.status, rule.description, rule.retry_after)

    # -- updates methods --------------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any], request: web.Request | None) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any], request: web.Request | None) -> Any:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params, "offset", 0)
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = max(_int(params, "timeout", 0), 0)
        if "allowed_updates" in params:
            self._allowed_updates = _allowed_updates(params["allowed_updates"])
        self._confirm(offset)
        # Only one long poll at a time, as on Telegram: a newer one ends the older with 409.
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()
        deadline = time.monotonic() + timeout
        while True:
            batch = self._take(offset, limit)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                break
            wakeup = self._wakeup
            self._waiting_polls += 1
            try:
                async with asyncio.timeout(remaining):
                    await wakeup.wait()
            except TimeoutError:
                pass
            finally:
                self._waiting_polls -= 1
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
        if request is not None and (request.transport is None or request.transport.is_closing()):
            return []  # the client gave up waiting: keep the updates for its next call
        for entry in batch:
            entry.fresh = False
        return [entry.update for entry in sorted(batch, key=lambda entry: entry.update_id)]

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            keep = list(self._queue)[offset:]
            self._queue = {seq: self._queue[seq] for seq in keep}
        elif offset > 0:
            for seq, entry in list(self._queue.items()):
                if entry.update_id < offset and not entry.fresh:
                    del self._queue[seq]

    def _take(self, offset: int, limit: int) -> list[_Entry]:
        batch: list[_Entry] = []
        for seq, entry in list(self._queue.items()):
            if len(batch) >= limit:
                break
            if entry.update_id >= offset or entry.fresh:
                if self._wanted(entry):
                    batch.append(entry)
                else:
                    del self._queue[seq]  # Telegram never delivers what the bot did not ask for
        return batch

    async def _set_webhook(self, params: dict[str, Any], request: web.Request | None) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params, request)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname not in _LOCAL_HOSTS:
            raise _bad("bad webhook: the simulator only delivers to 127.0.0.1")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise _bad("secret token contains unallowed characters")
        max_connections = _int(params, "max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        if "allowed_updates" in params:
            self._allowed_updates = _allowed_updates(params["allowed_updates"])
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self._retire_webhook()
        hook = _Webhook(url, str(secret) if secret else None, max_connections)
        hook.backlog.extend(entry for entry in self._queue.values() if not entry.in_flight)
        self._webhook = hook
        self._spawn(self._run_webhook(hook))
        self._poll_generation += 1  # a waiting getUpdates ends with 409, as it would on Telegram
        self._wake()
        return True

    async def _delete_webhook(self, params: dict[str, Any], request: web.Request | None) -> Any:
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self._retire_webhook()
        return True

    def _retire_webhook(self) -> None:
        if self._webhook is not None:
            self._webhook.active = False
            self._webhook = None
            self._wake()

    async def _get_webhook_info(self, params: dict[str, Any], request: web.Request | None) -> Any:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    # -- webhook delivery ---------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_webhook(self, hook: _Webhook) -> None:
        slots = asyncio.Semaphore(hook.max_connections)
        while hook.active:
            if not hook.backlog:
                await self._wakeup.wait()
                continue
            await slots.acquire()
            entry = hook.backlog.popleft() if hook.active and hook.backlog else None
            if entry is None or entry.seq not in self._queue:
                slots.release()
                continue
            if not self._wanted(entry):
                del self._queue[entry.seq]
                slots.release()
                continue
            entry.in_flight = True
            self._spawn(self._deliver(hook, entry, slots))

    async def _deliver(self, hook: _Webhook, entry: _Entry, slots: asyncio.Semaphore) -> None:
        """POST one update until the receiver takes it (2xx) or the webhook goes; never drop it."""
        delay = self.webhook_retry_delay
        try:
            while hook.active and entry.seq in self._queue:
                status, error, reply = await self._post_update(hook, entry.update)
                self.webhook_attempts.append(WebhookAttempt(entry.update_id, status, time.monotonic()))
                if error is None:
                    self._queue.pop(entry.seq, None)
                    entry.fresh = False
                    if reply:
                        await self._run_webhook_reply(reply)
                    return
                hook.last_error_date, hook.last_error_message = int(time.time()), error
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_max_retry_delay)
        finally:
            entry.in_flight = False
            slots.release()
            # The webhook was replaced while this update was undelivered: the new one gets it first.
            if entry.seq in self._queue and self._webhook is not None and self._webhook is not hook:
                self._webhook.backlog.appendleft(entry)
                self._wake()

    async def _post_update(
        self, hook: _Webhook, update: dict[str, Any]
    ) -> tuple[int | None, str | None, dict[str, Any] | None]:
        assert self._client is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            async with self._client.post(
                hook.url,
                data=json.dumps(update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                if not 200 <= response.status < 300:
                    return response.status, f"Wrong response from the webhook: {response.status}", None
                try:
                    reply = await _read_body(response.content_type, response)
                except ApiError:
                    reply = {}
                return response.status, None, reply
        except (aiohttp.ClientError, TimeoutError) as error:
            return None, f"Connection failed: {type(error).__name__}", None

    async def _run_webhook_reply(self, reply: dict[str, Any]) -> None:
        """A webhook may answer with one method call in its response body; Telegram runs it silently."""
        name = str(reply.pop("method", ""))
        if not name:
            return
        method, handler = self._methods.get(name.lower(), (name, None))
        arrived = time.monotonic()
        outcome = await self._call(method, handler, reply, None, self.token)
        status = outcome.status if isinstance(outcome, ApiError) else 200
        self.calls.append(ApiCall(method, reply, status, arrived))

    # -- messages -----------------------------------------------------------------------------

    def _target_chat(self, params: Mapping[str, Any]) -> ChatLog:
        if params.get("chat_id") in (None, ""):
            raise _bad("chat_id is empty")
        chat_id = params["chat_id"]
        log = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if log is None:
            raise _bad("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return log

    def _bot_message(self, params: Mapping[str, Any]) -> tuple[ChatLog, BotMessage]:
        """The bot message an edit names."""
        if params.get("inline_message_id"):
            raise _bad("inline messages are not simulated")
        log = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad("message identifier is not specified")
        message = log.by_id.get(message_id)
        if message is None or message.deleted:
            if message_id in log.user_message_ids:
                raise _bad("message can't be edited")
            raise _bad("message to edit not found")
        return log, message

    def _publish(
        self, log: ChatLog, message: BotMessage, markup: dict[str, Any] | None, edited: bool
    ) -> None:
        raw: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self.bot_user,
            "chat": log.chat,
            "date": message.raw.get("date", int(time.time())),
        }
        if edited:
            raw["edit_date"] = int(time.time())
        if message.photo is not None:
            raw["photo"] = message.raw["photo"]
            if message.caption:
                raw["caption"] = message.caption
        else:
            raw["text"] = message.text
        if markup is not None:
            raw["reply_markup"] = markup
        message.raw = raw

    async def _send_message(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log = self._target_chat(params)
        text = _render(params.get("text"), params.get("parse_mode"), "text", 4096)
        markup, buttons = _parse_markup(params.get("reply_markup"))
        message = BotMessage(
            log.next_message_id(),
            log.chat_id,
            text,
            buttons,
            source=str(params["text"]),
            parse_mode=params.get("parse_mode") or None,
        )
        self._publish(log, message, markup, edited=False)
        log.add(message)
        return message.raw

    async def _send_photo(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log = self._target_chat(params)
        photo = params.get("photo")
        if isinstance(photo, str):
            if photo not in self._files:
                raise _bad("wrong file identifier/HTTP URL specified")
            photo = self._files[photo]
        if not isinstance(photo, bytes):
            raise _bad("there is no photo in the request")
        width, height = _image_size(photo)
        caption = None
        if params.get("caption") not in (None, ""):
            caption = _render(params["caption"], params.get("parse_mode"), "caption", 1024)
        markup, buttons = _parse_markup(params.get("reply_markup"))
        serial = self.next_serial()
        file_id = f"AgACAgIAAxkBAAI{serial:08d}"
        self._files[file_id] = photo
        size = {
            "file_id": file_id,
            "file_unique_id": f"AQAD{serial:08d}",
            "width": width,
            "height": height,
            "file_size": len(photo),
        }
        message = BotMessage(
            log.next_message_id(),
            log.chat_id,
            "",
            buttons,
            photo=photo,
            caption=caption,
            source=str(params.get("caption") or ""),
            parse_mode=params.get("parse_mode") or None,
            raw={"photo": [size], "date": int(time.time())},
        )
        self._publish(log, message, markup, edited=False)
        log.add(message)
        return message.raw

    async def _edit_message_text(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log, message = self._bot_message(params)
        if message.photo is not None:
            raise _bad("there is no text in the message to edit")
        text = _render(params.get("text"), params.get("parse_mode"), "text", 4096)
        # Leaving reply_markup out removes the keyboard, as on Telegram.
        markup, buttons = _parse_markup(params.get("reply_markup"))
        source, mode = str(params["text"]), params.get("parse_mode") or None
        unchanged = (text, source, markup) == (message.text, message.source, message.raw.get("reply_markup"))
        if unchanged:
            raise ApiError(400, _NOT_MODIFIED)
        message.text, message.source, message.parse_mode, message.buttons = text, source, mode, buttons
        return self._edited(log, message, markup)

    async def _edit_message_caption(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log, message = self._bot_message(params)
        if message.photo is None:
            raise _bad("there is no caption in the message to edit")
        caption = None
        if params.get("caption") not in (None, ""):
            caption = _render(params["caption"], params.get("parse_mode"), "caption", 1024)
        markup, buttons = _parse_markup(params.get("reply_markup"))
        if (caption, markup) == (message.caption, message.raw.get("reply_markup")):
            raise ApiError(400, _NOT_MODIFIED)
        message.caption, message.source, message.buttons = caption, str(params.get("caption") or ""), buttons
        message.parse_mode = params.get("parse_mode") or None
        return self._edited(log, message, markup)

    async def _edit_message_reply_markup(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log, message = self._bot_message(params)
        markup, buttons = _parse_markup(params.get("reply_markup"))
        if markup == message.raw.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        message.buttons = buttons
        return self._edited(log, message, markup)

    def _edited(self, log: ChatLog, message: BotMessage, markup: dict[str, Any] | None) -> dict[str, Any]:
        message.edits += 1
        self._publish(log, message, markup, edited=True)
        log.changed()
        return message.raw

    async def _delete_message(self, params: dict[str, Any], request: web.Request | None) -> Any:
        log = self._target_chat(params)
        message_id = params.get("message_id")
        message = log.by_id.get(message_id) if isinstance(message_id, int) else None
        if message is not None and not message.deleted:
            message.deleted = True
            log.changed()
        elif message_id in log.user_message_ids:
            log.user_message_ids.discard(message_id)
        else:
            raise _bad("message to delete not found")
        return True

    async def _answer_callback_query(self, params: dict[str, Any], request: web.Request | None) -> Any:
        callback = self.callbacks.get(str(params.get("callback_query_id", "")))
        if callback is None or callback.answered:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = str(params.get("text") or "")
        if len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        callback.answered, callback.text, callback.show_alert = True, text, bool(params.get("show_alert"))
        log = self._chats.get(callback.chat_id)
        if log is not None:
            log.changed()
        return True

    async def _send_chat_action(self, params: dict[str, Any], request: web.Request | None) -> Any:
        self._target_chat(params)
        return True

    # -- commands -----------------------------------------------------------------------------

    def _commands_key(self, params: Mapping[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: dict[str, Any], request: web.Request | None) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be a list of at most 100 BotCommand objects")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.fullmatch(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: dict[str, Any], request: web.Request | None) -> Any:
        return self._commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: dict[str, Any], request: web.Request | None) -> Any:
        self._commands.pop(self._commands_key(params), None)
        return True

    async def _true(self, params: dict[str, Any], request: web.Request | None) -> Any:
        return True


# -- request decoding ------------------------------------------------------------------------


def _respond(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json"
    )


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters from the query string and a JSON, url-encoded or multipart body, as one typed dict."""
    params = _decode_fields(request.query)
    if request.method in ("POST", "PUT") and request.body_exists:
        params.update(await _read_body(request.content_type, request))
    return params


async def _read_body(content_type: str, source: web.Request | aiohttp.ClientResponse) -> dict[str, Any]:
    """Decode a body in any of the three encodings the Bot API accepts (also used for webhook replies)."""
    if content_type == "multipart/form-data":
        reader: aiohttp.MultipartReader | MultipartResponseWrapper
        if isinstance(source, web.Request):
            reader = await source.multipart()
        else:
            reader = aiohttp.MultipartReader.from_response(source)
        fields: dict[str, str] = {}
        files: dict[str, bytes] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                files[part.name] = bytes(await part.read(decode=True))
            else:
                fields[part.name] = await part.text()
        params = _decode_fields(fields)
        # aiogram sends "photo=attach://<part>"; PTB names the file part after the parameter itself.
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                params[key] = files.pop(value[9:])
        params.update(files)
        return params
    raw = await source.read()
    if not raw.strip():
        return {}
    text = raw.decode("utf-8", errors="replace")
    if content_type == "application/json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise _bad("can't parse JSON object") from error
        if not isinstance(body, dict):
            raise _bad("JSON body must be an object")
        return _decode_json_fields(body)
    return _decode_fields(dict(parse_qsl(text, keep_blank_values=True)))


def _decode_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """Form values are strings; numbers, booleans and nested objects arrive JSON-encoded in them."""
    params: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _STRING_FIELDS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value  # "@channel", "HTML", a file id ...
    return _decode_json_fields(params)


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    """Nested objects may be sent as JSON strings even in a JSON body; Telegram accepts both."""
    for key in _JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as error:
                raise _bad(f"can't parse {key} JSON object") from error
    if isinstance(params.get("chat_id"), str) and params["chat_id"].lstrip("-").isdigit():
        params["chat_id"] = int(params["chat_id"])
    return params


def _int(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise _bad(f'field "{key}" must be of type Integer') from error


def _allowed_updates(value: Any) -> frozenset[str] | None:
    if not isinstance(value, list):
        raise _bad("can't parse allowed updates")
    return frozenset(str(kind) for kind in value) or None


# -- message content ---------------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _render(value: Any, parse_mode: Any, what: str, limit: int) -> str:
    """The text a phone shows for ``value`` sent with ``parse_mode``; 400 where Telegram refuses it."""
    if value is None or not str(value).strip():
        raise _bad(f"message {what} is empty")
    mode = str(parse_mode or "").lower()
    if mode == "html":
        text = _strip_html(str(value))
    elif mode == "markdownv2":
        text = _strip_markdown_v2(str(value))
    elif mode in ("", "markdown"):
        text = str(value) if mode == "" else re.sub(r"[*_`\[]", "", str(value))
    else:
        raise _bad("unsupported parse_mode")
    if not text.strip():
        raise _bad(f"message {what} is empty")
    if _utf16_len(text) > limit:
        raise _bad("message is too long" if what == "text" else "message caption is too long")
    return text


def _strip_html(source: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    position = 0
    for token in _HTML_TOKEN.finditer(source):
        out.append(source[position : token.start()])
        position = token.end()
        offset = len(source[: token.start()].encode())
        closing, tag, _, entity = token.groups()
        if entity is not None:
            out.append({"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(entity) or _char_ref(entity))
        elif tag is None or tag.lower() not in _HTML_TAGS:
            raise _bad(f'can\'t parse entities: Unsupported start tag "{tag or ""}" at byte offset {offset}')
        elif closing:
            if not stack or stack[-1] != tag.lower():
                expected = f'"</{stack[-1]}>"' if stack else "no end tag"
                raise _bad(
                    f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                    f'expected {expected}, found "</{tag}>"'
                )
            stack.pop()
        else:
            stack.append(tag.lower())
    if stack:
        raise _bad(f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\"")
    out.append(source[position:])
    return "".join(out)


def _char_ref(entity: str) -> str:
    return chr(int(entity[2:], 16) if entity[1] in "xX" else int(entity[1:]))


def _strip_markdown_v2(source: str) -> str:
    """Drops formatting marks and link targets; an unescaped reserved character is refused, like Telegram."""
    source = _MARKDOWN_LINK.sub(r"\1", source)
    out: list[str] = []
    escaped = False
    for index, char in enumerate(source):
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*_~`|":
            continue
        elif char in _MARKDOWN_RESERVED and not (char == ">" and (index == 0 or source[index - 1] == "\n")):
            raise _bad(
                f"can't parse entities: Character '{char}' is reserved and must be escaped "
                "with the preceding '\\'"
            )
        else:
            out.append(char)
    return "".join(out)


def _parse_markup(value: Any) -> tuple[dict[str, Any] | None, Buttons]:
    """The inline keyboard as the API echoes it back, and its buttons as (text, callback_data) rows."""
    if value is None:
        return None, []
    if not isinstance(value, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in value:
        return None, []  # reply keyboards and ForceReply are accepted but not echoed in the message
    rows = value["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad('can\'t parse inline keyboard button: field "inline_keyboard" must be an Array of Arrays')
    if sum(len(row) for row in rows) > 100:
        raise _bad("BUTTONS_TOO_MUCH")
    buttons: Buttons = []
    clean_rows: list[list[dict[str, Any]]] = []
    for row in rows:
        buttons.append([])
        clean_rows.append([])
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
            present = [action for action in _INLINE_ACTIONS if button.get(action) is not None]
            if not present:
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise _bad("BUTTON_DATA_INVALID")
            buttons[-1].append((button["text"], "" if data is None else str(data)))
            clean_rows[-1].append({"text": button["text"], **{action: button[action] for action in present}})
    clean_rows = [row for row in clean_rows if row]
    buttons = [row for row in buttons if row]
    return ({"inline_keyboard": clean_rows} if clean_rows else None), buttons


def _image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError  # only photo tests pay for importing Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return int(width), int(height)
    except (UnidentifiedImageError, OSError) as error:
        raise _bad("IMAGE_PROCESS_FAILED") from error
