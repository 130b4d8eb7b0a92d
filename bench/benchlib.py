"""What the benches share: the processes of a Stowage stack (for perf and peak memory) and the
restore's settings in its configuration. Import it after putting tests/integration on sys.path
(the benches do, for conftest)."""
import os
import subprocess

import psycopg2


def children(pid_file):
    """The pids (text) of the children of the process whose pid the file holds."""
    with open(pid_file) as f:
        parent = f.read().strip()
    out = subprocess.run(["pgrep", "-P", parent], capture_output=True, text=True).stdout
    return out.split()


def stack_processes(stack):
    """The processes a console request runs in: web workers, their PostgreSQL backends, nginx."""
    conn = psycopg2.connect(host=os.path.join(stack.root, "pg"), port=stack.pg_port, user="postgres", dbname="stowage")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'stowage-web'")
        backends = [str(r[0]) for r in cur.fetchall()]
    conn.close()
    return {"web": children(os.path.join(stack.root, "run", "web.pid")), "pg": backends,
            "nginx": children(os.path.join(stack.root, "nginx", "nginx.pid"))}


def set_settings(conf, parallelism=None, rate=None):
    """restore_parallelism and restore_rate_limit in the stack's configuration (read by each
    restore job); None leaves one at its shipped default. A bench row that sets one is not the
    shipped defaults, and says so."""
    with open(conf) as f:
        lines = [line for line in f if not line.startswith(("restore_parallelism", "restore_rate_limit"))]
    lines += [f"restore_parallelism = {parallelism}\n"] if parallelism is not None else []
    lines += [f"restore_rate_limit = {rate}\n"] if rate is not None else []
    with open(conf, "w") as f:
        f.writelines(lines)
