// Pause, resume and stop from `srlm control`: the trainer follows srlm.<run>.control and gates each
// stage boundary on it. Anything on that subject that is not a valid control message is
// dead-lettered, so a mistyped or forged command is seen, not ignored.
import type { NatsConnection } from "@nats-io/transport-node";
import { acceptMessage, type DeadLetterContext } from "../../bus/dead.ts";
import type { Logger } from "../../bus/log.ts";
import { Control, type ControlBody } from "../../bus/messages.ts";
import { subjects } from "../../bus/subjects.ts";
import { RunStopped } from "./workers.ts";

/** A stop ends the schedule at the next stage boundary; pause holds it there until resume. */
export class RunControl {
  private paused: { promise: Promise<void>; resolve: () => void } | null = null;
  private stopped = false;

  apply(command: ControlBody["command"]): void {
    if (command === "pause" && !this.paused) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.paused = { promise, resolve };
    } else if (command === "resume" || command === "start" || command === "stop") {
      if (command === "stop") this.stopped = true;
      this.paused?.resolve();
      this.paused = null;
    }
  }

  async gate(): Promise<void> {
    if (this.paused) await this.paused.promise;
    if (this.stopped) throw new RunStopped();
  }
}

/** Applies every valid control message of the run to `control`; returns the unsubscribe. */
export function followControl(
  nc: NatsConnection,
  dl: DeadLetterContext,
  control: RunControl,
  log?: Logger,
): () => void {
  const sub = nc.subscribe(subjects(dl.run).control, {
    callback: (_err, m) => {
      const msg = acceptMessage(dl, m.subject, m.data, Control);
      if (!msg) return;
      const { body } = msg;
      log?.info({ command: body.command, reason: body.reason }, "control");
      control.apply(body.command);
    },
  });
  return () => sub.unsubscribe();
}
