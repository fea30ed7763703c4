"""Accessibility of the site's pages in Chromium: axe-core (pinned in tests/e2e/axe/, loaded
into the page by the test) finds no serious or critical violations on the login, share
(idle and live), history and transcript pages; the share page's controls are reached by
Tab in document order, each with a name and the site's visible focus outline; and at
380 px wide no page scrolls sideways.
"""

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from sessions_app.models import LiveSession, TranscriptEntry
from tests.conftest import require
from tests.e2e.conftest import log_in
from tests.processes import ROOT

AXE_JS = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}

# axe's violations, each as id, impact, help and the offending nodes' selectors.
RUN_AXE = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(
  v => ({id: v.id, impact: v.impact, help: v.help,
         nodes: v.nodes.map(n => n.target.join(' '))})))"""

# The controls Tab should reach, in document order: enabled, rendered, not tabindex=-1.
TABBABLE = """() => {
  const all = document.querySelectorAll(
    'a[href], button, select, input:not([type=hidden]), textarea, summary, [tabindex]');
  return [...all].filter(el => !el.disabled && el.tabIndex >= 0
    && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden'
    && !el.closest('[hidden], [inert]'))
    .map((el, i) => el.dataset.a11yIndex = String(i));
}"""

# What the focused element is: its index from TABBABLE and its computed outline.
FOCUSED = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  document.querySelectorAll('[data-a11y-focused]').forEach(e => delete e.dataset.a11yFocused);
  el.dataset.a11yFocused = '';
  return {index: el.dataset.a11yIndex ?? null, tag: el.tagName, testid: el.dataset.testid ?? '',
    outlineStyle: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth)};
}"""

# Focus a mark before everything else, so that the next Tab goes to the first control.
START_AT_TOP = """() => {
  const mark = Object.assign(document.createElement('span'), {tabIndex: -1});
  document.body.prepend(mark);
  mark.focus();
}"""

NO_SIDEWAYS_SCROLL = """() => [document.documentElement.scrollWidth,
  document.documentElement.clientWidth]"""


@pytest.fixture
def context_factory(chromium: Any) -> Iterator[Callable[..., Any]]:
    """New browser contexts that may run the test's own scripts despite the site's CSP."""
    contexts: list[Any] = []

    def new(width: int = 1280, locale: str = "en-US") -> Any:
        """A page in a new context ``width`` px wide, its browser's language ``locale``."""
        viewport = {"width": width, "height": 800}
        contexts.append(chromium.new_context(bypass_csp=True, viewport=viewport, locale=locale))
        return contexts[-1].new_page()

    yield new
    for context in contexts:
        context.close()


def recorded_session(user: Any) -> LiveSession:
    """An ended session of ``user`` with two lines, for the history and transcript pages."""
    started = timezone.now() - timedelta(minutes=5)
    session = LiveSession.objects.create(
        user=user, started_at=started, ended_at=started + timedelta(minutes=2),
        model="gemini-test", response_modality="TEXT",
        status=LiveSession.Status.ENDED, end_reason=LiveSession.EndReason.CLIENT_STOP,
    )  # fmt: skip
    for sequence, (role, source, text) in enumerate(
        [("user", "typed", "What is on my screen?"), ("model", "text-reply", "A terminal.")], 1
    ):
        TranscriptEntry.objects.create(
            session=session, sequence=sequence, role=role, source=source, text=text
        )
    return session


def axe_violations(page: Any, name: str) -> list[dict[str, Any]]:
    """Run axe on ``page``; print every violation, return the serious and critical ones."""
    page.add_script_tag(content=AXE_JS.read_text())
    violations = page.evaluate(RUN_AXE)
    for violation in violations:
        impact, rule, nodes = violation["impact"], violation["id"], violation["nodes"]
        print(f"axe {name}: {impact} {rule}: {violation['help']} {nodes}")  # noqa: T201 - shown with -s
    return [v for v in violations if v["impact"] in BLOCKING]


