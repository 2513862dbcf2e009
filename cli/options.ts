// Flags shared by every command, turned into the dotted config paths that config/load.ts takes.
import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";

export interface CommonFlags {
  config?: string;
  preset?: string;
  nats?: string;
  run?: string;
  out?: string;
  backend?: string;
  set?: string[];
}

export function withCommonFlags(command: Command): Command {
  return command
    .option("-c, --config <file>", "config file (JSON or YAML)")
    .option("-p, --preset <name>", "named preset (tiny, demo, default)")
    .option("--nats <url>", "NATS server URL(s), comma-separated; empty starts an embedded nats-server")
    .option("--run <id>", "run id: every subject of the run is under srlm.<id>.")
    .option("--out <dir>", "output folder for checkpoints and reports")
    .option("--backend <name>", "tfjs backend: auto, tfjs-node-gpu, tfjs-node, blas, wasm, cpu")
    .option("--set <path=value...>", "any config field, e.g. --set selfReward.iterations=3");
}

export function configFromFlags(flags: CommonFlags): Config {
  const paths: Record<string, unknown> = {
    "nats.url": flags.nats,
    run: flags.run,
    out: flags.out,
    "model.backend": flags.backend,
  };
  Object.assign(paths, parseAssignments(flags.set ?? []));
  return loadConfig({ file: flags.config, preset: flags.preset, flags: paths });
}

/** `--set PATH=VALUE` flags as config paths (the CLI's and the benches' alike). */
export function parseAssignments(assignments: readonly string[]): Record<string, string> {
  const paths: Record<string, string> = {};
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0)
      throw new Error(`--set ${assignment}: expected PATH=VALUE, e.g. --set selfReward.iterations=3`);
    paths[assignment.slice(0, eq)] = assignment.slice(eq + 1);
  }
  return paths;
}
