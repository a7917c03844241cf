#!/usr/bin/env bash
# Re-fetches the third-party files under web/assets/vendor/ from the npm registry, at pinned
# versions. The service embeds whatever is in web/ at build time; nothing is fetched at
# build or run time. Run it from anywhere, then rebuild (`cargo build`).
set -euo pipefail
cd "$(dirname "$0")/assets"

SWAGGER_UI_DIST=5.35.0
UPLOT=1.6.32

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # package version → unpacked in $work/<package>/package
    mkdir -p "$work/$1"
    (cd "$work/$1" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz)
}

fetch swagger-ui-dist "$SWAGGER_UI_DIST"
fetch uplot "$UPLOT"

rm -rf vendor
mkdir -p vendor/swagger-ui vendor/uplot
cp "$work/swagger-ui-dist/package/swagger-ui-bundle.js" \
   "$work/swagger-ui-dist/package/swagger-ui.css" \
   "$work/swagger-ui-dist/package/LICENSE" vendor/swagger-ui/
cp "$work/uplot/package/dist/uPlot.esm.js" \
   "$work/uplot/package/dist/uPlot.min.css" \
   "$work/uplot/package/LICENSE" vendor/uplot/
cat > vendor/VERSIONS <<VERSIONS
swagger-ui-dist $SWAGGER_UI_DIST (npm)
uplot $UPLOT (npm)
VERSIONS
echo "vendored: swagger-ui-dist $SWAGGER_UI_DIST, uplot $UPLOT"
