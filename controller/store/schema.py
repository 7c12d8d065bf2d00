"""The database schema: ordered migrations, each applied once and never edited (a change
to the schema is a new migration appended at the end)."""
from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: users, tokens, apps, builds, releases, formation, healthy instances, platform log events
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash TEXT UNIQUE NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        current_version INTEGER NOT NULL DEFAULT 0,
        last_version INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE builds (
        id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        source_commit TEXT NOT NULL,
        method TEXT NOT NULL,
        image TEXT NOT NULL,
        process_types TEXT NOT NULL DEFAULT '{}',
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE releases (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        build_id TEXT REFERENCES builds(id),
        config TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT,
        PRIMARY KEY (app_id, version)
    );
    CREATE TABLE formation (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        PRIMARY KEY (app_id, type)
    );
    CREATE TABLE instances (
        container_id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        healthy_at TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        source TEXT NOT NULL,
        process TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_app ON events(app_id, id);
    """,
    # 2: the release processes run (config --no-restart leaves it behind the current one),
    # stopped process types, resource limits, health checks
    """
    ALTER TABLE apps ADD COLUMN live_version INTEGER NOT NULL DEFAULT 0;
    UPDATE apps SET live_version = current_version;
    ALTER TABLE formation ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE builds ADD COLUMN healthchecks TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE limits (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        memory_mb INTEGER,
        cpus REAL,
        PRIMARY KEY (app_id, type)
    );
    CREATE TABLE checks (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        spec TEXT NOT NULL,
        PRIMARY KEY (app_id, type)
    );
    """,
    # 3: the router's per-app state: custom domains, certificates, router settings
    """
    CREATE TABLE domains (
        hostname TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX domains_app ON domains(app_id);
    CREATE TABLE app_certs (
        app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        cert_pem TEXT NOT NULL,
        key_pem TEXT NOT NULL,
        info TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE router_settings (
        app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        settings TEXT NOT NULL DEFAULT '{}',
        updated_at TEXT NOT NULL
    );
    """,
    # 4: access: collaborators, SSH keys, audit log
    """
    CREATE TABLE collaborators (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        PRIMARY KEY (app_id, user_id)
    );
    CREATE TABLE ssh_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        fingerprint TEXT UNIQUE NOT NULL,
        public_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (user_id, name)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        app TEXT,
        detail TEXT NOT NULL DEFAULT '',
        status INTEGER
    );
    """,
    # 5: what happened to each instance after it passed its check: crashes (restarts by the
    # engine), the last exit code and whether the kernel killed it for memory; the exit code
    # of each release's release-phase command
    """
    ALTER TABLE instances ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN last_exit INTEGER;
    ALTER TABLE instances ADD COLUMN oom INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN crashed_at TEXT;
    ALTER TABLE releases ADD COLUMN release_phase_exit INTEGER
    """,
    # 6: metrics (instance samples at 0/60/600 s resolution, request counts per release per
    # minute, then per ten minutes), log drains, dashboard sessions (tied to the API token that opened them)
    """
    CREATE TABLE instance_samples (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        process TEXT NOT NULL,
        idx INTEGER NOT NULL,
        res INTEGER NOT NULL,
        at INTEGER NOT NULL,
        cpu REAL NOT NULL,
        mem INTEGER NOT NULL,
        mem_limit INTEGER NOT NULL,
        restarts INTEGER NOT NULL,
        uptime INTEGER NOT NULL
    );
    CREATE INDEX instance_samples_at ON instance_samples(res, at);
    CREATE INDEX instance_samples_app ON instance_samples(app_id, at);
    CREATE TABLE request_minutes (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        minute INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        s2xx INTEGER NOT NULL, s3xx INTEGER NOT NULL, s4xx INTEGER NOT NULL, s5xx INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        hist TEXT NOT NULL,
        span INTEGER NOT NULL DEFAULT 60,
        PRIMARY KEY (app_id, minute, version)
    );
    CREATE INDEX request_minutes_at ON request_minutes(minute);
    CREATE TABLE drains (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        UNIQUE (app_id, url)
    );
    CREATE TABLE dash_sessions (
        id_hash TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL REFERENCES tokens(token_hash) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """,
    # 7: tenancy: images an admin allowed for everyone; per-user quotas an admin set
    """
    CREATE TABLE allowed_images (
        image TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE user_quotas (
        user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        max_apps INTEGER,
        max_instances INTEGER,
        max_memory_mb INTEGER
    );
    """,
    # 8: add-ons: backing services (Postgres, Redis) and the apps attached to them
    """
    CREATE TABLE addons (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        service TEXT NOT NULL,
        app_id TEXT NOT NULL REFERENCES apps(id),
        memory_mb INTEGER NOT NULL,
        credentials TEXT NOT NULL,
        backup_at TEXT,
        node TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE addon_attachments (
        addon_id TEXT NOT NULL REFERENCES addons(id) ON DELETE CASCADE,
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        var TEXT NOT NULL,
        user TEXT NOT NULL,
        password TEXT NOT NULL,
        owner INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (addon_id, app_id),
        UNIQUE (app_id, var)
    );
    CREATE INDEX addon_attachments_app ON addon_attachments(app_id);
    """,
    # 9: what a build read from app.json besides checks (formation, scripts, env, cron, the
    # EXPOSEd port), and the scheduled jobs' runs (one row per job: the last slot fired)
    """
    ALTER TABLE builds ADD COLUMN manifest TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE cron_runs (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        job TEXT NOT NULL,
        last_slot TEXT NOT NULL,
        started_at TEXT,
        container_id TEXT,
        label TEXT,
        finished_at TEXT,
        exit_code INTEGER,
        PRIMARY KEY (app_id, job)
    );
    CREATE INDEX cron_runs_container ON cron_runs(container_id);
    """,
    # 10: an instance being stopped (SIGTERM sent, draining) is no longer serving but still
    # there: `ps` says "stopping", not "starting"; its row goes once its container is removed
    """
    ALTER TABLE instances ADD COLUMN stopping_at TEXT;
    """,
    # 11: Prometheus series every process records (core.prom): counters and histograms are
    # cumulative (added to), gauges set; a series tied to an app goes with it
    """
    CREATE TABLE prom_series (
        family TEXT NOT NULL,
        labels TEXT NOT NULL,
        app_id TEXT REFERENCES apps(id) ON DELETE CASCADE,
        value REAL NOT NULL DEFAULT 0,
        count INTEGER NOT NULL DEFAULT 0,
        buckets TEXT NOT NULL DEFAULT '{}',
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (family, labels)
    );
    CREATE INDEX prom_series_app ON prom_series(app_id);
    """,
    # 12: a user's email (optional, unique): Heroku's tools name users by email
    """
    ALTER TABLE users ADD COLUMN email TEXT;
    CREATE UNIQUE INDEX users_email ON users(email);
    """,
    # 13: destroyed apps whose add-on backups are kept (under DOCKYARD_HOME/backups/<app id>/)
    # for their owner and admins until DOCKYARD_DESTROYED_BACKUP_DAYS have passed; the id is
    # the app's, never reused, so the next app of the same name never sees them
    """
    CREATE TABLE destroyed_apps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        destroyed_at TEXT NOT NULL
    );
    """,
    # 14 (pipelines): pipelines, the apps coupled to them at a stage (a review app also names
    # its branch and last push), and promotions with each target's outcome
    """
    CREATE TABLE pipelines (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        review_apps INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE pipeline_couplings (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        app_id TEXT UNIQUE NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        branch TEXT,
        pushed_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX pipeline_couplings_pipeline ON pipeline_couplings(pipeline_id);
    CREATE TABLE pipeline_promotions (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
        source_app_id TEXT NOT NULL,
        source_version INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        targets TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # 15: autosleep: a process type sleeps (runs no instance, keeps its quantity) once the app
    # had no request for `after` seconds; `awake_at` is when it last woke or autosleep was set
    # (idleness counts from the later of it and the app's last request, kept per app by the
    # router process); `waking_since`: a wake is starting it (still routed to the wake listener)
    """
    CREATE TABLE autosleep (
        app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
        type TEXT NOT NULL,
        after_seconds INTEGER NOT NULL,
        awake_at REAL NOT NULL,
        sleeping_since REAL,
        waking_since REAL,
        PRIMARY KEY (app_id, type)
    );
    CREATE TABLE app_activity (
        app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
        last_request REAL NOT NULL
    );
    """,
)
