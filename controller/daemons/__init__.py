"""The platform's processes: the API's WSGI app and gunicorn settings, the router, reconciler
and metrics loops, the supervisor, the registry wrapper and `manage` (admin commands)."""
