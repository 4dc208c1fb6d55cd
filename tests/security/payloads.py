"""XSS payloads and the checks that none of them ran, for the browser security tests.

Every payload, if it ever executes, sets `window.__xss` (and tries `top.__xss`) to its number
or opens a dialog; every payload carries a visible marker `Xnn` so a test can also check the
text is still shown. `Watch` records dialogs and requests to hosts other than loopback (a
markdown image must not make the browser fetch a tracking pixel); `scan` looks for what an
injection leaves in the DOM even when it needs a click to fire (`on*` attributes, `javascript:`
URLs, injected `<script>`, `<iframe>`, `<object>`, `<embed>`, `<base>`, `<meta>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


def _js(n: int) -> str:
    return f"window.__xss={n}"


PAYLOADS: list[str] = [
    f"<script>{_js(1)}</script>X01",
    f'<img src=x onerror="{_js(2)}">X02',
    f'<svg onload="{_js(3)}">X03</svg>',
    f"<svg><script>{_js(4)}</script></svg>X04",
    '<iframe src="javascript:top.__xss=5"></iframe>X05',
    f'<a href="javascript:{_js(6)}">X06 click me</a>',
    f"[X07 link](javascript:{_js(7)})",
    "![X08 pixel](https://evil.example/pixel.png?x=8)",
    f'<details open ontoggle="{_js(9)}">X09</details>',
    f'<body onload="{_js(10)}">X10',
    f'<input autofocus onfocus="{_js(11)}">X11',
    f'"><script>{_js(12)}</script>X12',
    f"'><img src=x onerror={_js(13)}>X13",
    f"</script><script>{_js(14)}</script>X14",
    f"<scr<script>ipt>{_js(15)}</scr</script>ipt>X15",
    '<img src="x" onerror="&#119;indow.__xss=16">X16',
    f"<math><mtext><table><mglyph><style><img src=x onerror={_js(17)}>X17",
    f'<a href="jav&#x09;ascript:{_js(18)}">X18</a>',
    f"[X19 caps](JaVaScRiPt:{_js(19)})",
    f'<div style="background:url(javascript:{_js(20)})">X20</div>',
    "{{constructor.constructor('window.__xss=21')()}}X21",
    f":red[X22] :material/warning: $\\href{{javascript:{_js(22)}}}{{X22m}}$",
    f'<object data="javascript:{_js(23)}">X23</object>',
    '<embed src="data:text/html,<script>parent.__xss=24</script>">X24',
    f"\u202e<img src=x onerror={_js(25)}>X25",
    f"\uff1cscript\uff1e{_js(26)}\uff1c/script\uff1eX26",
    f"<img src=x\u200b onerror={_js(27)}>X27",
    f'<form><button formaction="javascript:{_js(28)}">X28</button></form>',
    f'<meta http-equiv="refresh" content="0;url=javascript:{_js(29)}">X29',
    f"<style>@import 'javascript:{_js(30)}';</style>X30",
    f'[X31 ref][r31]\n\n[r31]: javascript:{_js(31)} "t"',
    '<a href="data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194c3M9MzI8L3NjcmlwdD4=">X32</a>',
    '<base href="javascript:/">X33',
    "<img src=x onerror=alert(34)>X34",
    f'"]; x [label=<<b>X35</b>> URL="javascript:{_js(35)}"]; y [label="',
    f"<<SCRIPT>{_js(36)};//<</SCRIPT>X36",
    f'<a href="#" onclick="{_js(37)}">X37</a> [X37b](#" onmouseover="{_js(37)})',
]
MARKERS: list[str] = [f"X{n:02d}" for n in range(1, len(PAYLOADS) + 1)]
assert all(m in p for m, p in zip(MARKERS, PAYLOADS, strict=True))

ALL = "\n".join(PAYLOADS)


def chunks(limit: int) -> list[str]:
    """The payloads joined into pieces of at most `limit` characters (for length-limited
    fields); every payload is in exactly one piece."""
    out: list[str] = []
    current = ""
    for p in PAYLOADS:
        candidate = f"{current} {p}".strip()
        if len(candidate) > limit and current:
            out.append(current)
            current = p
        else:
            current = candidate
    if current:
        out.append(current)
    assert all(len(c) <= limit for c in out), "a single payload exceeds the limit"
    return out


_SCAN_JS = r"""() => {
  const found = [];
  const badUrl = /javascript:|vbscript:|data:text\/html|__xss/i;
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'data', 'xlink:href', 'background',
                    'content', 'style', 'poster', 'srcset', 'ping', 'codebase'];
  const docs = [document];
  for (const f of document.querySelectorAll('iframe')) {
    try { if (f.contentDocument) docs.push(f.contentDocument); } catch (e) {}
  }
  for (const doc of docs) {
    for (const el of doc.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      for (const a of el.attributes) {
        const name = a.name.toLowerCase();
        if (name.startsWith('on') || (urlAttrs.includes(name) && badUrl.test(a.value))) {
          found.push(`${tag} ${name}=${a.value.slice(0, 60)}`);
        }
      }
      // a script whose code IS a payload (scripts may carry payload text as JSON data)
      const code = (el.textContent || '').trim();
      if (tag === 'script' && /^(window|top|parent)\.__xss|^alert\(/.test(code)) {
        found.push('script: ' + code.slice(0, 60));
      }
      // elements that only a payload would have created
      if (['iframe', 'object', 'embed', 'base', 'meta', 'form', 'details', 'math'].includes(tag)
          && doc.body && doc.body.contains(el) && /X\d\d/.test(el.outerHTML.slice(0, 3000))
          && !el.hasAttribute('class')  // Streamlit's own (expanders are <details>) have one
          && !(tag === 'iframe' && el.hasAttribute('srcdoc'))) {
        found.push('element ' + el.outerHTML.slice(0, 80));
      }
    }
  }
  return found;
}"""

_FLAG_JS = "() => [window.__xss, (() => { try { return top.__xss } catch (e) { return null } })()]"


def scan(page: Any) -> list[str]:
    """What an injection left in the page's DOM (and same-origin iframes'); empty when clean."""
    return list(page.evaluate(_SCAN_JS))


def fired(page: Any) -> list[object]:
    """Sentinel values set by any payload, in the page and every frame."""
    out: list[object] = []
    for frame in page.frames:
        try:
            values = frame.evaluate(_FLAG_JS)
        except Exception:  # noqa: BLE001 - a frame navigating away has nothing to say
            continue
        out += [v for v in values if v is not None]
    return out


# Loopback only: the app makes participants' browsers talk to no third party (its favicon is
# local), so any other host is a request a payload caused, or a leak.
OWN_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class Watch:
    """Dialogs opened and requests to other hosts, for one page."""

    dialogs: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Watch:
        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_request(request: Any) -> None:
            host = urlsplit(request.url).hostname or ""
            if request.url.startswith(("http://", "https://")) and host not in OWN_HOSTS:
                self.foreign.append(request.url)

        page.on("dialog", on_dialog)
        page.on("request", on_request)
        return self


def assert_clean(page: Any, watch: Watch, where: str) -> None:
    """None of the payloads ran or left anything executable, and nothing was fetched from
    another host."""
    assert fired(page) == [], f"a payload executed on {where}"
    assert watch.dialogs == [], f"a dialog opened on {where}: {watch.dialogs}"
    assert scan(page) == [], f"injected markup on {where}: {scan(page)}"
    assert watch.foreign == [], f"requests to other hosts from {where}: {watch.foreign}"


def missing_markers(text: str, markers: list[str] | None = None) -> list[str]:
    """The payload markers not found in `text` (the payloads' text must still be shown)."""
    return [m for m in (MARKERS if markers is None else markers) if m not in text]
