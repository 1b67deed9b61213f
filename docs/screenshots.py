"""Screenshots of a run's TensorBoard views, taken in a headless browser (for the README).

    python docs/screenshots.py outputs/kmnist_conv/<date>_<time> --out docs/img

Starts TensorBoard on the loopback address over ``<run>/tensorboard`` and has Chromium (Debian:
``apt install chromium``; or ``--browser`` naming another Chromium or Chrome) load each view
and save it as ``<out>/<view>.png``: ``projector`` (the embedding projector, drawn with
SwiftShader, the CPU's WebGL), ``pr_curves``, ``histograms`` and ``custom_scalars``. Runs offline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

VIEWS = ("projector", "pr_curves", "histograms", "custom_scalars")


def serve(logdir: Path) -> str:
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"])
    url = tb.launch().rstrip("/")
    end = time.monotonic() + 60  # the projector finds its runs in a thread
    while time.monotonic() < end:
        import json

        listing = json.loads(urllib.request.urlopen(url + "/data/plugins_listing", timeout=30).read())
        if listing.get("projector", {}).get("enabled"):
            break
        time.sleep(0.5)
    return url


def shoot(browser: str, url: str, png: Path, size: str, wait_ms: int) -> None:
    subprocess.run([browser, "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars",
                    f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={png}", url],
                   check=True, capture_output=True, timeout=300)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (holding tensorboard/)")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"))
    parser.add_argument("--size", default="1400,900", help="window width,height in pixels")
    parser.add_argument("--wait-ms", type=int, default=30000, help="virtual time for a view to load and draw")
    parser.add_argument("--prefix", default="", help="file name prefix, e.g. kmnist_")
    args = parser.parse_args(argv)
    if not args.browser:
        sys.exit("error: no Chromium found (apt install chromium, or --browser=<path>)")
    logdir = args.run / "tensorboard"
    if not logdir.is_dir():
        sys.exit(f"error: {logdir} does not exist (the run argument must be a run folder with TensorBoard logs)")
    url = serve(logdir)
    args.out.mkdir(parents=True, exist_ok=True)
    for view in args.views.split(","):
        png = args.out / f"{args.prefix}{view}.png"
        shoot(args.browser, f"{url}/#{view}", png, args.size, args.wait_ms)
        print(png)


if __name__ == "__main__":
    main()
