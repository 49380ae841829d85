// The platform's work an event may be waiting on: outgoing `fetch` calls until they answer, their
// responses until their body is read, and the platform's own timers (a library may have kept
// `setTimeout` before the SDK put an object's timers in its place). Everything else a handler can
// await in an object is the SDK's own (its timers) or settles within the event's microtasks; so
// when none of this is in flight and no timer is pending, a handler still waiting can only be
// waiting for another event of its object, which duro does not run meanwhile (see
// `Background.drive`). Installed by the prelude, before the project's modules load.

/** The platform's timers (and, once tracked, `fetch`) as they were, for the SDK's own waits
 * (not counted). */
export const raw = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
};

let inFlight = 0;
/** The platform timers set through the globals and not yet fired or cleared. */
const timers = new Set();
/** Responses handed out whose body was never read through a method that says when it ends. */
const unread = new WeakSet();
let unreadCount = 0;

const READS = ["text", "json", "arrayBuffer", "blob", "formData", "bytes"];

function settle(response) {
  if (unread.has(response)) {
    unread.delete(response);
    unreadCount--;
  }
}

function track(response) {
  if (response === null || typeof response !== "object" || unread.has(response)) return response;
  unread.add(response);
  unreadCount++;
  for (const name of READS) {
    const read = response[name];
    if (typeof read !== "function") continue;
    Object.defineProperty(response, name, {
      value: function (...args) {
        const reading = Reflect.apply(read, this, args);
        const done = () => settle(response);
        Promise.resolve(reading).then(done, done);
        return reading;
      },
      configurable: true,
      writable: true,
    });
  }
  return response;
}

/** The platform's timers, counted while pending. */
function trackTimers() {
  globalThis.setTimeout = function setTimeout(fn, delay, ...args) {
    const handle = raw.setTimeout(
      (...given) => {
        timers.delete(handle);
        if (typeof fn === "function") fn(...given);
      },
      delay,
      ...args,
    );
    timers.add(handle);
    return handle;
  };
  globalThis.setInterval = function setInterval(fn, delay, ...args) {
    const handle = raw.setInterval(fn, delay, ...args);
    timers.add(handle);
    return handle;
  };
  globalThis.clearTimeout = function clearTimeout(handle) {
    timers.delete(handle);
    raw.clearTimeout(handle);
  };
  globalThis.clearInterval = function clearInterval(handle) {
    timers.delete(handle);
    raw.clearInterval(handle);
  };
}

/** Wraps the global `fetch` and timers so that what is in flight is counted. */
export function trackPlatform() {
  trackTimers();
  const native = globalThis.fetch;
  if (typeof native !== "function") return;
  raw.fetch = native;
  globalThis.fetch = function fetch(...args) {
    return counted(native, this, args).then(track);
  };
}

/** `native(...args)`, counted in flight until it settles. */
function counted(native, self, args) {
  inFlight++;
  let answer;
  try {
    answer = Reflect.apply(native, self, args);
  } catch (error) {
    inFlight--;
    return Promise.reject(error);
  }
  return Promise.resolve(answer).then(
    (response) => {
      inFlight--;
      return response;
    },
    (error) => {
      inFlight--;
      throw error;
    },
  );
}

/** Waits on the runtime itself (`url`: a call's answer), counted in flight like a `fetch`. */
export function waitOnRuntime(url) {
  return counted(raw.fetch ?? globalThis.fetch, undefined, [url]);
}

/** Whether platform work that could settle a waiting handler is in flight. */
export function busy() {
  return inFlight > 0 || unreadCount > 0 || timers.size > 0;
}
