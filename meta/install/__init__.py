"""`netmeta install`, run by the DaemonSet's init container: main.py (the command), conf.py (the
CNI config it writes), files.py (whose file is it; safe writes), libdir.py (a copy of our
packages for the host), entrypoints.py (the executables' scripts; also used by the Makefile).

May import: `cni`, `delegates.registry`, and meta's config. Nothing of daemon/ or extender/."""
