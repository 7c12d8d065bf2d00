"""The Heroku Platform API v3 face of Dockyard: pure functions that turn Dockyard's records into
the shapes Heroku's tools (the official `heroku` CLI) read, and Heroku's request shapes into
Dockyard's. No I/O here; controller/api/heroku*.py serve them over the same use cases as
Dockyard's own API."""
