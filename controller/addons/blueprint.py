"""render.yaml's `databases` and redis services as add-ons of the app a push deploys. The push
(controller/apps/releases.py) is given this function by the git receiver, which stands above
both apps and add-ons, so the use cases of one never import the other's."""
from __future__ import annotations

from core.models import App
from core.renderyaml import property_value

from controller.addons import kinds
from controller.addons.ops import provision, url
from controller.services import Out, Services


def attach_render_addons(svc: Services, app: App, render: dict, config: dict, user: str, out: Out
                         ) -> tuple[dict, list[str]]:
    """render.yaml's databases and redis services as add-ons of the app (created on the first push
    that names them, found again by their config var later), and the envVars that come from them.
    Returns (config with their URLs, the keys set). The caller holds the app's lock."""
    config = dict(config)
    changed: list[str] = []
    urls: dict[tuple[str, str], str] = {}
    attached = {a.var: a for a in svc.store.attachments(app=app)}
    for spec in render.get("addons", []):
        kind, name, var = spec["kind"], spec["name"], spec["var"]
        att = attached.get(var)
        if att is None and var in config:
            out(f"       render.yaml: {var} is already set, so no {kind} is created for {name}")
            urls[(kind, name)] = config[var]
            continue
        if att is None:
            as_name = None if var == kinds.kind_of(kind).var else var
            addon = provision(svc, app, kind, as_name, user, out)
            att = svc.store.get_attachment(addon, app)
            out(f"-----> render.yaml: {kind} {name} is the add-on {addon.name}, attached as {var}")
        else:
            addon = svc.store.get_addon(att.addon)
        urls[(kind, name)] = url(svc, addon, att)
        if config.get(var) != urls[(kind, name)]:
            config[var] = urls[(kind, name)]
            changed.append(var)
    for key, ref in sorted(render.get("env_from", {}).items()):
        value = property_value(urls[(ref["kind"], ref["name"])], ref["property"])
        if config.get(key) != value:
            config[key] = value
            changed.append(key)
            out(f"-----> Setting {key} from render.yaml ({ref['property']} of {ref['name']})")
    return config, changed
