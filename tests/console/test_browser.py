"""The console in real headless Chromium: sign in, review and correct a grievance with the keyboard, create a
risk item, sort the register, export the report; no script errors, no dialogs, screenshots to look at."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docx
import pytest
from sqlalchemy import select

from storage import accounts
from storage.database import Database
from storage.models import Review, RiskItem
from tests.console.conftest import EVIL, PASSWORDS, password_hash
from tests.console.seeding import seed

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Site:
    url: str
    database_url: str
    shots: Path
    log: Path
    problems: list[str] = field(default_factory=list)

    def query(self, statement: Any) -> list[Any]:
        async def run() -> list[Any]:
            db = Database(self.database_url)
            try:
                async with db.reading() as session:
                    return list((await session.scalars(statement)).all())
            finally:
                await db.dispose()

        return _run(run())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a thread of its own: the test's thread may already have a loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("console")
    path = folder / "minyi.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"

    async def prepare() -> None:
        db = Database(url)
        await seed(db, 30, evil_text=EVIL)
        async with db.transaction() as session:
            await accounts.create_account(session, "zhang", "assessor", password_hash("zhang"))
        await db.dispose()

    _run(prepare())
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINYI_")}
    log = (folder / "console.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "minyi.cli", "console", "--port", str(port)],
        cwd=ROOT,
        env={**env, "MINYI_DATABASE_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(
                    f"the console did not start: {server.stderr.read().decode() if server.stderr else ''}"
                )
            time.sleep(0.2)
    shots = Path(os.environ.get("MINYI_SCREENSHOTS", "") or folder / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield Site(base, url, shots, log=folder / "console.log")
    server.terminate()
    server.wait(10)
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="zh-CN"
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.on("console", lambda m: site.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: site.problems.append(str(e)))

    def dialog(opened: Any) -> None:
        site.problems.append(f"dialog: {opened.message}")
        opened.dismiss()

    page.on("dialog", dialog)
    page.goto(f"{site.url}/login")
    page.fill("input[name=name]", "zhang")
    page.fill("input[name=password]", PASSWORDS["zhang"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/p/RW")
    yield page
    context.close()
    assert site.problems == [], (
        f"no script errors, blocked resources or dialogs; server: {site.log.read_text()}"
    )


def test_dashboard_shows_chinese_charts_that_link_to_answers(page: Any, site: Site) -> None:
    assert page.locator("svg.chart").count() >= 4
    page.screenshot(path=site.shots / "dashboard.png", full_page=True)
    page.locator("svg.chart a").first.click()
    page.wait_for_url("**/answers?**")
    assert "回答明细" in page.inner_text("h1")
    page.screenshot(path=site.shots / "answers.png")


def test_review_and_correct_a_grievance_with_the_keyboard(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/p/RW/review")
    first = page.locator("li.item").first
    assert "urgent" in (first.get_attribute("class") or ""), "urgent grievances come first"
    answer = int(first.get_attribute("data-answer") or 0)
    second = int(page.locator("li.item").nth(1).get_attribute("data-answer") or 0)
    before = {
        box.get_attribute("value") for box in first.locator("input[name=category]").all() if box.is_checked()
    }
    page.keyboard.press("2")  # compensation
    page.keyboard.press("6")  # traffic
    page.screenshot(path=site.shots / "review-keyboard.png")
    expected = before ^ {"compensation", "traffic"}
    assert expected, "a confirmation needs at least one category"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**#a-{second}")
    assert "已保存复核结果" in page.inner_text("p.notice")
    [review] = site.query(select(Review).where(Review.answer_id == answer))
    assert review.status == "confirmed" and set(review.categories) == expected
    # The next grievance now has the focus: mark it as not a grievance with X.
    current = page.locator("li.item.current")
    assert current.get_attribute("data-answer") == str(second)
    with page.expect_navigation():
        page.keyboard.press("x")
    [other] = site.query(select(Review).where(Review.answer_id == second))
    assert other.status == "not_grievance"
    page.goto(f"{site.url}/p/RW/review?status=confirmed")
    assert "已确认" in page.inner_text(f"#a-{answer} .provenance")
    assert "zhang" in page.inner_text(f"#a-{answer} .provenance")


def test_resident_script_stays_text(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/p/RW/review?status=all")
    assert page.locator('text=<script>alert("x")</script>').count() >= 1
    assert page.locator("li.item img").count() == 0


def test_create_a_risk_item_and_sort_the_register(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/p/RW/risks/new")
    page.select_option("select[name=factor]", "traffic")
    page.fill("input[name=title]", "封路绕行影响出行")
    page.fill("textarea[name=description]", "施工期间人民路半幅封闭，公交改线")
    page.select_option("select[name=stage]", "construction")
    page.fill("input[name=probability]", "4")
    page.fill("input[name=impact]", "4")
    page.fill("textarea[name=mitigation]", "分段施工，设置临时公交站")
    page.fill("input[name=department]", "市交通运输局")
    page.fill("input[name=deadline]", "2026-12-31")
    page.click("form.risk-form button[type=submit]")
    page.wait_for_url("**/risks/1?notice=saved")
    page.goto(f"{site.url}/p/RW/risks/new?factor=environment")
    page.fill("input[name=probability]", "2")
    page.fill("input[name=impact]", "2")
    page.click("form.risk-form button[type=submit]")
    page.wait_for_url("**/risks/2?notice=saved")
    page.goto(f"{site.url}/p/RW/risks")
    level = page.locator("table.register th", has_text="等级")
    level.click()
    level.click()  # descending: the high risk first
    assert level.get_attribute("aria-sort") == "descending"
    assert page.locator("table.register tbody tr").first.locator("td").first.inner_text() == "R-001"
    page.screenshot(path=site.shots / "register.png")
    items = site.query(select(RiskItem).order_by(RiskItem.number))
    assert [(i.title, i.probability, i.impact) for i in items] == [
        ("封路绕行影响出行", 4, 4),
        ("生态环境影响问题", 2, 2),
    ]


def test_export_the_report(page: Any, site: Site, tmp_path: Path) -> None:
    page.goto(f"{site.url}/p/RW/level")
    page.screenshot(path=site.shots / "level.png", full_page=True)
    with page.expect_download() as download:
        page.click("#export-docx")
    saved = tmp_path / "report.docx"
    download.value.save_as(saved)
    document = docx.Document(str(saved))
    assert document.paragraphs[0].text == "人民路拓宽工程社会稳定风险评估报告"
    assert any(p.text == "六、评估结论" for p in document.paragraphs)
