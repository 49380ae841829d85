import { Agent, callable, routeAgentRequest } from "agents";

type Env = { Counter: DurableObjectNamespace };
type State = { count: number };

/** A counter whose state every connected client sees change. */
export class Counter extends Agent<Env, State> {
  initialState: State = { count: 0 };

  @callable()
  increment(by = 1) {
    this.setState({ count: this.state.count + by });
    return this.state.count;
  }

  /** Adds 100 a second from now, through the agent's scheduler (its SQL table and the alarm). */
  @callable()
  async later() {
    const schedule = await this.schedule(1, "bump", { by: 100 });
    return schedule.callback;
  }

  async bump({ by }: { by: number }) {
    this.setState({ count: this.state.count + by });
  }
}

export default {
  async fetch(request: Request, env: Env) {
    return (await routeAgentRequest(request, env)) ?? new Response("Not found", { status: 404 });
  },
};
