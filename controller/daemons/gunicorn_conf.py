"""gunicorn settings for the API + git receiver. gthread workers keep heartbeating while a
request thread streams a long build, so no build is cut off by a worker timeout."""
from controller.settings import from_env

_s = from_env()
bind = f"{_s.api_host}:{_s.api_port}"
worker_class = "gthread"
workers = 2
threads = 16
timeout = _s.gunicorn_timeout
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# git push bodies are streamed to dulwich; never buffer them whole.
limit_request_line = 8190
