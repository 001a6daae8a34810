"""A grid worker's commands: the QR poster of their grid and pushes to its residents. Every command acts
only on the grids the worker looks after."""

from __future__ import annotations

import asyncio
import logging

from bot import callbacks as cb
from bot import texts
from bot.callbacks import Callback
from bot.flows.resident import closing, edit_tapped, stale
from bot.flows.turn import Turn
from bot.links import LinkTarget, deep_link, make_payload
from bot.messages import Button, Reply
from storage import outreach
from storage import repository as repo
from storage import staff as staffing
from storage.models import Grid, Person, Project

log = logging.getLogger(__name__)
PUSH_CONFIRM_STATE = "push_confirm"  # Person.state while a push waits for its button: one tap, one push
ALL_GRIDS = 0


async def pick_grids(
    t: Turn, person: Person, argument: str, purpose: str, *, allow_all: bool = False
) -> tuple[list[Grid], list[Reply]]:
    """The worker's grids this command is about; or no grids and the replies that ask which (or say
    that there are none)."""
    grids = await staffing.grids_of_worker(t.session, person.id)
    if not grids:
        return [], [Reply.send(t.chat_id, texts.NO_GRIDS)]
    if argument:
        wanted = argument.strip().upper().replace("_", "-")
        projects = {g.project_id: await t.session.get(Project, g.project_id) for g in grids}
        for grid in grids:
            project = projects[grid.project_id]
            names = {grid.code.upper(), f"{project.code}-{grid.code}".upper() if project else ""}
            if wanted in names:
                return [grid], []
        listing = "、".join(f"{g.code} {g.name}" for g in grids)
        return [], [Reply.send(t.chat_id, texts.NOT_YOUR_GRID.format(code=argument, grids=listing))]
    one_project = len({g.project_id for g in grids}) == 1
    if len(grids) == 1 or (allow_all and one_project):
        return grids, []
    rows = [(Button(g.name, cb.encode(cb.GRID, purpose, g.id)),) for g in grids]
    return [], [Reply.send(t.chat_id, texts.PICK_GRID, tuple(rows))]


async def on_grid_button(t: Turn, person: Person, data: Callback) -> list[Reply]:
    purpose, grid_id = data.part(0), data.part(1)
    grids = {g.id: g for g in await staffing.grids_of_worker(t.session, person.id)}
    grid = grids.get(int(grid_id)) if grid_id.isdigit() else None
    if grid is None:
        return stale(t)
    if purpose == "qr":
        return closing(t, await send_poster(t, person, grid))
    if purpose == "push":
        return closing(t, await offer_push(t, person, [grid]))
    if purpose == "visit":
        from bot.flows import visits

        return closing(t, await visits.ask_household(t, person, grid))
    return stale(t)


# --- /qr -----------------------------------------------------------------------------------------------


async def qr(t: Turn, person: Person, argument: str) -> list[Reply]:
    grids, replies = await pick_grids(t, person, argument, "qr")
    return await send_poster(t, person, grids[0]) if grids else replies


async def send_poster(t: Turn, person: Person, grid: Grid) -> list[Reply]:
    project = await t.session.get(Project, grid.project_id)
    assert project is not None
    payload = make_payload(await t.engine.link_secret(t), LinkTarget(project.id, grid.id, person.id))
    link = deep_link(t.engine.bot_username, payload)
    code = f"{project.code}-{grid.code}"
    caption = texts.QR_CAPTION.format(title=project.title, grid=grid.name, link=link, code=code)
    repo.audit(t.session, f"person:{person.id}", "qr.issued", f"{project.code}/{grid.code}")
    from bot.poster import FontMissing, make_poster  # Pillow and qrcode load only when a poster is made

    try:
        # Drawing takes a few hundred milliseconds: off the event loop; the result is cached per link.
        image = await asyncio.to_thread(make_poster, link, project.title, grid.name, code)
    except FontMissing:
        log.exception("no Chinese font for the poster; sending the link as text")
        return [Reply.send(t.chat_id, caption)]
    return [Reply.photo(t.chat_id, image, caption)]


# --- /push ---------------------------------------------------------------------------------------------


async def push(t: Turn, person: Person, argument: str) -> list[Reply]:
    grids, replies = await pick_grids(t, person, argument, "push", allow_all=True)
    return await offer_push(t, person, grids) if grids else replies


async def offer_push(t: Turn, person: Person, grids: list[Grid]) -> list[Reply]:
    """Show how many residents a push would reach and let the worker choose; nothing is sent yet."""
    project = await t.session.get(Project, grids[0].project_id)
    assert project is not None
    ids = [g.id for g in grids]
    everyone = await outreach.audience_size(t.session, project.id, ids, False)
    if not everyone:
        return [Reply.send(t.chat_id, texts.PUSH_NOBODY)]
    unanswered = await outreach.audience_size(t.session, project.id, ids, True)
    target = ids[0] if len(ids) == 1 else ALL_GRIDS
    rows = []
    if unanswered:
        label = texts.BUTTON_PUSH_UNANSWERED.format(n=unanswered)
        rows.append((Button(label, cb.encode(cb.PUSH, target, "unanswered")),))
    rows.append((Button(texts.BUTTON_PUSH_ALL.format(n=everyone), cb.encode(cb.PUSH, target, "all")),))
    rows.append((Button(texts.BUTTON_CANCEL, cb.encode(cb.PUSH, target, "cancel")),))
    quiet = t.engine.push.quiet
    start, end = quiet.label()
    text = texts.PUSH_CONFIRM.format(
        title=project.title,
        grids="、".join(g.name for g in grids),
        everyone=everyone,
        unanswered=unanswered,
        quiet=texts.PUSH_QUIET_NOTE.format(start=start, end=end) if quiet.enabled else "",
    )
    person.state = PUSH_CONFIRM_STATE
    return [Reply.send(t.chat_id, text, tuple(rows))]


async def on_push_button(t: Turn, person: Person, data: Callback) -> list[Reply]:
    if person.state != PUSH_CONFIRM_STATE:
        return stale(t)  # a second tap, or a confirmation from long ago
    person.state = ""
    choice = data.part(1)
    if choice == "cancel":
        return closing(t, edit_tapped(t, texts.PUSH_CANCELLED))
    grids = await staffing.grids_of_worker(t.session, person.id)
    target = int(data.part(0)) if data.part(0).isdigit() else -1
    chosen = grids if target == ALL_GRIDS else [g for g in grids if g.id == target]
    if not chosen or len({g.project_id for g in chosen}) != 1 or choice not in ("all", "unanswered"):
        return stale(t)
    campaign = await outreach.create_campaign(
        t.session,
        project_id=chosen[0].project_id,
        grid_ids=[g.id for g in chosen],
        only_unanswered=choice == "unanswered",
        created_by=f"person:{person.id}",
        creator_id=person.id,
        status_chat_id=t.chat_id,
    )
    if not campaign.total:
        return closing(t, edit_tapped(t, texts.PUSH_NOBODY))
    return closing(t, edit_tapped(t, texts.PUSH_STARTED.format(n=campaign.total)))


# --- a resident's "no more reminders" --------------------------------------------------------------------


async def opt_out(t: Turn, person: Person | None) -> list[Reply]:
    if person is None:
        return stale(t)
    if not person.push_opt_out:
        person.push_opt_out = True
        repo.audit(t.session, f"person:{person.id}", "push.opt_out")
    return closing(t, [Reply.send(t.chat_id, texts.OPTED_OUT)], texts.OPTED_OUT_MARK)
