// `scheduler.wait(ms, { signal })`: Cloudflare's global for awaiting time (a promise over
// `setTimeout`, so in an object it is one of the event's timers). Installed before the project's
// modules load, in objects and workers alike.

function abortReason(signal) {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/** Resolves after `ms` milliseconds; rejects with the signal's reason if it aborts first. */
function wait(ms, options = {}) {
  const { signal } = options ?? {};
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Number(ms) || 0);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

if (typeof globalThis.scheduler !== "object" || globalThis.scheduler === null) {
  Object.defineProperty(globalThis, "scheduler", {
    value: { wait },
    configurable: true,
    writable: true,
  });
} else if (typeof globalThis.scheduler.wait !== "function") {
  globalThis.scheduler.wait = wait;
}
