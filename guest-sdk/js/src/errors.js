// What the runtime's errors mean, in one sentence each. The WIT imports throw an error whose
// `payload` is the variant ({ tag, val }); the SDK rethrows it as an Error with a readable message
// and the variant kept as `kind` (and `payload`) for code that wants to act on it.

function describeStorage({ tag, val }) {
  switch (tag) {
    case "key-too-large":
      return `key is ${val.actual} bytes, the limit is ${val.limit}`;
    case "value-too-large":
      return `value is ${val.actual} bytes, the limit is ${val.limit}`;
    case "too-many-keys":
      return `${val.actual} keys in one call, the limit is ${val.limit}`;
    case "result-too-large":
      return `list result exceeds ${val.limit} bytes; pass a smaller limit`;
    case "invalid-argument":
      return `invalid argument: ${val}`;
    case "no-transaction":
      return "no open transaction";
    case "internal":
      return `internal: ${val}`;
    default:
      return `${tag}${val === undefined ? "" : `: ${val}`}`;
  }
}

function describeWebSocket({ tag, val }) {
  switch (tag) {
    case "not-an-upgrade":
      return "acceptWebSocket outside a fetch whose request asks for Upgrade: websocket, or twice";
    case "unknown-socket":
      return "the WebSocket is closed";
    case "too-large":
      return `the message exceeds the limit of ${val} bytes`;
    default:
      return `${tag}${val === undefined ? "" : `: ${val}`}`;
  }
}

// A call error's text already says what happened.
function describeCall({ tag, val }) {
  return `${tag}: ${val}`;
}

const DESCRIBE = {
  storage: describeStorage,
  websocket: describeWebSocket,
  call: describeCall,
};

// Storage limits Cloudflare reports as RangeErrors, in its words.
const STORAGE_RANGE = {
  "key-too-large": ({ actual, limit }) => `Keys cannot be larger than ${limit} bytes. A key of size ${actual} was provided.`,
  "value-too-large": ({ actual, limit }) =>
    `Values cannot be larger than ${limit} bytes. A value of size ${actual} was provided.`,
  "too-many-keys": ({ actual, limit }) =>
    `Maximum number of key value pairs is ${limit}. ${actual} pairs were provided.`,
};

/** Runs `f`, turning a WIT error (thrown with a `payload`) into a readable Error. */
export function lift(area, f) {
  try {
    return f();
  } catch (e) {
    if (e && typeof e === "object" && e.payload && typeof e.payload.tag === "string") {
      const range = area === "storage" ? STORAGE_RANGE[e.payload.tag] : undefined;
      const error = range ? new RangeError(range(e.payload.val)) : new Error(`${area}: ${DESCRIBE[area](e.payload)}`);
      error.kind = e.payload.tag;
      error.payload = e.payload;
      // Cloudflare's flag on an error of an object that cannot take more work now.
      if (area === "call" && e.payload.tag === "overloaded") error.overloaded = true;
      throw error;
    }
    throw e;
  }
}

/** What the log keeps of a thrown value: `Name: message`, then the stack when there is one. */
export function logged(error) {
  if (!(error instanceof Error)) return String(error);
  const stack = typeof error.stack === "string" && error.stack !== "" ? `\n${error.stack}` : "";
  return `${error.name}: ${error.message}${stack}`;
}
