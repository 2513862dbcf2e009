{
  "targets": [
    {
      "target_name": "srlm_blas",
      "sources": ["srlm_blas.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "<!(node -p \"process.env.SRLM_NATIVE_PORTABLE ? '-mtune=generic' : '-march=native'\")"],
      "libraries": ["-lopenblas"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"],
            "OTHER_LDFLAGS": ["-lopenblas"]
          }
        }]
      ]
    }
  ]
}
