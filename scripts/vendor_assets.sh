#!/usr/bin/env bash
# Vendor the browser assets the site needs, so it never loads anything from a CDN.
#
#   bash scripts/vendor_assets.sh
#
# Fetches pinned tarballs of the npm packages `mermaid` and `katex` with `npm pack` (npm
# registry only; no install scripts run), checks each tarball against its pinned sha512, and
# copies exactly these files into docs/assets/vendor/ (which is committed):
#
#   mermaid/mermaid.min.js  mermaid/LICENSE
#   katex/katex.min.js  katex/katex.min.css  katex/fonts/*.woff2  katex/LICENSE
#   katex/contrib/auto-render.min.js   (math in notebook pages, which arithmatex never sees)
#
# Only the woff2 fonts are kept (every browser the site targets reads woff2); the CSS is
# rewritten so its @font-face rules name only those files, so no request can 404.
# mermaid stays on major 11 because that is the version mkdocs-material's bundle targets
# (it would otherwise fetch unpkg.com/mermaid@11). To upgrade: change a version below, put
# the new `npm view PKG@VERSION dist.integrity` beside it, re-run, and run the browser test.
set -euo pipefail

MERMAID_VERSION="11.17.2"
MERMAID_INTEGRITY="sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
KATEX_VERSION="0.19.1"
KATEX_INTEGRITY="sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=="

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/docs/assets/vendor"

for tool in npm node tar; do
  command -v "$tool" >/dev/null || { echo "vendor_assets: '$tool' is required but not found" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch NAME VERSION INTEGRITY -> unpacks the tarball into $WORK/NAME/package
fetch() {
  local name="$1" version="$2" integrity="$3" tgz got
  echo "vendor_assets: fetching $name@$version"
  tgz="$(cd "$WORK" && npm pack --silent --ignore-scripts "$name@$version" 2>/dev/null | tail -1)"
  [ -f "$WORK/$tgz" ] || { echo "vendor_assets: npm pack $name@$version produced no tarball" >&2; exit 1; }
  got="sha512-$(node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$WORK/$tgz")"
  if [ "$got" != "$integrity" ]; then
    echo "vendor_assets: $name@$version tarball integrity mismatch" >&2
    echo "  expected $integrity" >&2
    echo "  got      $got" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name"
  tar -xzf "$WORK/$tgz" -C "$WORK/$name"
}

fetch mermaid "$MERMAID_VERSION" "$MERMAID_INTEGRITY"
fetch katex "$KATEX_VERSION" "$KATEX_INTEGRITY"

# Build the new tree next to the old one, then swap, so a failure leaves the old files intact.
NEW="$WORK/vendor"
mkdir -p "$NEW/mermaid" "$NEW/katex/fonts" "$NEW/katex/contrib"

M="$WORK/mermaid/package"
cp "$M/dist/mermaid.min.js" "$M/LICENSE" "$NEW/mermaid/"

K="$WORK/katex/package"
cp "$K/dist/katex.min.js" "$K/LICENSE" "$NEW/katex/"
cp "$K"/dist/fonts/*.woff2 "$NEW/katex/fonts/"
cp "$K/dist/contrib/auto-render.min.js" "$NEW/katex/contrib/"
# Keep only the woff2 source of each @font-face, and check every url() left points at a file.
node - "$K/dist/katex.min.css" "$NEW/katex/katex.min.css" "$NEW/katex" <<'JS'
const fs = require("fs"), path = require("path");
const [src, dst, dir] = process.argv.slice(2);
let css = fs.readFileSync(src, "utf8");
css = css.replace(/,url\([^)]*\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)/g, "");
const urls = [...css.matchAll(/url\(([^)]*)\)/g)].map((m) => m[1].replace(/["']/g, ""));
const missing = urls.filter((u) => !fs.existsSync(path.join(dir, u)));
if (!urls.length || missing.length || !urls.every((u) => u.endsWith(".woff2"))) {
  console.error("vendor_assets: unexpected font URLs in katex.min.css:", missing.length ? missing : urls);
  process.exit(1);
}
fs.writeFileSync(dst, css);
JS

printf 'mermaid %s\nkatex %s\n' "$MERMAID_VERSION" "$KATEX_VERSION" > "$NEW/VERSIONS"

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$NEW" "$DEST"
echo "vendor_assets: wrote $(cd "$ROOT" && realpath --relative-to=. "$DEST") ($(du -sh "$DEST" | cut -f1))"
