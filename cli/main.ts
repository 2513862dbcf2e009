// The `srlm` command. Each subcommand loads only the modules it needs, so `srlm tap` on a laptop
// never loads TensorFlow.js.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { type CommonFlags, configFromFlags, withCommonFlags } from "./options.ts";

const program = new Command()
  .name("srlm")
  .description("Self-rewarding language models as actors over NATS")
  .showHelpAfterError();

withCommonFlags(program.command("run"))
  .description(
    "a whole run, one process per actor: self-rewarding (M0 → SFT → M1 → DPO iterations) or reft (warm-up SFT → PPO)",
  )
  .option("--method <name>", "self-rewarding (default) or reft")
  .option("--base <dir>", "start from this checkpoint folder instead of srlm's own M0")
  .option(
    "--resume",
    "go on with the run in --out from its last finished iteration, its config read from <out>/config.json (flags still override)",
  )
  .action(async (flags: CommonFlags & { base?: string; method?: string; resume?: boolean }) => {
    const { hadEmbeddedNats, runLoop } = await import("./run.ts");
    if (flags.base) flags.set = [...(flags.set ?? []), `model.base=${flags.base}`];
    if (flags.method) flags.set = [...(flags.set ?? []), `method=${flags.method}`];
    if (flags.resume) {
      if (!flags.out) throw new Error("--resume needs --out DIR, the folder of the run to go on with");
      const configFile = join(flags.out, "config.json");
      if (!existsSync(configFile))
        throw new Error(`--resume: ${configFile} is missing; it is written when \`srlm run\` starts a run`);
      flags.config ??= configFile;
      // The embedded server the run had died with it; a new one is started.
      if (flags.nats === undefined && hadEmbeddedNats(flags.out)) flags.nats = "";
    }
    process.exitCode = await runLoop(configFromFlags(flags), {}, { resume: flags.resume });
  });

withCommonFlags(program.command("seeds"))
  .description(
    "the same run for several seeds (data, model initialisation and sampling), each in <out>/seed-N, then the per-seed table and the mean across seeds",
  )
  .option("--seeds <n|list>", "how many seeds from data.seed, or a list such as 7,8,9", "3")
  .option("--method <name>", "self-rewarding (default) or reft")
  .action(async (flags: import("./seeds.ts").SeedsFlags & { method?: string }) => {
    const { seedsCommand } = await import("./seeds.ts");
    if (flags.method) flags.set = [...(flags.set ?? []), `method=${flags.method}`];
    process.exitCode = await seedsCommand(flags);
  });

withCommonFlags(program.command("up"))
  .description(
    "start NATS (embedded unless --nats) and one process per actor; they wait for work until Ctrl-C",
  )
  .action(async (flags: CommonFlags) => {
    const { up } = await import("./run.ts");
    process.exitCode = await up(configFromFlags(flags));
  });

withCommonFlags(program.command("actor"))
  .description("run one actor process (on any host) against the configured NATS")
  .argument("<name>", "generator | judge | reference | trainer")
  .option("--impl <name>", "implementation, e.g. a judge: self, verifier, openai, ab")
  .option("--ab <a,b>", "the two judges of --impl ab, primary first (judge.ab, default self,verifier)")
  .option("--instance <id>", "instance name (default: host-pid)")
  .action(async (name: string, flags: CommonFlags & { impl?: string; instance?: string; ab?: string }) => {
    const { startActor } = await import("../actors/start.ts");
    if (flags.ab) flags.set = [...(flags.set ?? []), `judge.ab=${flags.ab}`];
    await startActor(name, configFromFlags(flags), { impl: flags.impl, instance: flags.instance });
  });

withCommonFlags(program.command("serve"))
  .description(
    "an OpenAI-compatible HTTP server (/v1/models, /v1/completions, /v1/chat/completions) over a checkpoint (--model) or a run's newest weights (--run with --nats)",
  )
  .option("--model <dir>", "checkpoint folder to serve; without it, follow the run's published weights")
  .option("--model-name <id>", "the model id clients send (default: the folder's name, or srlm-<run>)")
  .option("--host <host>", "address to listen on", "127.0.0.1")
  .option("--port <n>", "port to listen on (0: any free one)", "8000")
  .option("--api-key-env <NAME>", "require 'Authorization: Bearer <key>' with the key read from $NAME")
  .option("--max-body-bytes <n>", "largest request body (413 above it)", "1048576")
  .option("--max-queue <n>", "requests waiting to run (429 above it)", "256")
  .option("--max-batch-rows <n>", "completions one batch may hold", "64")
  .option("--batch-window-ms <n>", "how long a request waits for others to batch with", "5")
  .action(async (flags: CommonFlags & import("./serve.ts").ServeFlags) => {
    const { serveCommand } = await import("./serve.ts");
    await serveCommand(configFromFlags(flags), flags);
  });

