"""Which network namespace a netns path names. A path (/var/run/netns/<name>, or a runtime's
bind mount) is only a name: once its pod is gone the same path may be bind-mounted to another
pod's namespace. The namespace itself is identified by the nsfs inode the path resolves to
(st_dev, st_ino), unique while the namespace lives; ADD records it in the DEL cache so a later
DEL or reclaim can tell "still this pod's netns" from "a new pod's netns under the same path"."""
import os


def of(path: str | None) -> list | None:
    """[st_dev, st_ino] of the namespace `path` refers to now; None when there is none."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


def same(path: str | None, recorded) -> bool:
    """`path` still refers to the namespace recorded at ADD (False without a record: a path
    whose identity we never saw cannot be vouched for)."""
    return bool(recorded) and of(path) == list(recorded)
