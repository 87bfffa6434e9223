#!/usr/bin/env bash
# Here (the build machine): packs what scripts/gpu-check.sh needs on a GPU machine that has no Node,
# no npm and no ../shared: a stripped, compressed Node, Node's headers, mocha's dependency closure and
# node-addon-api (.carry/), and a copy of the golden data (.carry-golden/, carried in its own call:
# with Node it would pass the 64 MiB a device call carries). Both folders are git-ignored.
# .carry/golden holds the part of the golden data that fits beside Node in one call (the cases the
# tests name, and the small ones: 7 of the 11 cases, about 24 MB): when .carry-golden was not
# carried, gpu-check.sh's prepare takes it, and the GPU tests run on those cases in the same call.
# RK_PACK_ADDONS="name=PATH ..." also packs addons built here (for the GPU's architecture, e.g. sm_90 only)
# into .carry/addons/NAME.node.xz, about 0.5 MB each against 2.3: gpu-check.sh runs them by name
# (RK_ADDON for test, sanitize and bench; RK_COMPARE entries; RK_TRACE_ADDONS), so a call can compare
# several builds and test one without building on the GPU machine (without it, .carry/addons is emptied).
#   bash scripts/gpu-pack.sh            then carry .carry, dist (and .carry-golden once, for all the cases)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry .carry-golden
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >> .git/info/exclude
grep -qx '/.carry-golden/' .git/info/exclude 2>/dev/null || echo '/.carry-golden/' >> .git/info/exclude
if [ ! -f .carry/node.xz ]; then
  strip -o .carry/node "$(command -v node)"
  xz -T2 -9 .carry/node
fi
NODE_INCLUDE=${NODE_INCLUDE:-$(dirname "$(dirname "$(command -v node)")")/include/node}
[ -f .carry/node-headers.tar.xz ] || tar -C "$(dirname "$NODE_INCLUDE")" -cJf .carry/node-headers.tar.xz node
deps=$(node -e '
  const fs = require("fs"), path = require("path"), seen = new Set();
  const walk = (n) => { if (seen.has(n)) return; seen.add(n);
    const j = JSON.parse(fs.readFileSync(path.join("node_modules", n, "package.json")));
    Object.keys(j.dependencies || {}).forEach(walk); };
  walk("mocha"); walk("node-addon-api"); console.log([...seen].join(" "));')
# shellcheck disable=SC2086
tar -C node_modules -cJf .carry/modules.tar.xz $deps
GOLDEN=${RK_GOLDEN_DIR:-../shared/golden}
rm -rf .carry-golden/golden && cp -r "$GOLDEN" .carry-golden/golden && chmod -R u+w .carry-golden/golden
rm -rf .carry/golden && mkdir -p .carry/golden
for c in tv_k80_b2_mixed d2_k20_b2_mixed odtk_k20_b2_mixed odtk_k4_b1_dense tv_k4_b1_dense_nms03 d2_k4_b1_edges; do
  cp "$GOLDEN/$c.json" "$GOLDEN/$c.npz" .carry/golden/
done
cp "$GOLDEN/nms_clustered_3000.npz" "$GOLDEN/README.md" .carry/golden/ && chmod -R u+w .carry/golden
for entry in ${RK_PACK_ADDONS:-}; do  # every entry checked before anything is replaced
  [ "${entry%%=*}" != "$entry" ] && [ -n "${entry%%=*}" ] && [ -f "${entry#*=}" ] ||
    { echo "RK_PACK_ADDONS: expected NAME=PATH of a built addon, got '$entry'"; exit 2; }
done
rm -rf .carry/addons && mkdir -p .carry/addons
for entry in ${RK_PACK_ADDONS:-}; do xz -T2 -9 -c "${entry#*=}" > ".carry/addons/${entry%%=*}.node.xz"; done
# The first call (golden data) can build too: it carries the headers and modules as well.
cp .carry/node-headers.tar.xz .carry/modules.tar.xz .carry-golden/
npm run -s build >/dev/null
du -sh .carry .carry-golden dist
