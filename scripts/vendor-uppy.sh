#!/usr/bin/env bash
# Refresh the Uppy bundle the upload page (`tusserver --ui`) serves, from the npm registry; no node_modules.
# Usage: scripts/vendor-uppy.sh [UPPY_VERSION]   (default: the pinned one below), then run tests/browser.
# Needs npm (Node 20+). Writes tusserver/ui/static/vendor/uppy/: uppy.min.mjs, uppy.min.css, LICENSE, VERSION
# and THIRD_PARTY_LICENSES (the bundle inlines ~25 packages: all MIT but js-base64, BSD-3-Clause, and
# mime-match, ISC, whose texts are added; check the list printed below against them on each refresh).
set -euo pipefail
UPPY_VERSION="${1:-6.0.1}"
JS_BASE64_VERSION=3.9.6   # the versions the bundle inlines (its package-lock / source map)
MIME_MATCH_VERSION=1.0.2
cd "$(dirname "$0")/.."
dest="${VENDOR_DEST:-tusserver/ui/static/vendor/uppy}"  # VENDOR_DEST: elsewhere (the drift test)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "uppy@$UPPY_VERSION" "js-base64@$JS_BASE64_VERSION" \
    "mime-match@$MIME_MATCH_VERSION" >/dev/null)
for tgz in "$work"/*.tgz; do
    mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"
done
uppy="$work/uppy-$UPPY_VERSION/package"
mkdir -p "$dest"
cp "$uppy/dist/uppy.min.mjs" "$uppy/dist/uppy.min.css" "$dest/"
cp "$uppy/LICENSE" "$dest/LICENSE"
echo "uppy@$UPPY_VERSION" >"$dest/VERSION"

# The packages the bundle inlines, from its source map (which is not shipped).
bundled="$(python3 - "$uppy/dist/uppy.min.mjs.map" <<'PY'
import json, re, sys
sources = json.load(open(sys.argv[1]))["sources"]
names = {m.group(1) for s in sources if (m := re.search(r"node_modules/((?:@[^/]+/)?[^/]+)", s))}
print("\n".join(sorted(names)))
PY
)"
{
    echo "uppy.min.mjs and uppy.min.css are the prebuilt bundle of the npm package uppy@$UPPY_VERSION"
    echo "(MIT, see LICENSE). The bundle also contains these packages:"
    echo
    echo "$bundled" | sed 's/^/  /'
    echo
    echo "All of them are under the MIT licence (their notices: the end of uppy.min.mjs), except the two below."
    echo
    echo "== js-base64@$JS_BASE64_VERSION (BSD-3-Clause) =="
    cat "$work/js-base64-$JS_BASE64_VERSION/package/LICENSE.md"
    echo
    echo "== mime-match@$MIME_MATCH_VERSION (ISC; the package ships no licence file, its package.json names ISC) =="
    echo "Copyright (c) Damon Oehlman <damon.oehlman@gmail.com>"
    echo
    cat <<'ISC'
Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is
hereby granted, provided that the above copyright notice and this permission notice appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE
INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE,
DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN
CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
ISC
} >"$dest/THIRD_PARTY_LICENSES"
echo "vendored uppy@$UPPY_VERSION into $dest; bundled packages:" $bundled
