"""The real server answers in Chromium: landing page without an API key, console behind login."""

from __future__ import annotations

from tests.e2e.harness import app_server, browser, shot, wait_for_text


def test_landing_page_serves_without_api_key(chromium, sqlite_url):
    with app_server({"DATABASE_URL": sqlite_url}) as app, browser() as b:
        page = b.new_page()
        page.goto(app.url)
        wait_for_text(page, "Moral Graph Elicitation")
        shot(page, "landing")
        page.goto(f"{app.url}/login")
        wait_for_text(page, "Facilitator login")
