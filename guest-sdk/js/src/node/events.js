// `node:events` under `nodejs_compat`: unenv's EventEmitter made callable as Node's is — a
// function, so the classic `EventEmitter.call(this)` of pre-class code (readable-stream, many npm
// packages) works beside `class X extends EventEmitter`; `on` and `addListener` one method — with
// `init`, `listenerCount` and
// `setMaxListeners` (unenv's throw "not implemented"). The default export is the constructor
// with the module's functions on it, as `require("events")` is.

import * as base from "unenv/node/events";

const Base = base.EventEmitter;

export function EventEmitter(options) {
  EventEmitter.init.call(this, options);
}
EventEmitter.prototype = Base.prototype;
// As in Node, `on` is `addListener` and `off` is `removeListener` (unenv's call each other by
// name, which loops when a subclass aliases one to its override of the other, as
// readable-stream does).
Base.prototype.on = Base.prototype.addListener;
Base.prototype.off = Base.prototype.removeListener;
Object.defineProperty(Base.prototype, "constructor", { value: EventEmitter, configurable: true, writable: true });
Object.setPrototypeOf(EventEmitter, Base);

/** What Node's constructor does: an instance's own listener table. */
EventEmitter.init = function init() {
  if (this._events === undefined || this._events === Object.getPrototypeOf(this)._events) {
    this._events = Object.create(null);
    this._eventsCount = 0;
  }
  this._maxListeners = this._maxListeners || undefined;
};

export function listenerCount(emitter, type) {
  return emitter.listenerCount(type);
}

export function setMaxListeners(n = base.defaultMaxListeners, ...targets) {
  if (targets.length === 0) EventEmitter.defaultMaxListeners = n;
  for (const target of targets) target.setMaxListeners?.(n);
}

export const init = EventEmitter.init;
export const {
  EventEmitterAsyncResource, addAbortListener, getEventListeners, getMaxListeners, on, once,
  usingDomains, captureRejectionSymbol, captureRejections, errorMonitor, defaultMaxListeners,
} = base;

// Own properties (the class beneath has accessors of some of these names).
for (const [name, value] of Object.entries({
  EventEmitter, EventEmitterAsyncResource, addAbortListener, getEventListeners, getMaxListeners,
  on, once, listenerCount, setMaxListeners, usingDomains, captureRejectionSymbol, errorMonitor,
})) {
  Object.defineProperty(EventEmitter, name, { value, configurable: true, writable: true, enumerable: true });
}
export default EventEmitter;
