// src/durable-objects/scheduler.ts
import { DurableObject } from "cloudflare:workers";

export class Scheduler extends DurableObject<Bindings> {
  async fetch(request: Request): Promise<Response> {
    // Set alarm to fire in 60 seconds
    await this.ctx.storage.setAlarm(Date.now() + 60_000);
    return Response.json({ scheduled: true });
  }

  // Called when the alarm fires
  async alarm(): Promise<void> {
    // Do scheduled work
    await this.ctx.storage.delete("expired-data");

    // Optionally reschedule
    await this.ctx.storage.setAlarm(Date.now() + 60_000);
  }
}
