"""The HTML of the web page: one layout, one function per page, every value escaped."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote

from edge.gallery.recent import Kept
from edge.gallery.review import Visitor
from edge.gallery.store import PersonInfo

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#234;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;
align-items:center}header a{color:#fff;text-decoration:none}header b{margin-right:auto}
main{padding:1em;max-width:60em;margin:auto}
section{background:#fff;border-radius:8px;padding:1em;margin-bottom:1em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.6em;width:14em}
.card img{width:96px;height:96px;object-fit:cover;border-radius:4px;float:left;
margin-right:.5em}.card form{display:inline}.known{color:#163}.unknown{color:#a40}
button{margin:.2em 0;padding:.3em .6em}input[type=text],input[type=password]{width:9em}
.note{color:#666;font-size:.9em}.live{max-width:100%;border-radius:6px}
table{border-collapse:collapse}td,th{padding:.3em .6em;text-align:left}
.flash{background:#ffd;padding:.6em;border-radius:6px}
"""
NAV = (("/", "Status"), ("/people", "People"), ("/recent", "Recent"), ("/visitors", "Visitors"))


def layout(title: str, body: str, flash: str | None = None, nav: bool = True) -> str:
    """The page around ``body``: viewport for phones, the menu, an optional message."""
    links = "".join(
        f'<a href="{href}">{text}</a>' for href, text in (*NAV, ("/cameras", "Cameras"))
    )
    menu = (
        f"<header><b>facelens</b>{links}"
        '<form method="post" action="/logout"><button>Log out</button></form></header>'
        if nav
        else "<header><b>facelens</b></header>"
    )
    note = f'<p class="flash">{escape(flash)}</p>' if flash else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · facelens</title><style>{STYLE}</style></head>"
        f"<body>{menu}<main><h1>{escape(title)}</h1>{note}{body}</main></body></html>"
    )


def login(error: str | None = None) -> str:
    form = (
        '<section><form method="post" action="/login">'
        '<label>API token <input type="password" name="token" autocomplete="current-password" '
        "autofocus></label> <button>Log in</button></form>"
        '<p class="note">The token <code>edge serve</code> printed on its first start '
        "(or <code>$FACELENS_TOKEN</code>). It is kept in a cookie for this site only.</p>"
        "</section>"
    )
    return layout("Log in", form, error, nav=False)


def status(info: dict[str, Any], flash: str | None = None) -> str:
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in info.items()
    )
    return layout("Status", f"<section><table>{rows}</table></section>", flash)


def _button(action: str, text: str, name_field: bool = False, value: str = "") -> str:
    field = (
        f'<input type="text" name="name" placeholder="who" value="{escape(value)}" required> '
        if name_field
        else ""
    )
    button = f"<button>{escape(text)}</button>"
    return f'<form method="post" action="{escape(action)}">{field}{button}</form>'


def people(everyone: Iterable[PersonInfo], flash: str | None = None) -> str:
    rows = "".join(
        f"<tr><td>{escape(p.name)}</td><td>{p.embeddings} view(s)</td>"
        f"<td>{escape(p.enrolled[:10])}</td><td>"
        + _button(f"/people/forget?name={_q(p.name)}", "Forget")
        + "</td></tr>"
        for p in everyone
    )
    enrol = (
        '<section><h2>Enrol from photos</h2><form method="post" action="/people/enrol" '
        'enctype="multipart/form-data"><input type="text" name="name" placeholder="name" '
        'required> <input type="file" name="image" accept="image/*" multiple required> '
        '<button>Enrol</button></form><p class="note">Or from a recent face: '
        '<a href="/recent">Recent</a>.</p></section>'
    )
    table = f"<section><table>{rows}</table></section>" if rows else "<p>No one enrolled yet.</p>"
    return layout("People", table + enrol, flash)


def _card(k: Kept) -> str:
    who = escape(k.name) if k.name else k.status
    note = f"<br><i>{escape(k.corrected)}</i>" if k.corrected else ""
    base = f"/recent/{k.id}"
    actions = []
    if k.name is not None and not k.corrected:
        actions += [
            _button(f"{base}/confirm", f"Yes, {k.name}"),
            _button(f"{base}/reject", f"Not {k.name}"),
        ]
    actions += [
        _button(f"{base}/rename", "It was", name_field=True),
        _button(f"{base}/delete", "Delete"),
    ]
    return (
        f'<div class="card" id="appearance-{k.id}"><img src="{base}.jpg" alt="face #{k.id}">'
        f'<b class="{k.status}">{who}</b> {k.score:.2f}<br>#{k.id} {escape(k.camera)}<br>'
        f"{escape(k.when)}{note}<div style='clear:both'>{''.join(actions)}</div></div>"
    )


def recent(kept: list[Kept], keeping: float | None, flash: str | None = None) -> str:
    try_photo = (
        '<section><h2>Try a photo</h2><form method="post" action="/recent/identify" '
        'enctype="multipart/form-data"><input type="file" name="image" accept="image/*" '
        "required> <button>Identify</button></form></section>"
    )
    if keeping is None:
        head = "<p>Nothing is kept: start <code>edge serve --keep-recent DAYS</code> to review."
        head += "</p>"
    else:
        head = f'<p class="note">Kept for {keeping:g} day(s), encrypted; then erased for good.</p>'
    cards = "".join(_card(k) for k in kept) or "<p>No appearance kept yet.</p>"
    return layout("Recent", try_photo + head + f'<div class="cards">{cards}</div>', flash)


def visitors(found: list[Visitor], flash: str | None = None) -> str:
    blocks = []
    for v in found:
        faces = "".join(
            f'<img src="/recent/{k.id}.jpg" alt="#{k.id}" width="64" height="64">'
            for k in v.appearances[:6]
        )
        name = _button(f"/visitors/{v.number}/name", "Name", name_field=True)
        blocks.append(
            f'<section id="visitor-{v.number}"><b>{escape(v.describe())}</b><br>{faces}<br>'
            f"{name}</section>"
        )
    body = "".join(blocks) or "<p>No unknown visitor kept.</p>"
    return layout("Visitors", body, flash)


def cameras(names: list[str], states: dict[str, str]) -> str:
    body = "".join(
        f'<section><h2>{escape(n)} <small class="note">{escape(states.get(n, ""))}</small></h2>'
        f'<img class="live" src="/cameras/{_q(n)}/live" alt="{escape(n)} live"></section>'
        for n in names
    )
    return layout(
        "Cameras", body or "<p>No camera: start <code>edge serve --camera NAME=SOURCE</code>.</p>"
    )


def _q(text: str) -> str:
    return quote(text, safe="")
