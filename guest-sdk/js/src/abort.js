// `AbortSignal` as workerd has it: `signal.throwIfAborted()` throws the signal's reason (the
// engine's returns without throwing), and `AbortSignal.abort()` without a reason aborts with an
// `AbortError` DOMException (the engine's requires an argument). Installed before the project's
// modules load.

const NativeAbort = AbortSignal.abort;

function defaultReason() {
  return new DOMException("This operation was aborted", "AbortError");
}

Object.defineProperty(AbortSignal.prototype, "throwIfAborted", {
  value: function throwIfAborted() {
    if (this.aborted) throw this.reason ?? defaultReason();
  },
  configurable: true,
  writable: true,
});

Object.defineProperty(AbortSignal, "abort", {
  value: function abort(reason) {
    return NativeAbort.call(AbortSignal, reason === undefined ? defaultReason() : reason);
  },
  configurable: true,
  writable: true,
});
