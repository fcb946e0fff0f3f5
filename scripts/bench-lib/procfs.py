"""Sizes of a running process from /proc, shared by the bench harnesses."""


def status_kib(pid, keys=("VmHWM", "RssAnon", "RssFile")):
    """The named sizes (KiB) from /proc/<pid>/status; None for any not read."""
    found = dict.fromkeys(keys)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in found:
                    found[key] = int(rest.split()[0])
    except OSError:
        pass
    return found
