# The librbd/librados addon behind src/storage/native.ts. `pnpm run build:native` (node-gyp rebuild
# --nodedir=/usr) builds build/Release/volplugin_rbd.node; pnpm install runs it too.
{
  "targets": [
    {
      "target_name": "volplugin_rbd",
      "sources": ["<!@(node -e \"require('fs').readdirSync('native').filter(f=>f.endsWith('.cc')).sort().forEach(f=>console.log('native/'+f))\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=9", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lrbd", "-lrados"]
    }
  ]
}
