"""Screenshot a local web page with headless Chromium (Debian's `chromium` package).

    python tools/screenshot.py URL OUT.png [--size 1600,1000] [--wait-ms 15000]

The flags are the ones that work on a closed network (no background networking, no
component updates); --virtual-time-budget lets a single-page app finish rendering.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile


def screenshot(url: str, out: str, size: str = "1600,1000", wait_ms: int = 15000) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size}",
               f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--size", default="1600,1000")
    ap.add_argument("--wait-ms", type=int, default=15000)
    a = ap.parse_args()
    screenshot(a.url, a.out, a.size, a.wait_ms)
    print(a.out)
