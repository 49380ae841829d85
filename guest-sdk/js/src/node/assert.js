// `node:assert` under `nodejs_compat`: unenv's, whose AssertionError is named as Node's (unenv
// leaves it "Error"). Its messages are unenv's (empty unless generated); see README.

import assert, { AssertionError } from "unenv/node/assert";

Object.defineProperty(AssertionError.prototype, "name", {
  value: "AssertionError",
  configurable: true,
  writable: true,
});

export * from "unenv/node/assert";
export default assert;
