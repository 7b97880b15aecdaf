"""The Live page in a real browser: Debian's Chromium, headless, with a fake microphone that
plays recordings of real people talking. The page streams the microphone and the server decides
where the user's turn ends; the page's own VAD (Silero through vad-web, served by our server)
turns the bot down and stops it when the user speaks. Nothing in the page is stubbed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import ServerProcess
from tests.speech import JFK, SHORT, Recording, load, word_error_rate

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the CI machine needs them: no sandbox as root, and no calls home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def page_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(LIVE_ECHO_DELAY_MS="20", LIVE_STT="whisper", LIVE_STT_WORKERS="1")


def sign_in_url(server: ServerProcess) -> str:
    """The tokenised URL `live-server serve` made at start."""
    url = server.sign_in_url()
    assert re.fullmatch(r"http://\S+/#token=\S+", url), url
    return url


async def microphone(tmp: Path, *parts: Recording | float) -> Path:
    """A WAV for the fake microphone: recordings and seconds of silence, in order, then a long
    silence (Chromium loops the file)."""
    rate = 16000
    chunks = []
    for part in (*parts, 30.0):
        if isinstance(part, Recording):
            chunks.append(load(part, rate)[0])
        else:
            chunks.append(np.zeros(int(part * rate), dtype=np.int16))
    path = tmp / "microphone.wav"
    soundfile.write(path, np.concatenate(chunks), rate, subtype="PCM_16")
    return path


async def browser_with(mic: Path) -> AsyncIterator[Browser]:
    assert CHROMIUM, "Chromium is missing: scripts/test.sh installs Debian's chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}"],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def debug(page: Page) -> Any:
    return await page.evaluate(
        "() => JSON.parse(JSON.stringify({...window.live.debug,"
        " player: window.live.player.stats,"
        " clipTurns: window.live.player.clips.map(c => c.turn)}))"
    )


async def wait_for(page: Page, condition: str) -> None:
    await page.wait_for_function(condition, timeout=WAIT_MS)


async def open_page(browser: Browser, url: str, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    await page.goto(url)
    await wait_for(page, "document.getElementById('state').dataset.state === 'ready'")
    assert "#token" not in page.url, "the token is taken out of the address bar"
    return page


async def test_speaking_to_the_page_gets_a_spoken_answer(page_server: ServerProcess, tmp_path):
    # Kennedy pauses for about a second between his phrases: one sentence is still one turn,
    # as the server, which the page follows, judges his words at each pause. He starts once the
    # stream has settled: in its first second or so the browser's audio processing (echo
    # cancellation) is still adapting, and out of that Whisper tiny may hear his first phrase
    # as "And so am I fellow Americans", words that read as finished (see the README).
    mic = await microphone(tmp_path, 3.0, JFK)
    errors: list[str] = []
    async for browser in browser_with(mic):
        page = await open_page(browser, sign_in_url(page_server), errors)
        await page.click("#mic")
        # The page streamed the microphone; the server said when the turn was over.
        await wait_for(page, "window.live.debug.heard.speech_stopped >= 1")
        state = await debug(page)
        assert state["sent"]["start_speaking"] == state["sent"]["end_speaking"] == 0
        assert state["sent"]["speaking_part"] >= 10, "streamed in parts, not sent at the end"
        # The words showed while they were said, and the level meter moved.
        assert state["partials"] >= 1
        assert state["level"] > 0.3
        # The recognised text and the bot's reply are shown, and the answer is played.
        await wait_for(page, "document.querySelector('#messages .user')")
        await wait_for(page, "window.live.player.stats.scheduled >= 1")
        heard = await page.inner_text("#messages .user")
        await wait_for(page, "(document.querySelector('#messages .bot')||{}).textContent"
                       "?.includes('message number')")  # fmt: skip
        reply = await page.inner_text("#messages .bot")
        assert word_error_rate(JFK.text, heard) <= 0.1, heard
        assert heard.strip() in reply, (heard, reply)
        assert await page.locator("#messages .user").count() == 1
        assert await page.locator("#messages .partial").count() == 0
        await wait_for(page, "['speaking', 'listening'].includes(window.live.debug.state)")
        assert "ms" in (await page.text_content("#metrics") or "")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "live-page.png", full_page=True)
        assert "your pause" in (await page.text_content("#metrics") or "")
        state = await debug(page)
        assert state["heard"]["speech_started"] == state["heard"]["speech_stopped"] == 1

        # A reload continues the conversation and shows what was said in it.
        await wait_for(page, "window.live.debug.ends >= 1")
        reply = await page.inner_text("#messages .bot")
        await page.reload()
        await wait_for(page, "document.querySelectorAll('#messages .earlier').length >= 2")
        earlier = await page.locator("#messages .earlier").all_inner_texts()
        assert earlier[0] == heard and earlier[1] == reply
        assert "Continuing a conversation (2 messages)" in await page.inner_text("#conversation")
    assert not errors, errors


@pytest.mark.parametrize("first", ["page", "server"])
async def test_talking_over_the_bot_stops_it_and_ignores_the_rest(
    page_server: ServerProcess, tmp_path, first: str
):
    # The second phrase comes while the answer to the first is still playing.
    mic = await microphone(tmp_path, 1.0, SHORT, 3.5, SHORT)
    errors: list[str] = []
    async for browser in browser_with(mic):
        page = await open_page(browser, sign_in_url(page_server), errors)
        if first == "server":  # the page's VAD is slow to be sure: the server's barge-in wins
            await page.evaluate(
                """() => { const input = document.querySelector('[name="minSpeechMs"]');
                input.value = "3000"; input.dispatchEvent(new Event("change")); }"""
            )
        await page.click("#mic")
        await wait_for(page, "window.live.player.stats.scheduled >= 1")
        await wait_for(page, "window.live.debug.interrupted.length >= 1")
        state = await debug(page)
        cut = state["interrupted"][0]
        # The page's VAD stops the bot and says how much it played (`interrupt`), unless the
        # server's own barge-in (it hears the same speech in the stream) was first: then the
        # page stops at its `stop_play` and sends nothing.
        assert state["sent"]["interrupt"] <= 1
        if first == "server":
            assert state["sent"]["interrupt"] == 0
        assert state["player"]["stopped"] >= 1, "playback was stopped"
        # The first sound of the user's voice had turned the bot down (the gain its clips play
        # through, as the audio thread computed it), before confirmed speech stopped it.
        assert state["player"]["ducked"] == 1 and state["player"]["gainAtStop"] < 0.5
        await wait_for(page, "window.live.player.gain.gain.value > 0.95")  # the next reply's
        assert cut not in state["clipTurns"]
        bubble = f"#messages .bot[data-turn='{cut}']"
        text_at_cut = await page.inner_text(bubble)
        # The cut reply is marked as such, and what was never heard is set apart.
        assert "interrupted" in (await page.get_attribute(bubble, "class") or "")
        unheard = await page.inner_text(f"{bubble} .unheard")
        assert "message number" in unheard

        # The next turn (the words spoken over the bot) is answered; the cut one never resumes.
        await wait_for(page, "document.querySelectorAll('#messages .user').length >= 2")
        await wait_for(page, "window.live.player.stats.scheduled > "
                       f"{state['player']['scheduled']}")  # fmt: skip
        state = await debug(page)
        assert cut not in state["clipTurns"]
        assert await page.inner_text(bubble) == text_at_cut
        conversation = await page.evaluate("localStorage.getItem('live.conversation')")
    assert not errors, errors

    # The server kept, for the cut turn, only what was played (as the page said, or as the
    # server estimated it from when the audio went out).
    url = f"{page_server.http}/api/v1/chat/sessions/{conversation}/messages"
    async with httpx.AsyncClient() as http:
        body = (await http.get(url, params={"token": page_server.token("local")})).json()
    replies = [m for m in body["messages"] if m["role"] == "assistant"]
    assert replies[0]["interrupted"] is True
    assert "message number" not in replies[0]["content"]


async def test_logging_in_with_an_account_and_expiry(page_server: ServerProcess, tmp_path):
    added = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "live_server", "user", "add", "pat", "--password-stdin"],
        input=b"correct horse battery\n",
        env=page_server.env,
        timeout=60,
    )
    assert added.returncode == 0
    mic = await microphone(tmp_path)
    errors: list[str] = []
    async for browser in browser_with(mic):
        page = await browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(page_server.http + "/")
        await page.wait_for_selector("#login:not([hidden])")
        # The sign-in screen shows the sign-in form only, not the chat under it.
        assert not await page.is_visible("#chat")
        assert not await page.is_visible("#mic")
        await page.fill("#username", "pat")
        await page.fill("#password", "wrong password")
        await page.press("#password", "Enter")
        await wait_for(page, "document.getElementById('login-error').textContent !== ''")
        assert "Invalid" in await page.inner_text("#login-error")
        await page.fill("#password", "correct horse battery")
        await page.press("#password", "Enter")
        await wait_for(page, "window.live.debug.state === 'ready'")
        # Typing works too.
        await page.fill("#text", "hello from the keyboard")
        await page.press("#text", "Enter")
        await wait_for(page, "(document.querySelector('#messages .bot')||{}).textContent"
                       "?.includes('hello from the keyboard')")  # fmt: skip
        # A reply is shown as markdown, and HTML in it as text: it runs nothing.
        typed = '**bold** <img src=x onerror="window.pwned=1"> [a link](https://example.com/x)'
        await page.fill("#text", typed)
        await page.press("#text", "Enter")
        last = "[...document.querySelectorAll('#messages .bot')].at(-1)"
        await wait_for(page, f"{last}.textContent.includes('I am the built-in echo model')")
        shown = await page.evaluate(
            "() => { const b = [...document.querySelectorAll('#messages .bot')].at(-1);"
            " return {text: b.textContent,"
            " strong: [...b.querySelectorAll('strong')].map(e => e.textContent),"
            " links: [...b.querySelectorAll('a')].map(a => a.href),"
            " images: document.querySelectorAll('#messages img').length,"
            " pwned: window.pwned ?? null}; }"
        )
        assert '<img src=x onerror="window.pwned=1">' in shown["text"]
        assert shown["images"] == 0 and shown["pwned"] is None
        assert shown["strong"] == ["bold"] and shown["links"] == ["https://example.com/x"]

        # An expired token sends the user back to the login form, with a message.
        expired = page_server.cli("token", "pat", "--ttl", "-10")
        await page.evaluate(f"localStorage.setItem('live.token', {json.dumps(expired)})")
        await page.reload()
        await page.wait_for_selector("#login:not([hidden])")
        assert "expired" in await page.inner_text("#login-error")
    assert not errors, errors


async def test_a_lost_connection_is_shown_with_a_reconnect(
    server_factory: Callable[..., ServerProcess], tmp_path
):
    server = server_factory(LIVE_STT="none")
    mic = await microphone(tmp_path)
    async for browser in browser_with(mic):
        page = await open_page(browser, sign_in_url(server), [])
        server.stop()
        await page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
        assert "Connection lost" in await page.inner_text("#banner")
        assert await page.is_visible("#reconnect")
        assert await page.get_attribute("#state", "data-state") == "offline"
