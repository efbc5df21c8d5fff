{
  "variables": {
    "rbd_libs": "<!(pkg-config --libs librbd librados 2>/dev/null || echo -lrbd -lrados)"
  },
  "targets": [
    {
      "target_name": "rbd_stream",
      "sources": [
        "native/addon.cc",
        "native/util/errors.cc",
        "native/util/handles.cc",
        "native/util/aio.cc",
        "native/connection.cc",
        "native/pool.cc",
        "native/image.cc",
        "native/snapshot.cc",
        "native/group.cc",
        "native/diff.cc",
        "native/object_map.cc",
        "native/mirror/pool.cc",
        "native/mirror/image.cc",
        "native/copy/engine.cc",
        "native/copy/object_writes.cc",
        "native/copy/shared_buffer.cc",
        "native/copy/binding.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
      "libraries": ["<@(rbd_libs)", "-ldl"]
    }
  ]
}
