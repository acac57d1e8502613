#!/usr/bin/env bash
# Install what the site serves itself, so that it reads offline: no CDN at reading time.
#   MathJax 3 (math), RequireJS + the ipywidgets HTML manager (widgets from their saved state),
#   Noto Sans SC (Chinese text on machines without a CJK font; the build cuts it to the
#   characters the pages use, see _ext/gantut_book.py).
# They come from the npm registry at build time, pinned, into book/_static/vendor/ (not committed).
set -euo pipefail
cd "$(dirname "$0")"
npm_dir=../build/npm
dest=_static/vendor
npm install --prefix "$npm_dir" --no-save --no-audit --no-fund --loglevel=error \
    mathjax@3.2.2 requirejs@2.3.7 @jupyter-widgets/html-manager@1.0.6 @fontsource/noto-sans-sc@5.3.0
mods="$npm_dir/node_modules"
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/mathjax/output" "$dest.tmp/html-manager" "$dest.tmp/noto-sans-sc"
# MathJax: the TeX -> CommonHTML component, its fonts, and what it loads on demand (TeX extensions,
# menu, accessibility); not the speech engine (sre) or the SVG output.
cp -r "$mods/mathjax/es5/tex-chtml.js" "$mods/mathjax/es5/input" "$mods/mathjax/es5/ui" \
      "$mods/mathjax/es5/a11y" "$dest.tmp/mathjax/"
cp -r "$mods/mathjax/es5/output/chtml" "$dest.tmp/mathjax/output/"
cp "$mods/requirejs/require.js" "$dest.tmp/"
cp "$mods/@jupyter-widgets/html-manager/dist/embed-amd.js" "$mods/@jupyter-widgets/html-manager/dist/"*.woff* \
   "$dest.tmp/html-manager/"
cp "$mods/mathjax/LICENSE" "$dest.tmp/mathjax/"
# Noto Sans SC, regular weight, its simplified-Chinese cut (7,946 characters); WOFF rather than
# WOFF2 so that fontTools can cut it without brotli.
cp "$mods/@fontsource/noto-sans-sc/files/noto-sans-sc-chinese-simplified-400-normal.woff" \
   "$dest.tmp/noto-sans-sc/noto-sans-sc-400.woff"
cp "$mods/@fontsource/noto-sans-sc/LICENSE" "$dest.tmp/noto-sans-sc/"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "installed MathJax, RequireJS, the ipywidgets HTML manager and Noto Sans SC into book/$dest ($(du -sh "$dest" | cut -f1))"
