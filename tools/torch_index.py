"""Which package index pip should take torch from: prints pip's arguments, one per line.

    python tools/torch_index.py            # e.g. "--extra-index-url\\nhttps://download.pytorch.org/whl/cpu"
    args=$(python tools/torch_index.py) && pip install $args torch==2.13.0

On Linux, PyPI's `torch` is the CUDA build (several GB of nvidia-* packages); PyTorch's CPU
wheel index serves `torch==2.13.0+cpu`, which the course's pin `torch==2.13.0` accepts and pip
prefers (a local version label sorts above the plain release). So on Linux the CPU index is
added as an *extra* index, after a quick probe: if it cannot be reached within a few seconds
(offline mirror, firewall, no DNS), one line on stderr says so and pip uses the ordinary
index alone. macOS and Windows get the ordinary wheels (they hold no CUDA).

BNCOURSE_TORCH_INDEX overrides the choice, without a probe:
    cpu       PyTorch's CPU index as extra index (even where it is not Linux)
    default   the ordinary index only (whatever pip is configured with)
    <url>     that index as extra index (http://, https:// or file://)
    auto      (or unset) the choice above

Only the standard library: it runs before anything is installed.
"""
import os
import sys
import threading
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
VARIABLE = "BNCOURSE_TORCH_INDEX"
TIMEOUT = 3.0  # seconds for the whole probe, name lookup included


def reachable(url, timeout=TIMEOUT):
    """True if the index's torch page answers within `timeout` seconds (DNS included: the
    probe runs in a thread and is abandoned at the deadline, as a stalled lookup ignores
    socket timeouts)."""
    page = url.rstrip("/") + "/torch/"
    result = []

    def probe():
        try:
            with urllib.request.urlopen(page, timeout=timeout) as response:
                response.read(1)
                result.append(200 <= response.status < 400)
        except Exception:  # unreachable, refused, timed out, HTTP error: all mean "not usable"
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def choose(environ=None, platform=None, url=CPU_INDEX, timeout=TIMEOUT):
    """(pip arguments, notice or None) for installing torch."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    wanted = environ.get(VARIABLE, "").strip()
    if wanted in ("", "auto"):
        if not platform.startswith("linux"):
            return [], None
        if reachable(url, timeout):
            return ["--extra-index-url", url], None
        return [], (f"note: PyTorch's CPU wheel index ({url}) could not be reached within {timeout:g} s: "
                    "installing torch from the ordinary index (on Linux without a local CPU wheel that is the "
                    f"CUDA build, several GB); set {VARIABLE}=cpu|default|<url> to choose")
    if wanted == "cpu":
        return ["--extra-index-url", url], None
    if wanted == "default":
        return [], None
    if wanted.startswith(("http://", "https://", "file://")):
        return ["--extra-index-url", wanted], None
    raise ValueError(f"{VARIABLE}={wanted!r}: expected auto, cpu, default or an index URL "
                     "(http://, https://, file://)")


def main():
    try:
        args, notice = choose()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if notice:
        print(notice, file=sys.stderr)
    print("\n".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
