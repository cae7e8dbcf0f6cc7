"""Waiting for a condition in tests: poll, never a timed assertion."""
import time


def wait_for(cond, what: str = "condition", timeout: float = 30.0, interval: float = 0.05):
    """cond()'s first truthy value within `timeout` seconds; else AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout:g} s)")
        time.sleep(interval)
