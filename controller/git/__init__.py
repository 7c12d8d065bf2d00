"""Git transport, one home: smart HTTP (http.py), the SSH side (the platform's sshd and its
keys file, the forced command run as `git`, and the gateway that serves it), and the app
repositories themselves (repos.py). A push hands over to the use cases (controller/releases.py).
Kept free of imports: the forced command runs under the system python3 with the stdlib only."""
