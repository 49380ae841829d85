// Cloudflare's `WorkflowEntrypoint` (from `cloudflare:workers`): the base class of a Workflow,
// with `this.ctx` and `this.env`, so that a module which defines one builds and its other exports
// run. duro does not run Workflows yet: a `workflows` binding is named in the start-up warning
// and absent from `env`.

export class WorkflowEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}
