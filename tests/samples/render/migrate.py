"""render.yaml's preDeployCommand: creates the table the page reads."""
import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY)")
    conn.execute("INSERT INTO visits DEFAULT VALUES")
print("migrated")
