"""What each kind of add-on is (pure: names, URLs and the commands the platform runs inside
the service container; no I/O). Secrets go to the service on stdin, never on a command line."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from core.errors import BadRequest

ADJECTIVES = ("amber", "brisk", "calm", "deep", "eager", "fair", "glad", "keen", "lucid", "mellow",
              "noble", "quiet", "rapid", "solid", "tidy", "vivid", "warm", "young")
_AS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Kind:
    name: str              # postgres | redis
    var: str               # the default config var
    scheme: str
    port: int
    backup_ext: str        # the file type of its backups

    def url(self, host: str, user: str, password: str, database: str) -> str:
        return f"{self.scheme}://{user}:{password}@{host}:{self.port}/{database}"


POSTGRES = Kind("postgres", "DATABASE_URL", "postgres", 5432, "dump")
REDIS = Kind("redis", "REDIS_URL", "redis", 6379, "rdb")
KINDS = {"postgres": POSTGRES, "redis": REDIS}
ALIASES = {"postgresql": "postgres", "heroku-postgresql": "postgres", "pg": "postgres", "heroku-redis": "redis"}


def kind_of(name: object) -> Kind:
    key = ALIASES.get(str(name), str(name)) if isinstance(name, str) else ""
    if key not in KINDS:
        raise BadRequest(f"Unknown add-on service {str(name)[:40]!r}: use postgres or redis "
                         "(e.g. `dockyard addons:create postgres -a APP`).")
    return KINDS[key]


def var_for(kind: Kind, as_name: str | None) -> str:
    """DATABASE_URL / REDIS_URL, or NAME_URL with --as NAME."""
    if not as_name:
        return kind.var
    if not _AS_RE.fullmatch(as_name):
        raise BadRequest(f"Invalid --as {as_name[:40]!r}: use letters, digits and '_', starting with a "
                         "letter (e.g. --as ANALYTICS sets ANALYTICS_URL).")
    upper = as_name.upper()
    return upper if upper.endswith("_URL") else f"{upper}_URL"


def new_name(kind: Kind) -> str:
    return f"{kind.name}-{secrets.choice(ADJECTIVES)}-{secrets.randbelow(9000) + 1000}"


def new_user(prefix: str = "u") -> str:
    return prefix + secrets.token_hex(6)


def new_password() -> str:
    return secrets.token_hex(20)


def _lit(value: str) -> str:
    """An SQL string literal (the values are generated hex, but quote them anyway)."""
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


# ---- Postgres: psql as the in-container superuser, SQL on stdin --------------------------------
def psql(database: str = "postgres") -> list[str]:
    return ["psql", "-h", "/tmp", "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]


PG_READY = ["pg_isready", "-h", "/tmp", "-U", "postgres"]


def pg_create_owner(user: str, password: str, database: str) -> tuple[str, str]:
    """(SQL in `postgres`, SQL in the new database): the owner role and its database, which
    nobody else may connect to."""
    first = (f"CREATE ROLE {_ident(user)} LOGIN PASSWORD {_lit(password)};\n"
             f"CREATE DATABASE {_ident(database)} OWNER {_ident(user)};\n"
             f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC;\n")
    second = f"ALTER SCHEMA public OWNER TO {_ident(user)};\n"
    return first, second


def pg_create_member(user: str, password: str, owner: str) -> str:
    """An attached app's own role: it logs in with its own password and acts as the owner."""
    return f"CREATE ROLE {_ident(user)} LOGIN PASSWORD {_lit(password)} IN ROLE {_ident(owner)};\n"


def pg_drop_member(user: str, owner: str) -> str:
    """Run in the add-on's database: what the role made goes to the owner, then the role goes."""
    return (f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {_lit(user)};\n"
            f"REASSIGN OWNED BY {_ident(user)} TO {_ident(owner)};\n"
            f"DROP OWNED BY {_ident(user)};\n"
            f"DROP ROLE {_ident(user)};\n")


def pg_dump(database: str) -> list[str]:
    return ["pg_dump", "-h", "/tmp", "-U", "postgres", "-Fc", "--no-owner", "--no-acl", database]


def pg_restore(database: str, owner: str) -> list[str]:
    return ["pg_restore", "-h", "/tmp", "-U", "postgres", "--no-owner", "--no-acl", "--role", owner,
            "-d", database, "--exit-on-error"]


PG_INFO_SQL = ("SELECT current_setting('server_version'), pg_database_size(current_database()), "
               "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), "
               "(SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
               "('pg_catalog', 'information_schema'));\n")


# ---- Redis: redis-cli as the in-container admin user, commands on stdin -----------------------
REDIS_CLI = ["dockyard-redis-admin"]
REDIS_PING = ["dockyard-redis-admin", "ping"]


def redis_create_user(user: str, password: str) -> str:
    return f"ACL SETUSER {user} reset on >{password} ~* &* +@all -@admin\nACL SAVE\n"


def redis_drop_user(user: str) -> str:
    return f"ACL DELUSER {user}\nACL SAVE\n"


REDIS_DUMP = ["dockyard-redis-admin", "--rdb", "-"]
REDIS_INFO = ["dockyard-redis-admin", "INFO"]


def parse_redis_info(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and not key.startswith("#"):
            out[key] = value
    return out
