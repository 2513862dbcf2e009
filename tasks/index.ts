// The public surface of tasks/: seed data, task families, the rubric and the judge format,
// self-instruct, JSONL and evaluation measures; math word problems and ReFT's answer reward.
export * from "./agreement.ts";
export * from "./data.ts";
export * from "./eval.ts";
export * from "./families.ts";
export * from "./format.ts";
export * from "./jsonl.ts";
export * from "./judgement.ts";
export * from "./math.ts";
export * from "./mathJsonl.ts";
export * from "./random.ts";
export * from "./reward.ts";
export * from "./rubric.ts";
export * from "./selfinstruct.ts";
export * from "./task.ts";
