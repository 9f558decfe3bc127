"""The web page of ``edge serve`` at ``/``: people, recent faces, visitors, cameras, status.

Server-rendered HTML with a few lines of inline JavaScript at most, no build step and
nothing from a CDN (it works offline on a Pi); readable on a phone. The same token as
the API, typed once into a login form and kept in an HttpOnly, SameSite=Strict cookie
(never in a URL). ``pages`` writes the HTML, ``routes`` serves it.
"""
