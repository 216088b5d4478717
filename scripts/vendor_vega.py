"""Vendor vega, vega-lite and vega-embed into .dvc/plots/offline.html so `dvc plots show` works offline.

DVC's default page loads the three libraries from a CDN; this template inlines their minified
builds instead. Run it (needs npm and the npm registry) only to change the pinned versions:

    python scripts/vendor_vega.py

It installs the pinned packages into a temporary folder, inlines the builds into the HTML
template and writes every license of the installed packages, identical texts once, to
LICENSES/vega-js.txt.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUILDS = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")  # what DVC substitutes in the template
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>aligntax plots</title>
    <!-- vendored by scripts/vendor_vega.py: VERSIONS; licenses in LICENSES/vega-js.txt -->
INLINE
    <style>
        body { font-family: sans-serif; margin: 16px; }
        div[id] { margin-bottom: 24px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def npm_install(folder: Path) -> Path:
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *specs], check=True)
    return folder / "node_modules"


def page(modules: Path) -> str:
    scripts = []
    for build in BUILDS:
        code = (modules / build).read_text(encoding="utf-8")
        if "</script" in code.lower() or any(p in code for p in PLACEHOLDERS):
            raise ValueError(f"{build}: holds '</script' or a DVC placeholder; it cannot be inlined as is")
        scripts.append(f"    <script>/* {build} */\n{code}\n    </script>")
    versions = ", ".join(f"{n} {v}" for n, v in PACKAGES.items())
    return PAGE.replace("VERSIONS", versions).replace("INLINE", "\n".join(scripts))


def licenses(modules: Path) -> str:
    """Every installed package's license file, each distinct text once with the packages under it."""
    texts: dict[str, list[str]] = {}
    for manifest in sorted(modules.glob("**/package.json")):
        folder = manifest.parent
        if folder.parent.name not in ("node_modules",) and not folder.parent.name.startswith("@"):
            continue
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        files = sorted(p for p in folder.iterdir() if p.name.upper().startswith(("LICENSE", "LICENCE")))
        text = files[0].read_text(encoding="utf-8").strip() if files else f"(no license file; declared: {meta.get('license')})"
        texts.setdefault(text, []).append(f"{meta['name']}@{meta['version']} ({meta.get('license')})")
    parts = [
        "Licenses of the JavaScript inlined in .dvc/plots/offline.html (vega, vega-lite, vega-embed from the npm",
        "registry) and of every package installed with them; the minified builds bundle some of these.",
        "Written by scripts/vendor_vega.py.",
    ]
    for text, names in texts.items():
        parts += ["", "=" * 78, "Packages: " + ", ".join(names), "-" * 78, text]
    return "\n".join(parts) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=".dvc/plots/offline.html", help="HTML template written (default: %(default)s)")
    p.add_argument("--licenses", default="LICENSES/vega-js.txt", help="license file written (default: %(default)s)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modules = npm_install(Path(tmp))
        html, notice = page(modules), licenses(modules)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(html, encoding="utf-8")
    Path(args.licenses).parent.mkdir(parents=True, exist_ok=True)
    Path(args.licenses).write_text(notice, encoding="utf-8")
    print(f"{args.out}: {len(html.encode()) / 1e6:.2f} MB; {args.licenses}")


if __name__ == "__main__":
    main()
