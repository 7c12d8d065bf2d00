"""gunicorn entry: `gunicorn 'controller.daemons.wsgi:application()'`. One port serves the JSON API
and the git smart-HTTP receiver (/<app>.git/...)."""
from __future__ import annotations

from controller.daemons.webapp import create_app
from controller.git.http import GitApp
from controller.runtime.repos import GIT_PATH
from controller.services import Services
from controller.settings import Settings, from_env


class Dispatcher:
    def __init__(self, git, api):
        self.git = git
        self.api = api

    def __call__(self, environ, start_response):
        if GIT_PATH.fullmatch(environ.get("PATH_INFO", "")):
            return self.git(environ, start_response)
        return self.api(environ, start_response)


def application(settings: Settings | None = None):
    settings = settings or from_env()
    settings.ensure_dirs()
    svc = Services(settings)
    svc.store.migrate()
    return Dispatcher(GitApp(svc), create_app(settings, svc))
