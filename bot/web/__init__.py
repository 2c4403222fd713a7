"""`goat web`: a local page to see and correct what GOAT remembers (docs/web.md).

Server-rendered pages over Starlette, through the same ``Memory`` doors and the same commands as
every other face: ``app.py`` (the routes and what each does), ``access.py`` (the one-time link, the
server tokens, sessions and their CSRF tokens), ``views.py`` (the pages), ``charts.py`` (inline SVG
bars), ``imports.py`` (an upload imported behind the page, its progress), ``serve.py`` (the command).
Its template and static files ship beside it; nothing is fetched from elsewhere."""
