"""gunicorn settings for the API + git receiver. gthread workers keep heartbeating while a
request thread streams a long build, so no build is cut off by a worker timeout."""
from gunicorn.glogging import Logger

from controller.settings import from_env

_s = from_env()
bind = f"{_s.api_host}:{_s.api_port}"
worker_class = "gthread"
workers = _s.api_workers
threads = _s.api_threads
timeout = _s.gunicorn_timeout
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# git push bodies are streamed to dulwich; never buffer them whole.
limit_request_line = 8190


class RedactingLogger(Logger):
    """The access log without the secrets of log-stream URLs (such a URL is its own credential)."""

    def atoms(self, resp, req, environ, request_time):
        # imported here, in the worker (whose application loaded it already): the master, which
        # only reads this file, does not carry the log-stream module and what it imports
        from controller.observe.heroku_logs import redact_secrets
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_secrets(atoms[key])
        return atoms


logger_class = RedactingLogger
