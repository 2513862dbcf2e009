// Builds the optional OpenBLAS addon (native/build/Release/srlm_blas.node) at `npm install`.
// Missing prerequisites are not an error: srlm then runs on the wasm or cpu backend, so this
// script explains what is missing and exits 0 to let the install finish.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, "build", "Release", "srlm_blas.node");
const cxx = process.env.CXX || "c++";

function skip(reason) {
  console.log(`srlm: native blas addon not built: ${reason}`);
  console.log(
    "srlm: install a C++ compiler and libopenblas-dev, then run `npm install` again for the fast backend",
  );
  process.exit(0);
}

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: "utf8", ...opts });
}

if (process.env.SRLM_SKIP_NATIVE) skip("SRLM_SKIP_NATIVE is set");

const version = run(cxx, ["--version"]);
if (version.error || version.status !== 0) skip(`no C++ compiler (${cxx}) found`);

// Compile and link a one-line program against OpenBLAS: the same check the real build depends on.
const probeDir = mkdtempSync(join(tmpdir(), "srlm-blas-probe-"));
try {
  const src = join(probeDir, "probe.cc");
  writeFileSync(
    src,
    "#include <cblas.h>\nint main() { return cblas_sdot(0, nullptr, 1, nullptr, 1) != 0.0f; }\n",
  );
  const probe = run(cxx, [src, "-o", join(probeDir, "probe"), "-lopenblas"]);
  if (probe.status !== 0) {
    const why = (probe.stderr || "").split("\n").find((l) => l.includes("error")) ?? "compile failed";
    skip(`OpenBLAS (cblas.h, -lopenblas) not usable: ${why.trim()}`);
  }
} finally {
  rmSync(probeDir, { recursive: true, force: true });
}

// node-gyp ships inside npm; npm tells lifecycle scripts where, otherwise look next to node.
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      "..",
      "lib",
      "node_modules",
      "npm",
      "node_modules",
      "node-gyp",
      "bin",
      "node-gyp.js",
    ),
  ];
  return candidates.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
const args = ["rebuild", "--release"];
// Use the headers installed with this node when present, so no download is needed.
const localHeaders = join(dirname(process.execPath), "..", "include", "node", "node_api.h");
if (!process.env.npm_config_nodedir && existsSync(localHeaders)) {
  args.push(`--nodedir=${join(dirname(process.execPath), "..")}`);
}
const result = gyp
  ? run(process.execPath, [gyp, ...args], { cwd: here, stdio: "inherit" })
  : run("npm", ["exec", "--yes", "node-gyp", "--", ...args], { cwd: here, stdio: "inherit", shell: true });

if (result.status !== 0 || !existsSync(output)) skip("node-gyp build failed (see the output above)");
console.log(`srlm: built ${output}`);
