"""Put SQLite databases into WAL mode (kept in the file): readers no longer block writers.

Keystone and the others leave read transactions open on pooled connections; with the default
rollback journal the next write then fails with "database is locked".
"""

import sqlite3
import sys

for path in sys.argv[1:]:
    conn = sqlite3.connect(path)
    print(path, conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
    conn.close()
