"""Git transport, one home: smart HTTP (http.py), and the SSH side: the platform's sshd and
its keys file (sshd.py, sshkeys.py), the forced command run as `git` (ssh_command.py) and
the gateway that serves it (ssh_gateway.py). Both serve the repositories of controller/runtime/repos.py
and hand a push over to the use cases (controller/apps/releases.py). Kept free of imports: the
forced command runs under the system python3 with the stdlib only."""
