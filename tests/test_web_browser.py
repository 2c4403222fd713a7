"""`goat web` in a real browser: Debian's chromium driven by Playwright (its driver ships in the
Python package; no browser is downloaded), against the installed `goat web` on a fresh data folder
holding an imported chat and one turn of `goat chat` (the model is the loopback fake). It goes
through what a person does, and probes stored XSS and another user's reach.

With GOAT_WEB_SCREENSHOTS=1 it writes the screenshots of docs/web.md into docs/web/; otherwise
into the test's own folder."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.support.fakes import FakeOpenAI
from test_cli import goat, goat_env, ok
from test_erasure import files_holding
from test_web_served import goat_web
from bench.support.exports import chatgpt_chain, write_chatgpt

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "web"
CHAT, USER = "trip", "ana"
SECRET = "locker-7781-omega"  # what the forgotten turn said
XSS = ("<script>window.owned = 1</script> <img src=x onerror=\"window.owned = 2\"> "
       "<a href=\"javascript:window.owned = 3\">open</a>")
EVE_TOKEN, ANA_TOKEN = "eve-browser-token-77c1d9", "ana-browser-token-3e5a0b"
SAID = [
    ("We adopted a beagle and named him Biscuit.", "Biscuit is a lovely name for a beagle."),
    (f"My gym locker code is {SECRET}.", "Noted: your locker code."),
    ("We fly to Lisbon on 12 February and stay at Casa do Rio in Alfama.", "Alfama is lovely in February."),
    (f"Keep this snippet for me: {XSS}", "Kept, as text."),
]

pytestmark = pytest.mark.slow

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # the dev extra not installed
    sync_playwright = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip("no browser for goat web's test: apt-get install chromium, and the dev extra (playwright)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def shots(tmp_path: Path) -> Path:
    folder = DOCS_SHOTS if os.environ.get("GOAT_WEB_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def seeded(tmp_path: Path) -> dict[str, str]:
    """A data folder holding the imported chat, and one turn of `goat chat` after it (its turn log
    line and checkpoint say what it injected). Returns the environment reaching it."""
    env = goat_env(tmp_path / "data")
    transcript = tmp_path / "trip.jsonl"
    transcript.write_text("".join(
        json.dumps({"chat_id": CHAT, "user_id": USER, "role": role, "content": text,
                    "timestamp": 1_767_000_000 + 3600 * n}) + "\n"
        for n, (said, reply) in enumerate(SAID) for role, text in (("user", said), ("assistant", reply))))
    ok(goat("import", transcript, env=env, cwd=tmp_path))
    with FakeOpenAI(default_reply="His name is Biscuit.") as fake:
        ok(goat("chat", "--chat", CHAT, "--user", USER, cwd=tmp_path, typed=["What is my dog called?"],
                env={**env, "GOAT_MODEL": "fake-model", "OPENAI_API_KEY": "sk-fake-key-123456",
                     "OPENAI_BASE_URL": fake.base_url}))
    return env


def test_a_person_sees_searches_corrects_forgets_and_imports_and_another_sees_none_of_it(
        browser: Browser, tmp_path: Path) -> None:
    env, folder = seeded(tmp_path), shots(tmp_path)
    with goat_web(env, tmp_path) as web:
        base, link = web.base, web.printed.removeprefix("goat web: open ")
        assert link.startswith(f"{base}/?token=")
        context = browser.new_context(viewport={"width": 1000, "height": 800})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
        page.goto(link)
        assert page.url == f"{base}/"  # the token left the address bar
        page.screenshot(path=folder / "chats.png")
        page.get_by_role("link", name=CHAT, exact=True).click()

        _search(page, folder)
        _turn_and_injected(page, folder)
        _stored_xss_only_shows(page, dialogs)
        _edit_a_fact(page, folder)
        _forget_a_turn(page, folder, tmp_path / "data")
        _import(page, folder, tmp_path)
        assert page.goto(link).status == 401  # the link opens once
        context.close()

    with goat_web({**env, "GOAT_SERVER_TOKENS": f"eve={EVE_TOKEN},{USER}={ANA_TOKEN}"}, tmp_path) as web:
        _another_person_sees_nothing(browser.new_context(viewport={"width": 1000, "height": 600}), web.base, folder)


def _search(page: Page, folder: Path) -> None:
    page.get_by_role("searchbox", name="message").fill("What is my dog called?")
    page.get_by_role("button", name="recall").click()
    recall = page.locator("section.recall")
    expect(recall.locator("table.injected")).to_contain_text("Biscuit")  # what would be injected, and why
    expect(recall.locator("svg line.cut").first).to_be_attached()  # the scores drawn with the gap filter's cut
    recall.screenshot(path=folder / "recall.png")


def _turn_and_injected(page: Page, folder: Path) -> None:
    page.get_by_role("link", name="What is my dog called?").click()
    expect(page.locator("pre.text").nth(1)).to_have_text("His name is Biscuit.")
    expect(page.get_by_text("Injected (kept in the chat's last checkpoint)")).to_be_visible()
    expect(page.locator("table").last).to_contain_text("named him Biscuit")
    expect(page.locator("figure.chart svg").first).to_be_visible()  # the budget's split, each step's latency
    page.screenshot(path=folder / "turn.png", full_page=True)


def _stored_xss_only_shows(page: Page, dialogs: list[str]) -> None:
    page.get_by_role("link", name="chats").click()
    page.get_by_role("link", name=CHAT, exact=True).click()
    page.get_by_role("link", name="Keep this snippet for me").click()
    expect(page.locator("pre.text").first).to_contain_text("<script>window.owned = 1</script>")
    assert page.evaluate("window.owned") is None and dialogs == []
    assert page.locator("main img, main script, main a[href^='javascript']").count() == 0


def _edit_a_fact(page: Page, folder: Path) -> None:
    page.get_by_role("link", name="people").click()
    page.get_by_role("link", name=USER, exact=True).click()
    page.get_by_role("textbox", name="new key").fill("city")
    page.get_by_role("textbox", name="new value").fill("Porto")
    page.get_by_role("button", name="remember").click()
    expect(page.get_by_text("Noted: city = Porto")).to_be_visible()
    page.get_by_role("textbox", name="value of city").fill("Lisbon")
    page.get_by_role("button", name="save").click()
    expect(page.get_by_role("textbox", name="value of city")).to_have_value("Lisbon")
    page.screenshot(path=folder / "facts.png")


def _forget_a_turn(page: Page, folder: Path, data_dir: Path) -> None:
    assert files_holding(data_dir, SECRET)  # before: in Redis's and Chroma's files
    page.get_by_role("link", name="chats").click()
    page.get_by_role("link", name=CHAT, exact=True).click()
    page.get_by_role("link", name=f"My gym locker code is {SECRET}.").click()
    page.get_by_role("link", name="forget this turn…").click()
    expect(page.locator(".erases")).to_contain_text("erased from the data folder's files")
    page.get_by_role("button", name="forget for good").click()
    expect(page.locator("ul.report")).to_contain_text("deleted from the archive")
    page.screenshot(path=folder / "forgotten.png")
    page.get_by_role("link", name="back").click()
    expect(page.locator("table.turns")).not_to_contain_text(SECRET)
    assert files_holding(data_dir, SECRET) == []  # in no file of the data folder, checkpoints included


def _import(page: Page, folder: Path, tmp_path: Path) -> None:
    export = write_chatgpt(tmp_path / "conversations.json", [chatgpt_chain("conv-lisbon", "Lisbon", [
        (f"Which tram goes up to the castle? ({n})", "Tram 28 does.", 1_767_500_000 + 60 * n) for n in range(12)])])
    page.get_by_role("link", name="import").click()
    page.get_by_label("a Telegram Desktop export").set_input_files(export)
    page.get_by_role("button", name="import").click()
    box = page.locator(".import")
    expect(box).to_have_attribute("data-ended", "done", timeout=60_000)  # polled by the page as it goes
    expect(box.locator("progress")).to_have_attribute("value", "12")
    expect(box.locator(".lines")).to_contain_text("12 imported")
    page.screenshot(path=folder / "import.png")
    page.get_by_role("link", name="the chats").click()
    expect(page.get_by_role("link", name="conv-lisbon")).to_be_visible()


def _another_person_sees_nothing(context, base: str, folder: Path) -> None:
    page = context.new_page()
    assert page.goto(f"{base}/").status == 401
    page.get_by_label("your token").fill("not-a-token-of-anyone")
    page.get_by_role("button", name="sign in").click()
    expect(page.get_by_text("That token is not one this page knows.")).to_be_visible()
    page.screenshot(path=folder / "sign-in.png")
    page.get_by_label("your token").fill(EVE_TOKEN)
    page.get_by_role("button", name="sign in").click()
    expect(page.get_by_text("No chat yet")).to_be_visible()
    for path in (f"/chat?c={CHAT}", f"/chat?c={CHAT}&q=dog", f"/person?u={USER}", f"/export?u={USER}",
                 f"/turn?c={CHAT}&id={CHAT}:turn_0001"):
        answer = page.goto(base + path)
        assert answer.status == 403, path
        assert "Biscuit" not in page.content()
    context.close()