def go_live(page: Any) -> None:
    """Start a text-mode session on the share page and wait until it is live."""
    page.select_option("#mode", "text")
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)


def pages_to_check(page: Any, base_url: str, session: LiveSession) -> Iterator[str]:
    """Walk ``page`` through the five pages; yield each one's name once it is shown."""
    page.goto(f"{base_url}/accounts/login/")
    yield "login"
    log_in(page, base_url, "alice", "alice-pass-123")
    yield "share-idle"
    go_live(page)
    yield "share-live"
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).not_to_have_attribute("data-state", "live")
    page.goto(f"{base_url}/sessions/")
    expect(page.get_by_test_id("session-list")).to_be_visible()
    yield "history"
    page.goto(f"{base_url}/sessions/{session.pk}/")
    expect(page.get_by_test_id("transcript")).to_be_visible()
    yield "transcript"


def test_axe_finds_no_serious_violations(
    daphne_server: str, context_factory: Callable[..., Any], user: Any
) -> None:
    require(AXE_JS.exists(), f"{AXE_JS} is missing (make axe)")
    page = context_factory()
    session = recorded_session(user)
    found = {}
    for name in pages_to_check(page, daphne_server, session):
        found[name] = axe_violations(page, name)
    assert list(found) == ["login", "share-idle", "share-live", "history", "transcript"]
    assert found == {name: [] for name in found}


def accessible_name(page: Any) -> str:
    """The accessible name of the focused element, from its ARIA snapshot."""
    snapshot = page.locator("[data-a11y-focused]").aria_snapshot()
    match = re.match(r'- \w+ "(.*?)"', snapshot.splitlines()[0])
    return match.group(1) if match else ""


def tab_through(page: Any) -> list[dict[str, Any]]:
    """Press Tab once per tabbable control from the top; what each press focused."""
    expected = page.evaluate(TABBABLE)
    page.evaluate(START_AT_TOP)
    seen = []
    for _ in expected:
        page.keyboard.press("Tab")
        seen.append({**page.evaluate(FOCUSED), "name": accessible_name(page)})
    assert [s["index"] for s in seen] == expected, seen
    return seen


def test_the_share_page_is_usable_by_keyboard(
    daphne_server: str, context_factory: Callable[..., Any], user: Any
) -> None:
    page = context_factory()
    log_in(page, daphne_server, "alice", "alice-pass-123")
    idle = tab_through(page)
    assert "start" in [s["testid"] for s in idle]
    page.get_by_test_id("mode").focus()
    page.keyboard.press("ArrowDown")  # a native select: the keyboard picks "Text"
    assert page.get_by_test_id("mode").input_value() == "text"
    page.get_by_test_id("start").focus()
    page.keyboard.press("Enter")  # a real button: Enter starts the session
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live", timeout=15000)
    mic = page.get_by_test_id("mic-toggle")
    mic.focus()
    page.keyboard.press("Space")  # a toggle button: Space mutes the mic
    expect(mic).to_have_attribute("aria-pressed", "true")
    live = tab_through(page)
    assert {"stop", "mic-toggle", "text-input", "send-text"} <= {s["testid"] for s in live}
    for control in idle + live:
        assert control["name"].strip(), f"no accessible name: {control}"
        assert control["outlineStyle"] == "solid", f"no visible focus: {control}"
        assert control["outlineWidth"] >= 2, f"no visible focus: {control}"


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_no_page_scrolls_sideways_at_380_px(
    daphne_server: str, context_factory: Callable[..., Any], user: Any, locale: str
) -> None:
    page = context_factory(width=380, locale=locale)
    session = recorded_session(user)
    widths = {}
    for name in pages_to_check(page, daphne_server, session):
        widths[name] = page.evaluate(NO_SIDEWAYS_SCROLL)
    assert len(widths) == 5
    assert {n: w for n, w in widths.items() if w[0] > w[1]} == {}, widths
