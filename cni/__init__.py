"""The CNI protocol as a library any plugin could use: the request (CNI_* environment + stdin
config), results and their versions, error JSON, invoking other plugins the way libcni does,
state files and locks, the shim <-> daemon wire format, logging that never touches stdout.

May import: the standard library and third-party packages (pyroute2, urllib3, yaml) only.
Never `meta`, `delegates` or `tests`, and it names none of our modules or plugins in its code
(tests/test_architecture.py checks both)."""
