#!/usr/bin/env node
// The `srlm` command. Sources are TypeScript run through tsx, so there is no build step
// between editing a file and running an actor on another host.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
