// Events of an object that arrive while one of its events waits — on an outgoing `fetch`, a
// timer, or a promise only another event settles. Cloudflare's input gate is open at such awaits
// (it closes only over storage calls), so they run beside the waiting one: while a handler waits,
// the SDK listens on the runtime's inbox (`duro:object/inbox`: a request to its host that the
// runtime answers once an event is there) and runs each request or RPC call it takes as an event
// of the object mounted now. `Background.drive` listens; `objectExports` runs what comes.

import * as host from "duro:object/inbox@0.1.0";
import { raw } from "./inflight.js";

const INBOX_URL = "http://inbox.duro.invalid/";

/** Handlers waiting now (each listens until it settles). */
let waiters = 0;
/** The guest call whose wait is outstanding, if one is. */
let askedIn = 0;
/** Counts the runtime's calls into the guest: a wait asked in an earlier one is stale. */
let call = 0;
let run = null;

/** `fn(inbound)` runs each event taken from the inbox. */
export function onInbound(fn) {
  run = fn;
}

/** A call from the runtime begins (every export says so first). */
export function newCall() {
  call++;
}

/** A handler waits: events are taken beside it until the returned function is called. */
export function listen() {
  waiters++;
  ask();
  let stopped = false;
  return () => {
    if (!stopped) waiters--;
    stopped = true;
  };
}

function ask() {
  if (run === null || askedIn === call) return;
  const asked = (askedIn = call);
  const fetch = raw.fetch ?? globalThis.fetch;
  const arrived = () => answered(asked);
  fetch(INBOX_URL).then(arrived, arrived);
}

/** The runtime answered a wait asked during call `asked`: take what is there. */
function answered(asked) {
  if (askedIn === asked) askedIn = 0;
  let took = false;
  for (let inbound; (inbound = host.take()) !== undefined; took = true) run(inbound);
  // Nothing there in the call that asked: that call ended, and nothing waits in it any more.
  if (waiters > 0 && (took || asked !== call)) ask();
}
