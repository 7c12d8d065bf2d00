"""The web layer the API and the dashboard share: the request's services and app, audit."""
