"""The /dashboard page in a real browser: Debian's chromium driven by Playwright.

Two gateway replicas share one database; the page is served by and live on replica B while
the points grant goes through replica A's GraphQL API, so the test also shows that the
dashboard is live on every replica. A screenshot is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.auth import Role
from gateway.core.settings import Settings
from gateway.services import Services
from tests.conftest import JWT_SECRET, token
from tests.support.ledger_helpers import add_member, earn
from tests.support.stream_helpers import Gateway, gateway

CHROMIUM = os.environ.get("LOYALTY_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("LOYALTY_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
GRANT = """mutation($input: GrantPointsInput!) { grantPoints(input: $input) { points } }"""


def _browser_or_skip() -> None:
    """In CI a missing browser fails the run (``.ci/run`` installs it); locally it skips."""
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def replicas(settings: Settings, services: Services, db, clock) -> AsyncIterator[tuple[Gateway, Gateway]]:  # noqa: ANN001
    other = Services(settings=settings, db=db, clock=clock, jwt_secret=JWT_SECRET)
    async with gateway(settings, services) as a, gateway(settings, other) as b:
        yield a, b


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _browser_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield instance
        finally:
            await instance.close()


def _base(gw: Gateway) -> str:
    return f"http://127.0.0.1:{gw.port}"


async def test_the_dashboard_signs_in_shows_seeded_numbers_and_goes_live(
    replicas: tuple[Gateway, Gateway], services: Services, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import expect

    a, b = replicas
    for member_id, points in (("m1", 1000), ("m2", 250)):
        await add_member(services, member_id)
        await earn(services.ledger, member_id, points)

    page = await browser.new_page(viewport={"width": 1600, "height": 1000}, locale="en-US")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = await page.goto(f"{_base(b)}/dashboard")
    assert response is not None and response.ok
    assert "default-src 'none'" in response.headers["content-security-policy"]

    # A member's token is refused with a readable reason.
    await page.fill("#token", token(Role.MEMBER, "m1"))
    await page.click("#login-button")
    await expect(page.locator("#login-error")).to_contain_text("may not read the dashboard")

    await page.fill("#token", token(Role.DASHBOARD, "wall"))
    await page.click("#login-button")
    await expect(page.locator('[data-kpi="issued"]')).to_have_text("1,250")
    await expect(page.locator("#month-label")).to_have_text("2026-03")
    await expect(page.locator('[data-tier="MEMBER"]')).to_have_text("2")
    await expect(page.locator("#chart svg rect")).to_have_count(36)
    await expect(page.locator("#status")).to_have_text("live")

    # A grant through replica A's API appears on replica B's page: feed and tile, within 5 s.
    async with httpx.AsyncClient(base_url=_base(a)) as client:
        body = {"input": {"memberId": "m1", "points": 75, "reason": "browser test", "idempotencyKey": "b-1"}}
        result = await client.post(
            "/graphql",
            json={"query": GRANT, "variables": body},
            headers={"Authorization": f"Bearer {token(Role.ADMIN, 'ops')}"},
        )
        assert "errors" not in result.json(), result.json()
    await expect(page.locator("#feed li").first).to_contain_text("+75", timeout=5_000)
    await expect(page.locator("#feed li").first).to_contain_text("Grant", timeout=5_000)
    await expect(page.locator('[data-kpi="issued"]')).to_have_text("1,325", timeout=5_000)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)

    await page.click("#lang-zh")
    await expect(page.locator("h1")).to_have_text("会员积分看板")
    await expect(page.locator("#feed li").first).to_contain_text("赠送")
    await expect(page.locator("#tile-issued h3")).to_have_text("发放积分")
    shot_zh = ARTIFACTS / "dashboard-zh.png"
    await page.screenshot(path=str(shot_zh), full_page=True)
    with capsys.disabled():
        print(f"\ndashboard screenshots: {shot} {shot_zh}")
    assert shot.stat().st_size > 0 and shot_zh.stat().st_size > 0
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    await page.close()


async def test_a_kiosk_signs_in_from_the_url_fragment_and_forgets_it(
    replicas: tuple[Gateway, Gateway], browser: Any
) -> None:
    from playwright.async_api import expect

    _, b = replicas
    page = await browser.new_page()
    await page.goto(f"{_base(b)}/dashboard#token={token(Role.DASHBOARD, 'kiosk')}")
    await expect(page.locator("#dashboard-view")).to_be_visible()
    await expect(page.locator('[data-kpi="issued"]')).to_have_text("0")
    assert "token" not in page.url
    await page.close()


async def test_the_page_and_its_assets_carry_security_headers(replicas: tuple[Gateway, Gateway]) -> None:
    _, b = replicas
    async with httpx.AsyncClient(base_url=_base(b)) as client:
        for path, media in (
            ("/dashboard", "text/html"),
            ("/dashboard/dashboard.js", "text/javascript"),
            ("/dashboard/dashboard.css", "text/css"),
        ):
            response = await client.get(path)
            assert response.status_code == 200 and response.headers["content-type"].startswith(media)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
        page = (await client.get("/dashboard")).text
        assert "http://" not in page and "https://" not in page  # nothing from elsewhere: works offline
        assert (await client.get("/dashboard/../app.py")).status_code == 404
        assert (await client.get("/dashboard/secrets.txt")).status_code == 404