withCommonFlags(program.command("status"))
  .description("live actors (service discovery), their stats, and queue depths")
  .action(async (flags: CommonFlags) => {
    const { status } = await import("./status.ts");
    process.exitCode = await status(configFromFlags(flags));
  });

withCommonFlags(program.command("tap"))
  .description("print live messages as JSON lines")
  .argument("[pattern]", "subject pattern; default every subject of the run (srlm.<run>.>)")
  .option("--raw", "print the raw bytes as base64 instead of decoding")
  .option("--since <when>", "replay from the run's streams: a duration (5m) or a stream sequence")
  .action(async (pattern: string | undefined, flags: CommonFlags & { raw?: boolean; since?: string }) => {
    const { tapCommand } = await import("./status.ts");
    process.exitCode = await tapCommand(configFromFlags(flags), pattern, flags);
  });

withCommonFlags(program.command("control"))
  .description("pause, resume or stop a running schedule (it takes effect at the next stage boundary)")
  .argument("<command>", "pause | resume | stop")
  .option("--reason <text>", "why, for the logs")
  .action(async (command: string, flags: CommonFlags & { reason?: string }) => {
    const { controlCommand } = await import("./status.ts");
    process.exitCode = await controlCommand(configFromFlags(flags), command, flags.reason);
  });

program
  .command("nats-config")
  .description(
    "write a nats-server config (one account, one nkey user per role with least permissions) and the role keys",
  )
  .requiredOption("--run <name>", "the run the users are for")
  .option(
    "--out <dir>",
    "where to write server.conf, accounts.conf and <role>.nk (default ./srlm-nats-<run>)",
  )
  .option("--force", "replace keys already in --out")
  .action(async (flags: { run: string; out?: string; force?: boolean }) => {
    const { writeNatsConfig } = await import("./natsConfig.ts");
    const result = writeNatsConfig(flags.run, flags.out ?? `srlm-nats-${flags.run}`, { force: flags.force });
    process.stdout.write(`${result.guide}\n`);
  });

withCommonFlags(program.command("config"))
  .description("print the effective config (defaults < preset < file < SRLM_* env < flags), secrets masked")
  .action(async (flags: CommonFlags) => {
    const { maskSecrets } = await import("../config/secrets.ts");
    process.stdout.write(`${JSON.stringify(maskSecrets(configFromFlags(flags)), null, 2)}\n`);
  });

withCommonFlags(program.command("init-model"))
  .description("write a fresh random model (config.json, model.safetensors, tokenizer.json)")
  .option("--model-preset <name>", "model shape preset", "tiny")
  .option("--seed <n>", "initialisation seed", "0")
  .action(async (flags: CommonFlags & { modelPreset: string; seed: string }) => {
    const { initModelCommand } = await import("./model.ts");
    if (!flags.out) throw new Error("init-model needs --out DIR, the checkpoint folder to write");
    await initModelCommand(
      configFromFlags({ ...flags, out: undefined }),
      flags.out,
      flags.modelPreset,
      Number(flags.seed),
    );
  });

withCommonFlags(program.command("generate"))
  .description("sample a completion from a checkpoint")
  .requiredOption("--model <dir>", "checkpoint folder")
  .requiredOption("--prompt <text>", "prompt text")
  .option("--max-new-tokens <n>", "tokens to generate", "64")
  .option("--temperature <t>", "0 is greedy", "0")
  .option("--top-p <p>", "nucleus sampling", "1")
  .option("--top-k <k>", "top-k sampling (0 = off)", "0")
  .option("--seed <n>", "sampling seed", "0")
  .option("--stop <text...>", "stop strings")
  .action(async (flags: CommonFlags & Record<string, string>) => {
    const { generateCommand } = await import("./model.ts");
    await generateCommand(configFromFlags(flags), flags);
  });

withCommonFlags(program.command("logprobs"))
  .description("per-token log-probs of a response given a prompt, as JSON")
  .requiredOption("--model <dir>", "checkpoint folder")
  .requiredOption("--prompt <text>", "prompt text")
  .requiredOption("--response <text>", "response text")
  .action(async (flags: CommonFlags & { model: string; prompt: string; response: string }) => {
    const { logprobsCommand } = await import("./model.ts");
    await logprobsCommand(configFromFlags(flags), flags);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // Expected failures (bad config, unreachable NATS, a missing file) get one clear line, no stack.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`srlm: ${message}\n`);
  process.exitCode = 1;
}
