"""What a browser would build from a page: its elements and attributes (html.parser), so a
test asserts that no injected element or event handler exists, not that a string is absent."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

# What each test plants wherever a value from data or a cloud API reaches a page.
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</title></style><iframe src=javascript:alert(4)>",
)
# The same without "/", for values that become file or folder names (batch file stems).
PATH_PAYLOADS = (
    '"><img src=x onerror=alert(5)>',
    "<svg onload=alert(6)>",
    "'><body onload=alert(7)>",
)
ACTIVE_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "body", "frame", "link"}


@dataclass
class Page:
    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text: str = ""  # every text node, decoded (what a reader sees)
    scripts: list[str] = field(default_factory=list)  # the text of every <script>

    def elements(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == name]

    def handlers(self) -> list[tuple[str, str]]:
        """Every event-handler attribute (onload, onerror, ...) on any element."""
        return [(tag, a) for tag, attrs in self.tags for a in attrs if a.lower().startswith("on")]

    def javascript_urls(self) -> list[str]:
        return [
            v
            for _, attrs in self.tags
            for v in attrs.values()
            if v and v.strip().lower().startswith("javascript:")
        ]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._text: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = []

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.page.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)
        else:
            self._text.append(data)


def parse(html_text: str) -> Page:
    p = _Parser()
    p.feed(html_text)
    p.close()
    p.page.text = "".join(p._text)
    return p.page


def assert_inert(page: Page, allowed: dict[str, int] | None = None) -> None:
    """No element a payload could have created, no event handler, no javascript: URL.
    ``allowed``: how many of an active tag the page itself legitimately has."""
    allowed = allowed or {}
    for tag in ACTIVE_TAGS:
        found = page.elements(tag)
        assert len(found) == allowed.get(tag, 0), f"<{tag}> elements: {found}"
    assert page.handlers() == [], page.handlers()
    assert page.javascript_urls() == []
